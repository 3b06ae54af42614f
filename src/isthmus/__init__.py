"""isthmus: autoencoders that shrink, compress, clean and screen data, with honest baselines."""

from __future__ import annotations

import os

__version__ = "0.1.0"

from isthmus.config import PRESETS
from isthmus.errors import IsthmusError
from isthmus.estimator import Autoencoder
from isthmus.metrics import evaluate


def load(path: str | os.PathLike[str]) -> Autoencoder:
    """Load a model file written by ``Autoencoder.save`` or ``export_encoder`` (no unpickling)."""
    from isthmus.artifact import load_model

    return load_model(path)


__all__ = ["PRESETS", "Autoencoder", "IsthmusError", "__version__", "evaluate", "load"]
