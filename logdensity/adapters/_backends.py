"""Importing optional backends only when an adapter is used."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise an `ImportError` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f'this adapter needs {module!r}: pip install "logdensity[{extra}]"'
        ) from e


def static_key(leaf: Any) -> Any:
    """`leaf` itself if hashable, else its identity: a key for a static argument, so two
    compiled-function wrappers compare equal exactly when their static parts do."""
    try:
        hash(leaf)
    except TypeError:
        return ("id", id(leaf))
    return leaf
