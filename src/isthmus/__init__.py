"""isthmus: autoencoders that shrink, compress, clean and screen data, with honest baselines."""

from __future__ import annotations

import os

from isthmus.config import PRESETS
from isthmus.errors import IsthmusError
from isthmus.estimator import Autoencoder
from isthmus.metrics import evaluate
from isthmus.version import __version__


def load(path: str | os.PathLike[str]) -> Autoencoder:
    """Load a model file written by ``Autoencoder.save`` or ``export_encoder`` (no unpickling)."""
    return Autoencoder.load(path)


__all__ = ["PRESETS", "Autoencoder", "IsthmusError", "__version__", "evaluate", "load"]
