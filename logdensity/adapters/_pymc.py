"""The PyMC adapter: `from_pymc`, a PyMC model through PyTensor's JAX backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from .._model import Model
from ._helpers import Frozen, jax_float, require, require_values
from ._pytensor import _Compiled, _Constrain, _LogDensity, jaxify

__all__ = ["from_pymc"]


class _BakedIn(Frozen):
    """The data form of `from_pymc`: the model's observed data and `pm.Data` are
    constants of the compiled program, so there is nothing to replace."""

    key = ()

    def unpack(self, stored: None) -> None:
        return None

    def pack(self, data: Any, current: None) -> None:
        raise NotImplementedError(
            "from_pymc compiles the model's observed data and pm.Data into the program as "
            "constants, so they cannot be replaced: set new values inside the model "
            "(pm.set_data({...})) and call from_pymc(model) again (it compiles anew)."
        )


class _Unconstrain(_Compiled):
    """`{free variable: constrained value} -> {value variable: unconstrained value}`,
    each through its PyMC transform's `forward` (given the other values it depends on)."""

    def __call__(self, values: Mapping[str, Any], data: PyTree) -> dict[str, Array]:
        require_values(self.names, values)
        position = {n: jnp.asarray(values[n]) for n in self.names}
        outputs = map(jnp.asarray, self.outputs(position, data))
        return dict(zip(self.out_names, outputs, strict=True))


def from_pymc(model: Any = None) -> Model:
    """A `LogDensity` from a PyMC model, compiled by PyTensor's JAX backend.

    **Arguments:**

    - `model`: a `pm.Model` (default: the one of the enclosing `with` block).

    **Returns:** a [`logdensity.Model`][] whose position is `{value variable name:
    array}`, PyMC's unconstrained value variables (`tau_log__`, `b_interval__`, ...;
    their shapes and start from `model.initial_point()`, in JAX's default float
    dtype). The log density is `model.logp(jacobian=True)` (every log-Jacobian of PyMC's
    transforms included). `constrain` returns every free random variable under its own
    name in its own space and every `pm.Deterministic`; `unconstrain` applies each
    variable's transform. The model's `coords` and `dims` go into the
    `InferenceData`. Observed data and `pm.Data` become constants of the compiled
    program (as PyMC's own JAX samplers make them): `model.data` is `None` and
    `model.replace_data` raises `NotImplementedError`; for new data, `pm.set_data` in
    the model and call `from_pymc` again. The caller's `jax_enable_x64` is left as it
    was.

    **Raises:** `ValueError` naming discrete free variables (NUTS needs continuous
    ones; marginalize them, e.g. with pymc-extras) or a model with no free variable;
    `NotImplementedError` naming an op PyTensor's JAX backend cannot compile.
    """
    pm = require("pymc", "pymc")
    model = pm.modelcontext(model)
    discrete = [v.name for v in model.discrete_value_vars]
    if discrete:
        raise ValueError(
            f"free variables {discrete} are discrete; NUTS samples continuous variables "
            "only (marginalize them out)."
        )
    value_vars = list(model.value_vars)
    if not value_vars:
        raise ValueError("the model has no free random variable to sample.")
    names = tuple(v.name for v in value_vars)
    start = model.initial_point()
    position = {v.name: jnp.asarray(start[v.name], jax_float(v.type.dtype)) for v in value_vars}

    free, deterministics = list(model.free_RVs), list(model.deterministics)
    out_names = tuple(v.name for v in free + deterministics)
    outputs = model.replace_rvs_by_values(free + deterministics)
    constrain = _Constrain(jaxify(value_vars, outputs), names, out_names)
    logp = model.logp(jacobian=True)
    unconstrain = _Unconstrain(*_unconstrain_graph(model, free), tuple(v.name for v in free), names)

    named_dims = model.named_vars_to_dims
    dims = {n: tuple(named_dims[n]) for n in out_names if named_dims.get(n)}
    coords = {k: np.asarray(v) for k, v in model.coords.items() if v is not None}
    return Model(
        _LogDensity(jaxify(value_vars, [logp]), names, ("logp",)),
        position,
        constrain_fn=constrain,
        unconstrain_fn=unconstrain,
        dims=dims,
        coords=coords,
        deterministics=tuple(v.name for v in deterministics),
        backend="pymc",
        data_form=_BakedIn(),
    )


def _unconstrain_graph(model: Any, free: list[Any]) -> tuple[Any]:
    """The compiled map from the free variables' values to the value variables."""
    from pytensor.graph.replace import clone_replace

    placeholders = {rv: rv.type(name=rv.name) for rv in free}
    outputs = []
    for rv in free:
        transform = model.rvs_to_transforms.get(rv)
        value = placeholders[rv]
        outputs.append(value if transform is None else transform.forward(value, *rv.owner.inputs))
    outputs = clone_replace(outputs, replace=placeholders)
    return (jaxify(list(placeholders.values()), outputs),)
