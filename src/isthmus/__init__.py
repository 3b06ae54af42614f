"""isthmus: autoencoders that shrink, compress, clean and screen data, with honest baselines."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from isthmus.config import PRESETS
from isthmus.errors import IsthmusError
from isthmus.version import __version__

if TYPE_CHECKING:
    from isthmus.estimator import Autoencoder
    from isthmus.metrics import evaluate


def load(path: str | os.PathLike[str]) -> Autoencoder:
    """Load a model file written by ``Autoencoder.save`` or ``export_encoder`` (no unpickling)."""
    from isthmus.estimator import Autoencoder

    return Autoencoder.load(path)


def __getattr__(name: str) -> Any:
    # imported on first use: torch and scikit-learn take seconds, and ``isthmus --help`` needs neither
    if name == "Autoencoder":
        from isthmus.estimator import Autoencoder

        return Autoencoder
    if name == "evaluate":
        from isthmus.metrics import evaluate

        return evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PRESETS", "Autoencoder", "IsthmusError", "__version__", "evaluate", "load"]
