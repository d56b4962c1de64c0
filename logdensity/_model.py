"""`Model`, the concrete `LogDensity` the adapters return; its flat view; data forms;
and `as_model`, which makes any `LogDensity` a pytree that `jax.jit` can take."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float, PyTree, Scalar

from ._protocol import LogDensity, VariableInfo, protocol_members
from ._tree import Frozen, as_arrays, check_structure, leaf_names, pytree_dataclass, static_field

__all__ = ["DataForm", "FlatView", "Model", "SameStructure", "as_model"]

# A model function takes the position (or values) and the model's data pytree.
ModelFn = Callable[[PyTree, PyTree], Any]


class DataForm(Protocol):
    """How a model's data look to its user, and how they are stored in the `Model`.

    Every adapter takes data in the structure its user gave it (a dict, a tuple of
    arguments, `{Variable: value}`), and `Model.data` / `Model.replace_data` speak that
    structure; inside, the data are a pytree the compiled functions read. A data form
    is static (hashable), part of the model's compilation key.
    """

    def pack(self, data: Any, current: PyTree) -> PyTree:
        """The stored pytree for user `data`, checked against the `current` one.

        **Raises:** `ValueError` naming any key or leaf that does not match,
        `TypeError` naming a leaf that is not an array, `NotImplementedError` where the
        model's data cannot be replaced.
        """
        ...

    def unpack(self, stored: PyTree) -> Any:
        """The user's form of the stored data."""
        ...


def require_values(names: Any, values: Mapping[str, Any], what: str = "value") -> None:
    """Raise `KeyError` naming every one of `names` that `values` lacks (what every
    `unconstrain` says when it is given too little)."""
    missing = [n for n in names if n not in values]
    if missing:
        raise KeyError(f"unconstrain needs a {what} for {missing}; got {sorted(values)}.")


class SameStructure(Frozen):
    """The data form of a pytree taken as it is (`from_jax`, `Model`): new data must
    have the same structure (keys, containers); shapes may change (then recompile)."""

    key = ()

    def pack(self, data: Any, current: PyTree) -> PyTree:
        check_structure(current, data, "data")
        return as_arrays(data, "data")

    def unpack(self, stored: PyTree) -> Any:
        return stored


_RESERVED = ("chain", "draw")  # ArviZ's sample dims


def _check_labels(infos: list[VariableInfo], coords: Mapping[str, Any]) -> None:
    """Names and dims that ArviZ would silently merge, pad or drop, refused here.

    **Raises:** `ValueError` for a variable named `chain` or `draw`; a dim used with two
    lengths; coords whose length differs from their dim's; a variable named like a
    dim."""
    lengths: dict[str, tuple[int, str]] = {}
    for info in infos:
        if info.name in _RESERVED:
            raise ValueError(
                f"variable {info.name!r} has the name of an ArviZ sample dim "
                f"({', '.join(_RESERVED)}): rename it."
            )
        for dim, n in zip(info.dims or (), info.shape if info.dims else (), strict=True):
            if dim in _RESERVED:
                raise ValueError(f"variable {info.name!r} uses the reserved dim {dim!r}.")
            seen = lengths.setdefault(dim, (n, info.name))
            if seen[0] != n:
                raise ValueError(
                    f"dim {dim!r} has length {seen[0]} in {seen[1]!r} and {n} in "
                    f"{info.name!r}: give the axes different dims."
                )
    for dim, labels in coords.items():
        if dim in lengths and len(np.asarray(labels).reshape(-1)) != lengths[dim][0]:
            raise ValueError(
                f"coords[{dim!r}] has {len(np.asarray(labels).reshape(-1))} labels; dim "
                f"{dim!r} has length {lengths[dim][0]} (in {lengths[dim][1]!r})."
            )
    clash = sorted({i.name for i in infos} & set(lengths))
    if clash:
        users = {d: n for d, (_, n) in lengths.items()}
        raise ValueError(
            f"variables {clash} have the names of dims (of {[users[c] for c in clash]}): "
            "xarray would make them one; rename the variable or the dim."
        )


def _python_scalars(data: PyTree) -> list[str]:
    """Leaf paths of `data` that are Python numbers inside a list or tuple (a list of
    floats given where an array was meant)."""
    flat = jax.tree_util.tree_flatten_with_path(data)[0]
    found = {
        jax.tree_util.keystr(path[: max(i for i, k in enumerate(path) if _in_sequence(k))])
        for path, leaf in flat
        if isinstance(leaf, int | float | bool) and any(_in_sequence(k) for k in path)
    }
    return sorted(p or "data" for p in found)


def _in_sequence(key: Any) -> bool:
    return isinstance(key, jax.tree_util.SequenceKey)


def _freeze_coords(
    coords: Mapping[str, Any] | None,
) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not coords:
        return ()
    return tuple((str(k), tuple(np.asarray(v).tolist())) for k, v in coords.items())


@pytree_dataclass
@dataclasses.dataclass(frozen=True, init=False, eq=False, repr=False)
class Model:
    """A log density on an unconstrained space, built from pure JAX functions.

    This is the `LogDensity` every built-in adapter returns. It is a JAX pytree whose
    leaves are the model's data and initial position, and whose static part is the
    functions and metadata. Passing a `Model` to a `jax.jit`-compiled function therefore
    compiles once per model *structure*: new data of the same shapes and dtypes reuse the
    compiled code.

    Most users build one with an adapter (`logdensity.from_jax`, `from_numpyro`, ...).

    **Arguments:**

    - `logdensity_fn`: `(position, data) -> Scalar`, the log density on the
      unconstrained space including all log-Jacobians. Pure JAX.
    - `initial_position`: a valid unconstrained position (any pytree of float arrays).
    - `data`: a pytree of arrays the functions read (traced, not baked in), or `None`.
    - `constrain_fn`: `(position, data) -> dict[str, Array]` to the model's named
      values (latents in their own space plus deterministics). Default: the position's
      leaves under the names of [`logdensity.leaf_names`][] (the identity).
    - `unconstrain_fn`: `(values, data) -> position`, the inverse for the latents.
      Default with the identity `constrain_fn`: rebuild the position from the names.
    - `dims`: `{name: (dim, ...)}` naming the axes of the values; `coords`:
      `{dim: labels}`.
    - `deterministics`: names among the values that are not latents.
    - `backend`: the name of the adapter that built it (`"jax"`, `"numpyro"`, ...).
    - `data_form`: how `data` looks to the user (a [`DataForm`][logdensity.DataForm]);
      default [`SameStructure`][logdensity.SameStructure], the pytree as given.

    **Raises:**

    - `TypeError` if `initial_position` has a leaf that is not a floating array;
      `constrain_fn` returns a value that is not real, integer or boolean (complex);
      or `logdensity_fn` fails on data given as Python lists of numbers (naming them).
    - `ValueError` if `initial_position` has no leaves (`{}`), or if `dims` names a
      variable that `constrain_fn` does not return or gives it the wrong number of
      dims; a variable is named `chain`, `draw` or like a dim; a dim has two
      lengths, or coords of another length than their dim; or if `logdensity_fn` at
      the initial position is not a scalar.
    """

    _initial_position: PyTree
    _data: PyTree
    _logdensity_fn: ModelFn = static_field()
    _constrain_fn: ModelFn = static_field()
    _unconstrain_fn: ModelFn | None = static_field()
    _variables: tuple[VariableInfo, ...] = static_field(())
    _coords: tuple[tuple[str, tuple[Any, ...]], ...] = static_field(())
    _backend: str = static_field("jax")
    _data_form: DataForm = static_field()

    def __init__(
        self,
        logdensity_fn: ModelFn,
        initial_position: PyTree,
        *,
        data: PyTree = None,
        constrain_fn: ModelFn | None = None,
        unconstrain_fn: ModelFn | None = None,
        dims: Mapping[str, tuple[str, ...]] | None = None,
        coords: Mapping[str, Any] | None = None,
        deterministics: tuple[str, ...] = (),
        backend: str = "jax",
        data_form: DataForm | None = None,
    ):
        initial_position = jax.tree.map(jnp.asarray, initial_position)
        if not jax.tree.leaves(initial_position):
            raise ValueError(
                f"initial_position {initial_position!r} has no array leaves: a model needs "
                "at least one unconstrained coordinate to sample."
            )
        for name, leaf in zip(
            leaf_names(initial_position), jax.tree.leaves(initial_position), strict=True
        ):
            if not jnp.issubdtype(leaf.dtype, jnp.floating):
                raise TypeError(
                    f"initial_position leaf {name!r} has dtype {leaf.dtype}; the "
                    "unconstrained position must be floating point (float32/float64)."
                )
        if constrain_fn is None:
            treedef = jax.tree.structure(initial_position)
            names = tuple(leaf_names(initial_position))
            constrain_fn = _IdentityConstrain(names)
            unconstrain_fn = unconstrain_fn or _IdentityUnconstrain(names, treedef)

        try:
            out = jax.eval_shape(logdensity_fn, initial_position, data)
        except TypeError as e:
            listed = _python_scalars(data)
            if not listed:
                raise
            raise TypeError(
                f"logdensity_fn failed on the data ({e}); data {listed} hold Python "
                "numbers in a list or tuple, which JAX takes as a container of scalars, "
                "not an array: pass jnp.asarray(...) (or np.asarray) instead."
            ) from e
        if getattr(out, "shape", None) != ():
            raise ValueError(
                f"logdensity_fn must return a scalar; at the initial position it returns "
                f"shape {getattr(out, 'shape', type(out))}."
            )
        values = jax.eval_shape(constrain_fn, initial_position, data)
        dims = dict(dims or {})
        unknown = set(dims) - set(values)
        if unknown:
            raise ValueError(
                f"dims names {sorted(unknown)}, which constrain does not return "
                f"(it returns {sorted(values)})."
            )
        infos = []
        for name, value in values.items():
            if not (
                jnp.issubdtype(value.dtype, jnp.floating)
                or jnp.issubdtype(value.dtype, jnp.integer)
                or value.dtype == jnp.bool_
            ):
                raise TypeError(
                    f"constrain returns {name!r} of dtype {value.dtype}; draws are real, "
                    "integer or boolean arrays (ArviZ's diagnostics and netCDF take no "
                    f"other): return jnp.real({name}) and jnp.imag({name}) as two values."
                )
            d = tuple(dims[name]) if name in dims else None
            if d is not None and len(d) != len(value.shape):
                raise ValueError(
                    f"dims for {name!r} are {d}, but {name!r} has shape {value.shape} "
                    f"({len(value.shape)} axes)."
                )
            infos.append(VariableInfo(name, tuple(value.shape), d, name in deterministics))
        _check_labels(infos, dict(coords or {}))
        fields = {
            "_initial_position": initial_position,
            "_data": data,
            "_logdensity_fn": logdensity_fn,
            "_constrain_fn": constrain_fn,
            "_unconstrain_fn": unconstrain_fn,
            "_variables": tuple(infos),
            "_coords": _freeze_coords(coords),
            "_backend": backend,
            "_data_form": data_form or SameStructure(),
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    # --- the protocol --------------------------------------------------------------
    def __call__(self, position: PyTree) -> Scalar:
        """The log density at an unconstrained `position`, all log-Jacobians included.

        Returns a scalar of the position's floating dtype.
        """
        return self._logdensity_fn(position, self._data)

    @property
    def initial_position(self) -> PyTree:
        """A valid unconstrained position; it fixes the structure, shapes and dtypes."""
        return self._initial_position

    def constrain(self, position: PyTree) -> dict[str, Array]:
        """Named values in the model's own (constrained) space, deterministics included.

        Each value has the shape given in `variables`; vmap over a batch of positions
        to get a leading batch axis.
        """
        return dict(self._constrain_fn(position, self._data))

    def unconstrain(self, values: Mapping[str, ArrayLike]) -> PyTree:
        """The unconstrained position of the named latent `values` (inverse of
        `constrain`; deterministics are ignored).

        **Raises:** `NotImplementedError` when the model was built with a `constrain_fn`
        but no `unconstrain_fn`; `KeyError` naming a missing latent.
        """
        if self._unconstrain_fn is None:
            raise NotImplementedError(
                f"This {self._backend!r} model was built with a constrain function but "
                "no unconstrain function; pass `unconstrain=` to the adapter."
            )
        return self._unconstrain_fn(values, self._data)

    @property
    def flat(self) -> FlatView:
        """The same density on a 1-D vector (see [`logdensity.FlatView`][])."""
        return FlatView(self)

    @property
    def variables(self) -> dict[str, VariableInfo]:
        """`{name: VariableInfo}` for every value `constrain` returns, in order."""
        return {v.name: v for v in self._variables}

    @property
    def coords(self) -> dict[str, tuple[Any, ...]]:
        """`{dim: labels}` for the dims the model names."""
        return dict(self._coords)

    @property
    def backend(self) -> str:
        """The adapter that built this model (`"jax"`, `"numpyro"`, ...)."""
        return self._backend

    # --- data ----------------------------------------------------------------------
    @property
    def data(self) -> Any:
        """The model's data, in the structure its adapter was given them (a pytree for
        `from_jax`, `{argument: value}` for `from_numpyro`, `{Variable: value}` for
        `from_pytensor`, the `*data` tuple for `from_equinox`; `None` for `from_pymc`,
        whose data are constants of its program)."""
        return self._data_form.unpack(self._data)

    def replace_data(self, data: Any) -> Model:
        """The same model on new `data`, given in the structure of `model.data`.

        With data of the same shapes and dtypes, compiled code is reused (no retrace).

        **Raises:** `ValueError` naming a key or leaf that `data` has and the model's
        data lack, or the other way round (nothing is bound by position); `TypeError`
        naming a leaf that is not an array; `NotImplementedError` for a model whose data
        are baked into its program (`from_pymc`).
        """
        new = object.__new__(type(self))
        for field in dataclasses.fields(self):
            object.__setattr__(new, field.name, getattr(self, field.name))
        object.__setattr__(new, "_data", self._data_form.pack(data, self._data))
        return new

    def rename(self, names: Mapping[str, str] | Callable[[str], str]) -> Model:
        """The same model with its named values renamed: `{old: new}` for some names,
        or a function of every name (e.g. `lambda n: n.split(".")[-1]`).

        `constrain` returns, and `unconstrain` takes, the new names; dims, coords and the
        density are unchanged. Use it to give two backends' versions of one model the
        same names (`kernel.lengthscale` in a module, `lengthscale` in NumPyro), or names
        that xarray's attribute access takes (`layers[0].weight` to `layers_0_weight`).

        **Raises:** `KeyError` naming an old name the model does not have; `ValueError`
        if two values get one name, or a new name is a dim's or `chain`/`draw`.
        """
        old = [v.name for v in self._variables]
        if callable(names):
            mapping = {n: str(names(n)) for n in old}
        else:
            unknown = sorted(set(names) - set(old))
            if unknown:
                raise KeyError(f"rename got {unknown}; the model's values are {old}.")
            mapping = {n: str(names.get(n, n)) for n in old}
        new_names = list(mapping.values())
        twice = sorted({n for n in new_names if new_names.count(n) > 1})
        if twice:
            raise ValueError(f"rename gives several values the names {twice}.")
        infos = [v._replace(name=mapping[v.name]) for v in self._variables]
        _check_labels(infos, dict(self._coords))
        pairs = tuple((a, b) for a, b in mapping.items() if a != b)
        new = object.__new__(type(self))
        for field in dataclasses.fields(self):
            object.__setattr__(new, field.name, getattr(self, field.name))
        object.__setattr__(new, "_constrain_fn", _Renamed(self._constrain_fn, pairs))
        if self._unconstrain_fn is not None:
            object.__setattr__(new, "_unconstrain_fn", _Unrenamed(self._unconstrain_fn, pairs))
        object.__setattr__(new, "_variables", tuple(infos))
        return new

    def __repr__(self) -> str:
        names = ", ".join(f"{v.name}{list(v.shape)}" for v in self._variables)
        kind = type(self).__name__
        return f"{kind}(backend={self._backend!r}, dim={self.flat.dim}, values=[{names}])"


class _Renamed(Frozen):
    """A constrain function whose outputs are renamed by `pairs` `((old, new), ...)`."""

    def __init__(self, fn: ModelFn, pairs: tuple[tuple[str, str], ...]):
        self.fn, self.pairs = fn, pairs
        self.key = (fn, pairs)

    def __call__(self, position: PyTree, data: PyTree) -> dict[str, Array]:
        mapping = dict(self.pairs)
        return {mapping.get(k, k): v for k, v in self.fn(position, data).items()}


class _Unrenamed(_Renamed):
    """An unconstrain function taking the new names of `pairs`."""

    def __call__(self, values: Mapping[str, Any], data: PyTree) -> Any:
        inverse = {new: old for old, new in self.pairs}
        return self.fn({inverse.get(k, k): v for k, v in values.items()}, data)


class _IdentityConstrain(Frozen):
    """constrain for a position already in the model's space: leaves under their names."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.key = (names,)

    def __call__(self, position: PyTree, data: PyTree) -> dict[str, Array]:
        del data
        return dict(zip(self.names, jax.tree.leaves(position), strict=True))


class _IdentityUnconstrain(Frozen):
    def __init__(self, names: tuple[str, ...], treedef: Any):
        self.names, self.treedef = names, treedef
        self.key = (names, treedef)

    def __call__(self, values: Mapping[str, ArrayLike], data: PyTree) -> PyTree:
        del data
        require_values(self.names, values)
        return jax.tree.unflatten(self.treedef, [jnp.asarray(values[n]) for n in self.names])


@jax.tree_util.register_pytree_node_class
class FlatView:
    """A `LogDensity` on a 1-D vector: any `LogDensity` seen through
    `jax.flatten_util.ravel_pytree`.

    `view(x)` equals `model(view.unravel(x))` for `x` of shape `(dim,)`, and the
    `constrain`/`unconstrain` maps are composed accordingly. The vector's dtype is the
    common dtype of the position's leaves (as `ravel_pytree` promotes them). Every
    `LogDensity` has one: `model.flat` for a `Model`, `FlatView(obj)` for any other.
    """

    def __init__(self, model: LogDensity):
        self.model = model

    def tree_flatten(self) -> tuple[tuple[LogDensity], None]:
        return (self.model,), None

    @classmethod
    def tree_unflatten(cls, static: None, children: tuple[LogDensity]) -> FlatView:
        return cls(*children)

    def ravel(self, position: PyTree) -> Float[Array, " dim"]:
        """The 1-D vector of an unconstrained `position` pytree."""
        return ravel_pytree(position)[0]

    def unravel(self, x: Float[Array, " dim"]) -> PyTree:
        """The unconstrained position pytree of a vector `x` of shape `(dim,)`."""
        return ravel_pytree(self.model.initial_position)[1](x)

    @property
    def dim(self) -> int:
        """The number of unconstrained parameters."""
        return int(self.ravel(self.model.initial_position).size)

    def __call__(self, x: Float[Array, " dim"]) -> Scalar:
        """The log density (all log-Jacobians included) at the unconstrained vector `x`."""
        return self.model(self.unravel(x))

    @property
    def initial_position(self) -> Float[Array, " dim"]:
        return self.ravel(self.model.initial_position)

    def constrain(self, x: Float[Array, " dim"]) -> dict[str, Array]:
        return self.model.constrain(self.unravel(x))

    def unconstrain(self, values: Mapping[str, ArrayLike]) -> Float[Array, " dim"]:
        return self.ravel(self.model.unconstrain(values))

    @property
    def flat(self) -> FlatView:
        return self

    @property
    def variables(self) -> Mapping[str, VariableInfo]:
        return self.model.variables

    @property
    def coords(self) -> Mapping[str, tuple[Any, ...]]:
        return self.model.coords

    @property
    def backend(self) -> str:
        return self.model.backend

    def replace_data(self, data: Any) -> FlatView:
        """The flat view of `model.replace_data(data)`."""
        return FlatView(self.model.replace_data(data))  # type: ignore[attr-defined]


class _Method(Frozen):
    """`obj.name(x)` in the `(x, data)` signature of `Model`; equal for the same object,
    so a third-party `LogDensity` sampled twice reuses compiled code."""

    def __init__(self, obj: Any, name: str):
        self.obj, self.name = obj, name
        self.key = (id(obj), name)

    def __call__(self, x: Any, data: Any) -> Any:
        del data
        return getattr(self.obj, self.name)(x)


def as_model(logdensity: Any, what: str = "sample") -> LogDensity:
    """`logdensity` as a pytree `LogDensity` to pass through `jax.jit`: a `Model` (or
    its flat view) as it is, any other object satisfying the protocol wrapped in a
    `Model` that calls its methods.

    **Raises:** `TypeError` naming the protocol's members the object lacks.
    """
    if isinstance(logdensity, Model):
        return logdensity
    if isinstance(logdensity, FlatView):
        return cast(LogDensity, FlatView(as_model(logdensity.model, what)))
    missing = [n for n in protocol_members() if not hasattr(logdensity, n)]
    if missing or not callable(logdensity):
        raise TypeError(
            f"{what} needs a LogDensity (e.g. from logdensity.from_jax); got "
            f"{type(logdensity).__name__}, which lacks {missing or ['__call__']}."
        )
    variables = logdensity.variables
    return Model(
        _Method(logdensity, "__call__"),
        logdensity.initial_position,
        constrain_fn=_Method(logdensity, "constrain"),
        unconstrain_fn=_Method(logdensity, "unconstrain"),
        dims={k: v.dims for k, v in variables.items() if v.dims is not None},
        coords=logdensity.coords,
        deterministics=tuple(k for k, v in variables.items() if v.deterministic),
        backend=logdensity.backend,
    )
