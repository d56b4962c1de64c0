"""What every adapter needs: backends imported on use, wrappers that compare equal
when they would compile the same code, the default float dtype, and name checks."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._model import require_values as require_values
from .._tree import Frozen as Frozen, static_key as static_key

__all__ = ["Frozen", "default_float", "jax_float", "require", "require_values", "static_key"]


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise an `ImportError` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f'this adapter needs {module!r}: pip install "logdensity[{extra}]"'
        ) from e


def default_float() -> Any:
    """JAX's default floating dtype now: float64 under `jax_enable_x64`, else float32."""
    return jnp.zeros(()).dtype


def jax_float(dtype: Any) -> Any:
    """The JAX dtype for a float `dtype` of another library (a PyTensor variable's):
    itself, capped at JAX's default float (float64 becomes float32 with x64 off)."""
    return jax.dtypes.canonicalize_dtype(np.dtype(dtype))
