"""Optional dependencies: imported when a feature needs them, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from isthmus.errors import DependencyError


def import_optional(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise DependencyError saying which ``isthmus[extra]`` provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise DependencyError(
            f"{feature} needs {top}, which is not installed; install it with pip install 'isthmus[{extra}]'"
        ) from None
