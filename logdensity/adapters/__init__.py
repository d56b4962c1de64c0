"""Adapters: each turns one way of writing a model into a `logdensity.Model`.

A backend is imported only inside its adapter, never at `import logdensity`.
"""

from ._jax import from_jax as from_jax

__all__ = ["from_jax"]
