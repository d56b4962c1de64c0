"""The dtype policy of the loop: the sampler computes in its position's dtype.

The sampler's dtype is `jnp.result_type` of the initial position's leaves: float32
for a float32 model, float64 if any leaf is float64 (possible only under x64).
Everything the sampler computes (momentum, energies, the log density it reads, the
step size and the inverse mass matrix, the adaptation's statistics) is in that dtype,
and so are the draws' `lp` and the sample stats; each draw keeps its leaf's own dtype.

Two things make that true whatever the x64 flag says:

- **Mixed leaves** (float32 and float64): the kernel's position holds every leaf in
  the sampler's dtype; the model gets each leaf back in its own dtype.
- **A float32 position under x64**: BlackJAX's NUTS and adaptation write Python and
  NumPy constants (`0.0`, `-np.inf`) that become float64 under x64 and then clash with
  a float32 state (`TypeError: cond branches must have equal output types`). They are
  traced with x64 off (`jax.enable_x64(False)`), and the model with x64 on, as the
  user set it: its value and gradient are computed in one `jax.custom_vjp` whose
  forward pass runs under the user's flag, then cast to float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from .._protocol import LogDensity

__all__ = ["in_model_dtypes", "in_sampler_dtype", "sampler_dtype", "sampler_precision"]


def sampler_dtype(position: PyTree) -> np.dtype:
    """The sampler's float dtype for `position`: its leaves' common dtype."""
    return np.dtype(jnp.result_type(*jax.tree.leaves(position)))


def in_sampler_dtype(position: PyTree, template: PyTree) -> PyTree:
    """`position` (a start: jittered, optimised, given) with every leaf in the dtype of
    a sampler for `template` (the model's initial position): the kernel's position."""
    dtype = sampler_dtype(template)
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), position)


def in_model_dtypes(position: PyTree, template: PyTree) -> PyTree:
    """A kernel's `position` with each leaf back in `template`'s dtype (the model's)."""
    return jax.tree.map(lambda x, t: jnp.asarray(x, jnp.result_type(t)), position, template)


def _with_x64(logdensity_fn: Callable[[PyTree], Array]) -> Callable[[PyTree], Array]:
    """`logdensity_fn` with its value and gradient traced under x64, whatever the mode it
    is called in: one `jax.custom_vjp`, the forward pass `jax.value_and_grad` under
    `jax.enable_x64(True)`, the backward pass a product with the stored gradient (so no
    part of the model is traced with x64 off)."""

    @jax.custom_vjp
    def f(position: PyTree) -> Array:
        with jax.enable_x64(True):
            return logdensity_fn(position)

    def forward(position: PyTree) -> tuple[Array, PyTree]:
        with jax.enable_x64(True):
            return jax.value_and_grad(logdensity_fn)(position)

    def backward(grad: PyTree, cotangent: Array) -> tuple[PyTree]:
        return (jax.tree.map(lambda g: (cotangent * g).astype(g.dtype), grad),)

    f.defvjp(forward, backward)
    return f


@contextmanager
def sampler_precision(model: LogDensity, dtype: Any) -> Iterator[Callable[[PyTree], Array]]:
    """Trace BlackJAX's kernel and adaptation for a sampler in `dtype` inside this block.

    Yields the log density BlackJAX should call: `model` at a kernel position (leaves in
    `dtype`), each leaf cast back to its dtype in `model.initial_position`, the value
    cast to `dtype`. For float32 under x64 the block runs with x64 off and the model
    with x64 on (see the module's docstring); otherwise nothing changes."""
    template = model.initial_position

    def logdensity_fn(position: PyTree) -> Array:
        return jnp.asarray(model(in_model_dtypes(position, template)), dtype)

    narrow = jax.config.read("jax_enable_x64") and np.dtype(dtype).itemsize < 8
    with jax.enable_x64(False) if narrow else nullcontext():
        yield _with_x64(logdensity_fn) if narrow else logdensity_fn
