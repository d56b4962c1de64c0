"""The plain-JAX adapter: `from_jax`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jaxtyping import PyTree

from .._model import Model
from ._helpers import Frozen

__all__ = ["from_jax"]


class _WithoutData(Frozen):
    """Lifts `fn(x)` to the `(x, data)` signature of `Model`'s functions.

    Two wrappers of the same function compare equal, so `from_jax(f, ...)` called twice
    reuses compiled code.
    """

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn
        self.key = (fn,)

    def __call__(self, x: Any, data: Any) -> Any:
        del data
        return self.fn(x)


def from_jax(
    logdensity_fn: Callable[..., Any],
    initial_position: PyTree,
    *,
    constrain: Callable[..., Mapping[str, Any]] | None = None,
    unconstrain: Callable[..., PyTree] | None = None,
    data: PyTree = None,
    dims: Mapping[str, tuple[str, ...]] | None = None,
    coords: Mapping[str, Any] | None = None,
    deterministics: tuple[str, ...] = (),
) -> Model:
    """A `LogDensity` from a plain JAX log-density function.

    **Arguments:**

    - `logdensity_fn`: `logdensity_fn(position) -> Scalar`, or
      `logdensity_fn(position, data)` when `data` is given: the log density on the
      **unconstrained** space, **including the log-Jacobians** of whatever `constrain`
      applies. Pure JAX (no side effects, no Python control flow on values).
    - `initial_position`: an unconstrained position (a pytree of float arrays: a dict
      `{"mu": 0.0, "log_tau": 0.0}`, a vector, ...). It fixes the structure, shapes and
      dtype (float32, or float64 under `jax_enable_x64`).
    - `constrain`: `constrain(position) -> dict[str, Array]` (or `(position, data)`), the
      named values in the model's space (e.g. `{"tau": exp(log_tau)}`) plus any
      deterministics. Default: the identity, naming the position's leaves by their keys.
    - `unconstrain`: the inverse of `constrain` for the latents, `values -> position`
      (or `(values, data)`). Default with the identity `constrain`: rebuilt by name.
    - `data`: an optional pytree of arrays passed to the functions above as a traced
      argument, so new data of the same shapes do not recompile.
      `model.replace_data(new)` takes a pytree of the same structure (same keys).
    - `dims`, `coords`: ArviZ dimension names per value and labels per dimension, e.g.
      `dims={"theta": ("school",)}, coords={"school": ["A", "B", ...]}`.
    - `deterministics`: the names among `constrain`'s outputs that are not latents.

    **Returns:** a [`logdensity.Model`][].

    **Raises:** `TypeError` for a non-float leaf in `initial_position`; `ValueError` if
    `logdensity_fn` is not scalar at `initial_position` or `dims` do not match.
    """
    if data is None:
        logdensity_fn = _WithoutData(logdensity_fn)
        constrain = None if constrain is None else _WithoutData(constrain)
        unconstrain = None if unconstrain is None else _WithoutData(unconstrain)
    return Model(
        logdensity_fn,
        initial_position,
        data=data,
        constrain_fn=constrain,
        unconstrain_fn=unconstrain,
        dims=dims,
        coords=coords,
        deterministics=deterministics,
        backend="jax",
    )
