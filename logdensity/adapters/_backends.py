"""Importing optional backends only when an adapter is used."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise an `ImportError` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f'this adapter needs {module!r}: pip install "logdensity[{extra}]"'
        ) from e
