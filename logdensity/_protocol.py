"""The `LogDensity` protocol: what every adapter produces and `sample` consumes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

from jaxtyping import Array, ArrayLike, PyTree, Scalar

__all__ = ["LogDensity", "VariableInfo", "protocol_members"]


class VariableInfo(NamedTuple):
    """What the output knows of one named value returned by `constrain`.

    **Attributes:**

    - `name`: the variable's name in the model (`"theta"`, `"layers[0].bias"`).
    - `shape`: its shape for one draw, in the model's own (constrained) space.
    - `dims`: one dimension name per axis (`("school",)`), or `None` where the backend
      does not know them; ArviZ then names the axes `{name}_dim_{i}`.
    - `deterministic`: `True` for values computed from the latents (NumPyro's
      `deterministic` sites, PyMC's `Deterministic`, ...), `False` for latents.
    """

    name: str
    shape: tuple[int, ...]
    dims: tuple[str, ...] | None = None
    deterministic: bool = False


@runtime_checkable
class LogDensity(Protocol):
    """A log density on an unconstrained space, with the maps back to the model's space.

    Every adapter (`from_jax`, `from_numpyro`, ...) returns an object satisfying this
    structural protocol, and `logdensity.sample` accepts any such object. The built-in
    implementation is [`logdensity.Model`][].

    - `__call__(position)` returns the log density (never a potential, never `-log p`)
      at an **unconstrained** position, **including every log-Jacobian** of the maps
      from the unconstrained to the constrained space: a scalar of the position's
      floating dtype. It is pure JAX, so it survives `jax.jit`, `jax.grad` and
      `jax.vmap`.
    - `initial_position` is a valid unconstrained position; its pytree structure,
      shapes and dtypes are those every position must have.
    - `constrain(position)` maps an unconstrained position to the model's named values
      (every latent in its own, constrained space, plus deterministics) as
      `dict[str, Array]`. Pure JAX and vmappable.
    - `unconstrain(values)` is the inverse for the latents: `dict[str, ArrayLike]` of
      constrained values (deterministics ignored) to a position.
    - `variables`, `coords` and `backend` describe the output for ArviZ.

    The flat view (the same density on a 1-D vector) is derived, not required:
    [`logdensity.FlatView`][]`(obj)` for any `LogDensity`, `model.flat` for a `Model`.
    """

    def __call__(self, position: PyTree) -> Scalar: ...

    @property
    def initial_position(self) -> PyTree: ...

    def constrain(self, position: PyTree) -> dict[str, Array]: ...

    def unconstrain(self, values: Mapping[str, ArrayLike]) -> PyTree: ...

    @property
    def variables(self) -> Mapping[str, VariableInfo]: ...

    @property
    def coords(self) -> Mapping[str, tuple[Any, ...]]: ...

    @property
    def backend(self) -> str: ...


def protocol_members() -> tuple[str, ...]:
    """The names an object needs to satisfy `LogDensity`, read from the protocol's own
    body (what `isinstance(obj, LogDensity)` checks), for error messages."""
    return tuple(
        name
        for name, value in vars(LogDensity).items()
        if (name == "__call__" or not name.startswith("_"))
        and (callable(value) or isinstance(value, property))
    )
