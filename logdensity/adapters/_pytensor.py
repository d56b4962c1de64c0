"""The PyTensor adapter: `from_pytensor`, and `from_pymc` for PyMC models.

A graph is compiled the way PyMC's JAX samplers compile theirs: shared variables
replaced by constants, a `FunctionGraph`, PyTensor's JAX-mode rewrites, then
`pytensor.link.jax.dispatch.jax_funcify`. Importing that dispatch module sets
`jax_enable_x64` to match PyTensor's `floatX`; this adapter restores the caller's setting.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Scalar

from .._model import Model, _IdentityUnconstrain
from .._tree import check_names, leaf_names
from ._helpers import Frozen, jax_float, require

__all__ = ["from_pytensor"]


@contextlib.contextmanager
def keep_jax_config() -> Iterator[None]:
    """Undo PyTensor's global `jax_enable_x64` switch (set when its JAX dispatch is
    first imported, to match `floatX`): the caller's JAX configuration is theirs."""
    x64 = bool(jax.config.read("jax_enable_x64"))
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", x64)


def _shared_to_constants(outputs: list[Any]) -> list[Any]:
    """Shared variables (data, `pm.Data`) become constants of the graph, as PyMC's JAX
    samplers do; a shared random generator raises (the graph would be stochastic)."""
    import pytensor.tensor as pt
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.replace import clone_replace
    from pytensor.graph.traversal import graph_inputs
    from pytensor.tensor.random.type import RandomType

    shared = [v for v in graph_inputs(outputs) if isinstance(v, SharedVariable)]
    for var in shared:
        if isinstance(var.type, RandomType):
            raise ValueError(
                f"the graph holds the random generator {var} (a random variable is drawn "
                "in it); a log density must be deterministic: replace random variables "
                "by inputs."
            )
    replace: dict[Any, Any] = {
        v: pt.constant(v.get_value(borrow=True), name=v.name) for v in shared
    }
    return clone_replace(outputs, replace=replace) if replace else list(outputs)


def jaxify(inputs: Sequence[Any], outputs: Sequence[Any]) -> Callable[..., Any]:
    """A pure JAX function `f(*inputs) -> tuple(outputs)` from a PyTensor graph,
    through PyTensor's JAX-mode rewrites and JAX dispatch.

    **Raises:** `ValueError` naming a variable the outputs need that is not an input,
    or a random variable in the graph; `NotImplementedError` naming an op with no
    JAX implementation.
    """
    require("pytensor", "pytensor")
    from pytensor.compile.mode import get_mode
    from pytensor.graph.fg import FunctionGraph
    from pytensor.graph.utils import MissingInputError
    from pytensor.tensor.random.op import RandomVariable

    outputs = _shared_to_constants(list(outputs))
    try:
        fgraph = FunctionGraph(inputs=list(inputs), outputs=outputs, clone=True)
    except MissingInputError as e:
        raise ValueError(
            f"the graph needs a variable that is not among the inputs "
            f"{[v.name for v in inputs]}: {e}"
        ) from None
    for node in fgraph.apply_nodes:
        if isinstance(node.op, RandomVariable):
            raise ValueError(
                f"the graph draws a random variable ({node.op}); a log density must be "
                "deterministic: make it an input."
            )
    with keep_jax_config(), warnings.catch_warnings():
        # PyMC's parameter checks (`Check{alpha > 0}`) are dropped by the JAX backend:
        # outside the support the log density is NaN or -inf, which NUTS rejects
        warnings.filterwarnings("ignore", "Skipping Check", UserWarning)
        get_mode("JAX").optimizer.rewrite(fgraph)
        from pytensor.link.jax.dispatch import jax_funcify

        try:
            return jax_funcify(fgraph)
        except NotImplementedError as e:
            raise NotImplementedError(
                f"PyTensor's JAX backend cannot compile this graph: {e}"
            ) from None


class _Compiled:
    """A jaxified graph of the named inputs then the data inputs, called with a
    position dict and a data dict (both by name: a dict that went through `jax.jit`
    comes back key-sorted, so nothing is bound by order)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        names: tuple[str, ...],
        out_names: tuple[str, ...],
        data_names: tuple[str, ...] = (),
    ):
        self.fn, self.names, self.out_names, self.data_names = fn, names, out_names, data_names

    def outputs(
        self, position: Mapping[str, Array], data: Mapping[str, Array] | None
    ) -> tuple[Array, ...]:
        data = data or {}
        with warnings.catch_warnings():
            # a float64 graph traced with x64 off: its casts to float64 truncate to float32,
            # as documented in from_pytensor; one warning per cast is noise
            warnings.filterwarnings("ignore", "Explicitly requested dtype float64", UserWarning)
            return tuple(
                self.fn(*(position[n] for n in self.names), *(data[n] for n in self.data_names))
            )


class _LogDensity(_Compiled):
    def __call__(self, position: Mapping[str, Array], data: Mapping[str, Array] | None) -> Scalar:
        return jnp.reshape(self.outputs(position, data)[0], ())


class _Constrain(_Compiled):
    def __call__(
        self, position: Mapping[str, Array], data: Mapping[str, Array] | None
    ) -> dict[str, Array]:
        values = dict(zip(self.out_names, self.outputs(position, data), strict=True))
        return {n: jnp.asarray(v) for n, v in values.items()}


class _VariableData(Frozen):
    """The data form of `from_pytensor(data={Variable: value})`: `model.data` is
    `{Variable: value}`, and `replace_data` takes the same dict (keys the input
    variables or their names), matched by name."""

    def __init__(self, variables: tuple[Any, ...]):
        self.variables = variables
        self.names = tuple(v.name for v in variables)
        self.key = (self.names,)

    def unpack(self, stored: Mapping[str, Array]) -> dict[Any, Array]:
        return {v: stored[v.name] for v in self.variables}

    def pack(self, data: Any, current: Mapping[str, Array]) -> dict[str, Array]:
        if not isinstance(data, Mapping):
            raise TypeError(
                f"replace_data takes {{input variable (or its name): value}} for "
                f"{list(self.names)}; got {type(data).__name__}."
            )
        given = {k if isinstance(k, str) else getattr(k, "name", k): v for k, v in data.items()}
        check_names(self.names, given, f"replace_data needs the data inputs {list(self.names)}")
        out = {}
        for name in self.names:
            try:
                out[name] = jnp.asarray(given[name], current[name].dtype)
            except TypeError as e:
                raise TypeError(f"data input {name!r} is not an array: {e}") from None
        return out


def _data_dtype(var: Any, value: Any) -> Any:
    """A float data input in its variable's dtype (`jax_float`); integers and booleans
    as they are."""
    kind = jnp.asarray(value).dtype.kind
    return jax_float(var.type.dtype) if kind == "f" else None


def _input_names(inputs: Sequence[Any]) -> tuple[str, ...]:
    names = []
    for i, var in enumerate(inputs):
        if not var.name:
            raise ValueError(f"input {i} ({var}) has no name; give it one (pt.scalar('mu')).")
        names.append(var.name)
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ValueError(f"input names must be unique; {dups} appear more than once.")
    return tuple(names)


def _initial_values(
    inputs: Sequence[Any], names: tuple[str, ...], given: Mapping[str, Any] | None
) -> dict[str, Array]:
    given = dict(given or {})
    unknown = set(given) - set(names)
    if unknown:
        raise ValueError(f"initial_position names {sorted(unknown)}, not inputs {list(names)}.")
    out = {}
    for name, var in zip(names, inputs, strict=True):
        shape, dtype = var.type.shape, jax_float(var.type.dtype)
        if name in given:
            value = jnp.asarray(given[name], dtype)
            if len(value.shape) != len(shape) or any(
                s is not None and s != v for s, v in zip(shape, value.shape, strict=True)
            ):
                raise ValueError(
                    f"initial_position[{name!r}] has shape {value.shape}; input {name!r} "
                    f"has shape {shape}."
                )
            out[name] = value
        elif any(s is None for s in shape):
            raise ValueError(
                f"input {name!r} has unknown static shape {shape}: give it in "
                f"initial_position, or build it with a shape (pt.tensor({name!r}, shape=...))."
            )
        else:
            out[name] = jnp.zeros(shape, dtype)
    return out


def from_pytensor(
    logp: Any,
    inputs: Sequence[Any],
    *,
    deterministics: Mapping[str, Any] | None = None,
    initial_position: Mapping[str, Any] | None = None,
    data: Mapping[Any, Any] | None = None,
    dims: Mapping[str, tuple[str, ...]] | None = None,
    coords: Mapping[str, Any] | None = None,
) -> Model:
    """A `LogDensity` from a PyTensor graph, compiled to JAX by PyTensor's JAX backend.

    **Arguments:**

    - `logp`: a scalar PyTensor expression, the log density of the `inputs` on the
      **unconstrained** space they span, **including the log-Jacobians** of any
      transform (the graph is taken as written: PyTensor adds nothing).
    - `inputs`: the named input variables (the unconstrained parameters), e.g.
      `[pt.scalar("log_a"), pt.vector("logit_theta", shape=(71,))]`. Their names key
      the position; their static shapes fix its shapes.
    - `deterministics`: `{name: expression of the inputs}` (e.g.
      `{"alpha": pt.exp(log_a)}`), compiled the same way; `constrain` returns the inputs
      and these.
    - `data`: `{input variable: value}` for named inputs that hold data rather than
      parameters (e.g. `{y: y_observed}` for `y = pt.vector("y")`). They are traced
      arguments of the compiled code, not constants, matched by name:
      `model.data` is that dict again, and `model.replace_data({y: new_y})` (keys the
      variables or their names; same shapes and dtypes) reuses the compiled code;
      `jax.vmap` over data works.
    - `initial_position`: `{name: value}` for inputs whose static shape is unknown (and
      any other starting value); default zeros.
    - `dims`, `coords`: ArviZ dimension names per value and labels per dimension.

    Shared variables in the graph become constants of the compiled program. The
    graph goes through PyTensor's JAX-mode rewrites, then
    `pytensor.link.jax.dispatch.jax_funcify`; the result is pure JAX (`jit`, `grad`,
    `vmap`). The global `jax_enable_x64` setting is left as the caller had it
    (PyTensor's dispatch would set it to match `floatX`); the position has JAX's default
    float dtype, so a float64 graph computes in float32 unless x64 is enabled.

    **Returns:** a [`logdensity.Model`][] with position `{input name: array}`.

    **Raises:** `ValueError` when an input has no name or is not float (integer inputs
    belong in `data`), a name repeats, a shape is unknown and not given, `logp` is not
    a scalar, the graph needs a variable that is not an input, or it draws random
    variables; `NotImplementedError` naming an op PyTensor's JAX backend cannot compile.
    """
    require("pytensor", "pytensor")
    names = _input_names(inputs)
    discrete = [
        f"{n!r} ({v.type.dtype})"
        for n, v in zip(names, inputs, strict=True)
        if not str(v.type.dtype).startswith("float")
    ]
    if discrete:
        raise ValueError(
            f"inputs {', '.join(discrete)} are not float: the position NUTS moves is "
            "continuous (an integer parameter would be rounded and its chain frozen). "
            "Pass integer inputs as data={variable: value}, or make them float."
        )
    if getattr(logp, "ndim", None) != 0:
        raise ValueError(
            f"logp must be a scalar expression; it has {getattr(logp, 'ndim', '?')} dims "
            f"(type {getattr(logp, 'type', type(logp))}). Sum it: logp.sum()."
        )
    deterministics = dict(deterministics or {})
    clash = set(deterministics) & set(names)
    if clash:
        raise ValueError(f"deterministics {sorted(clash)} have the names of inputs.")
    data = dict(data or {})
    data_names = _input_names(list(data))
    taken = set(data_names) & (set(names) | set(deterministics))
    if taken:
        raise ValueError(f"data inputs {sorted(taken)} have the names of inputs or deterministics.")
    values = {
        name: jnp.asarray(value, _data_dtype(var, value))
        for name, (var, value) in zip(data_names, data.items(), strict=True)
    }
    position = _initial_values(inputs, names, initial_position)
    out_names = names + tuple(deterministics)
    everything = [*inputs, *data]
    constrain = _Constrain(
        jaxify(everything, [*inputs, *deterministics.values()]), names, out_names, data_names
    )
    return Model(
        _LogDensity(jaxify(everything, [logp]), names, ("logp",), data_names),
        position,
        data=values,
        constrain_fn=constrain,
        # the inputs are the latents: unconstrain picks them out by name
        unconstrain_fn=_IdentityUnconstrain(
            tuple(leaf_names(position)), jax.tree.structure(position)
        ),
        dims=dims,
        coords=coords,
        deterministics=tuple(deterministics),
        backend="pytensor",
        data_form=_VariableData(tuple(data)),
    )
