"""The Equinox/parax adapter: `from_equinox`.

A module's free leaves are the raw (unconstrained) arrays that `eqx.partition` finds
once parax's constants (`Fixed`, and the frozen distributions, constraints and functions
inside variables) are held whole. Priors and constraints are read node by node: a
`parax.Random` contributes `log p(x) + log|dx/draw|`, a `parax.Constrained` (no prior)
only `log|dx/draw|`, a plain array nothing (a flat prior) unless `priors` gives one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree, Scalar

from .._model import Model
from .._tree import _key_name, as_arrays, check_structure, pytree_dataclass
from ._helpers import Frozen, require, require_values, static_key

__all__ = ["EquinoxModel", "from_equinox"]

_Path = tuple[Any, ...]


def _name(path: _Path) -> str:
    return "".join(_key_name(k) for k in path).lstrip(".") or "module"


def _child(node: Any, key: Any) -> Any:
    if isinstance(key, jax.tree_util.GetAttrKey):
        return getattr(node, key.name)
    if isinstance(key, jax.tree_util.SequenceKey):
        return node[key.idx]
    if isinstance(key, jax.tree_util.DictKey):
        return node[key.key]
    return None


def _field_dims(unwrapped: Any, path: _Path, shape: tuple[int, ...]) -> tuple[str, ...] | None:
    """Dims named after the integer fields of the module holding a leaf: an axis whose
    length is the value of exactly one such field gets `{module path}.{field}` (an
    `eqx.nn.Linear`'s weight is `(out_features, in_features)`), the other axes
    `{leaf}_dim_{i}`; `None` when no axis is named so."""
    parent = unwrapped
    for key in path[:-1]:
        parent = _child(parent, key)
    if parent is None or not dataclasses.is_dataclass(parent):
        return None
    sizes: dict[int, list[str]] = {}
    for field in dataclasses.fields(parent):
        value = getattr(parent, field.name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            sizes.setdefault(value, []).append(field.name)
    prefix, leaf = _name(path[:-1]), _name(path)
    dims, used = [], set()
    for i, n in enumerate(shape):
        fields = sizes.get(n, [])
        if len(fields) == 1 and fields[0] not in used:
            used.add(fields[0])
            dims.append(f"{prefix}.{fields[0]}" if prefix != "module" else fields[0])
        else:
            dims.append(f"{leaf}_dim_{i}")
    return tuple(dims) if used else None


def _walk(module: Any, path: _Path) -> tuple[str, Any]:
    """The display name of a free leaf at `path`, and the parax variable that owns it.

    The name is the path with the wrappers' own steps removed (a variable's `raw_value`,
    a `Tie`'s `tree`), so a raw leaf is named like the value it becomes after
    `parax.unwrap`: `layers[0].weight`, not `layers[0].weight.raw_value`.
    """
    prx = require("parax", "equinox")
    node, kept, owner = module, [], None
    for key in path:
        attr = getattr(key, "name", None)
        is_raw = isinstance(node, prx.AbstractVariable) and attr == "raw_value"
        is_tie = isinstance(node, prx.Tie) and attr == "tree"
        if isinstance(node, prx.AbstractVariable) and owner is None:
            owner = node
        if not (is_raw or is_tie):
            kept.append(key)
        node = _child(node, key) if node is not None else None
    return _name(tuple(kept)), owner


def _attach_priors(module: Any, priors: PyTree) -> Any:
    """`module` with each inexact-array leaf that `priors` gives a distribution for
    wrapped as `parax.Random(prior, value=leaf)`."""
    prx = require("parax", "equinox")
    from distreqx.distributions import AbstractDistribution

    def is_prior(x: Any) -> bool:
        return x is None or isinstance(x, AbstractDistribution)

    def attach(path: _Path, prior: Any, leaf: Any) -> Any:
        if prior is None:
            return leaf
        if prx.is_variable(leaf):
            raise TypeError(
                f"priors gives {_name(path)!r} a prior, but the module's leaf there is already "
                f"a parax {type(leaf).__name__}; give its prior in the module or here, not both."
            )
        import equinox as eqx

        if not eqx.is_inexact_array(leaf):
            raise TypeError(
                f"priors gives {_name(path)!r} a prior, but the module's leaf there is "
                f"{type(leaf).__name__} {getattr(leaf, 'dtype', '')}, not a floating-point array "
                "or a parax variable; a parameter must be a float array."
            )
        return prx.Random(prior, value=leaf)

    try:
        return jax.tree_util.tree_map_with_path(attach, priors, module, is_leaf=is_prior)
    except ValueError as e:
        raise ValueError(
            "priors must have the module's structure, with a distribution (or None) at each "
            "inexact-array leaf; e.g. `jax.tree.map(lambda _: None, eqx.filter(module, "
            f"eqx.is_inexact_array))` then `eqx.tree_at` the priors in. ({e})"
        ) from e


def _live_outputs(fn: Callable[[Any], list[Array]], position: Any) -> list[bool]:
    """Which outputs of `fn(position)` depend on `position` (a forward pass over the
    jaxpr): a `Fixed` leaf's value, say, does not, and is left out of the draws."""
    from jax.extend.core import Literal

    jaxpr = jax.make_jaxpr(fn)(position).jaxpr
    live = set(jaxpr.invars)
    for eqn in jaxpr.eqns:
        if any(not isinstance(v, Literal) and v in live for v in eqn.invars):
            live.update(eqn.outvars)
    return [not isinstance(v, Literal) and v in live for v in jaxpr.outvars]


# The largest constant array of a module (a prior's parameters, a `Fixed` value) folded
# into compiled code, in bytes; larger ones (fixed random features, say) stay traced
# inputs, so that a big constant neither bloats the program nor slows XLA's constant
# folding (it evaluates folded operations one element at a time).
_FOLD_MAX_BYTES = 8192


class _Structure(Frozen):
    """Everything static about one module: how a position and the data make it whole.

    The module's small constant arrays (prior parameters, parax's transform parameters,
    small `Fixed` values: up to `_FOLD_MAX_BYTES` each) are folded into compiled code,
    as constants, so that XLA folds what is computed from them alone (a prior's
    normaliser, a constrained value's parameters); NumPyro's priors, Python numbers in
    the model function, are folded the same way. Larger ones travel in the `Model`'s
    data, traced. Two structures of equal shape, type, static fields and folded values
    compare equal and share compiled code.
    """

    def __init__(self, module: Any, log_likelihood: Callable[..., Any]):
        import equinox as eqx

        prx = require("parax", "equinox")
        self.log_likelihood = log_likelihood
        free, static = eqx.partition(module, eqx.is_inexact_array, is_leaf=prx.is_constant)
        constants, rest = eqx.partition(static, eqx.is_array)
        folded, constants = eqx.partition(constants, _foldable)
        self.free_def = jax.tree.structure(free)
        self.rest = rest
        paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(free)[0]]
        walked = [_walk(module, p) for p in paths]
        names = [n for n, _ in walked]
        if len(set(names)) != len(names):  # a variable with two raw arrays: full paths
            names = [_name(p) for p in paths]
        self.names = tuple(names)
        self.owners = tuple(owner for _, owner in walked)
        # a raw leaf can be set from its value when its owner is a parax variable with an
        # inverse (`wrap`) holding it directly, or when it has no owner (a plain array)
        self.invertible = tuple(
            owner is None
            or (isinstance(owner, prx.AbstractWrappable) and eqx.is_array(owner.raw_value))
            for owner in self.owners
        )
        rest_leaves, rest_def = jax.tree.flatten(rest)
        folded_leaves, folded_def = jax.tree.flatten(folded)
        self.key = (
            log_likelihood,
            self.free_def,
            rest_def,
            tuple(map(static_key, rest_leaves)),
            folded_def,
            tuple(_value_key(x) for x in folded_leaves),
        )
        self.folded = folded
        self.initial_position = dict(zip(self.names, jax.tree.leaves(free), strict=True))
        self.constants = constants

    def module(self, position: Mapping[str, Array], constants: PyTree) -> Any:
        """The wrapped module (parax variables included) at `position`."""
        import equinox as eqx

        free = jax.tree.unflatten(self.free_def, [position[n] for n in self.names])
        # constants, folded and rest split one tree leaf by leaf: join them first. Joined
        # with `free` in one call, a frozen node (a leaf of `free`'s partition) was taken
        # whole from `constants`, dropping its non-array fields (a Block bijector's `ndims`).
        return eqx.combine(free, eqx.combine(constants, self.folded, self.rest))


def _foldable(x: Any) -> bool:
    return isinstance(x, jax.Array | np.ndarray) and x.nbytes <= _FOLD_MAX_BYTES


def _value_key(x: Any) -> tuple[Any, ...]:
    """A folded array's identity in a structure's key: its type and its bytes."""
    value = np.asarray(x)
    return (value.shape, str(value.dtype), value.tobytes())


def _log_prior(module: Any) -> Scalar:
    """The log prior of `module`'s parax nodes on the raw space, log-Jacobians included."""
    prx = require("parax", "equinox")
    total = jnp.zeros(())
    for node in jax.tree.leaves(module, is_leaf=_is_node):
        if not _is_node(node) or prx.is_constant(node):
            continue
        constraint = prx.as_unwrapped(node.constraint)
        value, log_det = constraint.bijector.forward_and_log_det(node.raw_value)
        total = total + jnp.sum(log_det)
        if prx.is_probabilistic(node):
            total = total + jnp.sum(prx.as_unwrapped(node.distribution).log_prob(value))
    return total


def _is_node(x: Any) -> bool:
    prx = require("parax", "equinox")
    return prx.is_probabilistic(x) or prx.is_constrained(x) or prx.is_constant(x)


def _check_nodes(module: Any) -> None:
    prx = require("parax", "equinox")
    import equinox as eqx

    for path, node in jax.tree_util.tree_flatten_with_path(module, is_leaf=_is_node)[0]:
        if not _is_node(node) or prx.is_constant(node):
            continue
        raw = getattr(node, "raw_value", None)
        if isinstance(raw, jax.Array | np.ndarray) and not eqx.is_inexact_array(raw):
            raise TypeError(
                f"{_name(path)!r}: the raw value of a parax {type(node).__name__} must be a "
                f"floating-point array, got dtype {raw.dtype}."
            )
        if not eqx.is_inexact_array(raw):
            raise NotImplementedError(
                f"{_name(path)!r} is a parax {type(node).__name__} over a pytree; "
                "from_equinox reads priors and constraints from nodes holding one array "
                "(parax.Random, parax.Constrained, Probabilize of an array)."
            )


class _LogDensity(Frozen):
    def __init__(self, structure: _Structure):
        self.structure = structure
        self.key = (structure,)

    def __call__(
        self, position: Mapping[str, Array], data: tuple[PyTree, tuple[Any, ...], dict[str, Any]]
    ) -> Any:
        prx = require("parax", "equinox")
        constants, args, kwargs = data
        module = self.structure.module(position, constants)
        log_likelihood = self.structure.log_likelihood(prx.unwrap(module), *args, **kwargs)
        return _log_prior(module) + log_likelihood


class _Constrain(_LogDensity):
    """`position -> {path: value}` for every leaf of the unwrapped module that the
    position moves (free leaves, tied targets, derived values; not `Fixed` ones)."""

    def __init__(
        self,
        structure: _Structure,
        names: tuple[str, ...],
        selected: tuple[int, ...],
        deterministics: Callable[..., Mapping[str, Array]] | None = None,
    ):
        super().__init__(structure)
        self.names, self.selected = names, selected
        self.deterministics = deterministics
        self.key = (structure, names, selected, deterministics)

    def unwrapped(self, position: Mapping[str, Array], constants: PyTree) -> Any:
        prx = require("parax", "equinox")
        return prx.unwrap(self.structure.module(position, constants))

    def __call__(self, position: Mapping[str, Array], data: Any) -> dict[str, Array]:
        module = self.unwrapped(position, data[0])
        leaves = jax.tree.leaves(module)
        values = {name: leaves[i] for name, i in zip(self.names, self.selected, strict=True)}
        if self.deterministics is not None:
            extra = dict(self.deterministics(module, *data[1], **data[2]))
            clash = sorted(set(extra) & set(values))
            if clash:
                raise ValueError(
                    f"deterministics {clash} have the names of module leaves; rename them."
                )
            values.update(extra)
        return values


class _Unconstrain(_LogDensity):
    """`{path: value} -> position`, inverting each variable's own bijector."""

    def __call__(self, values: Mapping[str, Any], data: Any) -> dict[str, Array]:
        position = {}
        s = self.structure
        for name, owner, invertible in zip(s.names, s.owners, s.invertible, strict=True):
            if not invertible:
                raise NotImplementedError(
                    f"{name!r} is held by a parax {type(owner).__name__}, which has no "
                    "inverse from its value to its raw value; give the position directly."
                )
            require_values([name], values)
            value = jnp.asarray(values[name])
            position[name] = value if owner is None else owner.wrap(value).raw_value
        return position


class _Arguments(Frozen):
    """The data form of `from_equinox`: the `*data` tuple, or the `data=` dict, as
    given. `replace_data` takes the same (as many arguments, or the same keys), each of
    the structure it had; the module's constants stay."""

    def __init__(self, keyword: bool):
        self.keyword = keyword
        self.key = (keyword,)

    def unpack(self, stored: tuple[PyTree, tuple[Any, ...], dict[str, Any]]) -> Any:
        return stored[2] if self.keyword else stored[1]

    def pack(self, data: Any, current: tuple[PyTree, tuple[Any, ...], dict[str, Any]]) -> Any:
        constants, args, kwargs = current
        if self.keyword:
            if not isinstance(data, Mapping):
                raise TypeError(
                    f"replace_data takes a dict with the keys {sorted(kwargs)} (the model was "
                    f"built with data=...); got {type(data).__name__}."
                )
            check_structure(kwargs, dict(data), "data")
            return constants, args, as_arrays(dict(data), "data")
        if not isinstance(data, tuple | list) or len(data) != len(args):
            got = (
                f"{len(data)} arguments" if isinstance(data, tuple | list) else type(data).__name__
            )
            raise ValueError(
                f"replace_data takes the tuple of {len(args)} data arguments that "
                f"log_likelihood receives after the module (as model.data gives them); "
                f"got {got}."
            )
        for i, (old, new) in enumerate(zip(args, data, strict=True)):
            check_structure(old, new, f"data[{i}]")
        return constants, as_arrays(tuple(data), "data"), kwargs


@pytree_dataclass
@dataclasses.dataclass(frozen=True, init=False, eq=False, repr=False)
class EquinoxModel(Model):
    """A [`logdensity.Model`][] built from an Equinox module by
    [`logdensity.from_equinox`][], with the way back to the module.

    `model.module(position)` is the **unwrapped** module (parameters in their own space)
    at an unconstrained position, and `model.rebuild(values)` the unwrapped module with
    the named constrained `values` (as `constrain` returns them, or as stored in the
    posterior) put in place. Both are pure JAX: `jax.vmap(lambda v: model.rebuild(v)(x))`
    over a batch of draws gives the predictions of every draw.
    """

    def _constrain_and_names(self) -> tuple[_Constrain, dict[str, str]]:
        """The adapter's own constrain function, and `{name: its name there}` (the
        names of `rename` mapped back)."""
        fn: Any = self._constrain_fn
        inverses = []
        while not isinstance(fn, _Constrain):  # renamed, perhaps more than once
            inverses.append({new: old for old, new in fn.pairs})
            fn = fn.fn
        original = {}
        for v in self._variables:
            name = v.name
            for inverse in inverses:  # outermost first
                name = inverse.get(name, name)
            original[v.name] = name
        return fn, original

    def module(self, position: Mapping[str, Array]) -> Any:
        """The unwrapped module at the unconstrained `position`."""
        fn, _ = self._constrain_and_names()
        return fn.unwrapped(position, self._data[0])

    def rebuild(self, values: Mapping[str, Any]) -> Any:
        """The unwrapped module with `values` (`{path: constrained value}`) in place.

        Values not given keep those at the initial position; the values of
        `deterministics` (functions of the module, not leaves) are ignored.
        **Raises:** `KeyError` for a name the model does not have.
        """
        fn, original = self._constrain_and_names()
        unknown = set(values) - set(self.variables)
        if unknown:
            raise KeyError(
                f"rebuild got {sorted(unknown)}; the model's values are {list(self.variables)}."
            )
        values = {original[k]: v for k, v in values.items()}
        template = fn.unwrapped(self._initial_position, self._data[0])
        leaves, treedef = jax.tree.flatten(template)
        for name, i in zip(fn.names, fn.selected, strict=True):
            if name in values:
                leaves[i] = jnp.asarray(values[name], leaves[i].dtype)
        return jax.tree.unflatten(treedef, leaves)


def from_equinox(
    module: Any,
    log_likelihood: Callable[..., Scalar],
    *args: Any,
    data: Mapping[str, Any] | None = None,
    priors: PyTree = None,
    deterministics: Callable[..., Mapping[str, Array]] | None = None,
    dims: Mapping[str, tuple[str, ...]] | None = None,
    coords: Mapping[str, Any] | None = None,
    flat_priors: bool = False,
) -> EquinoxModel:
    """A `LogDensity` from an Equinox module whose leaves carry their priors (parax).

    **Arguments:**

    - `module`: an `eqx.Module` (or any pytree). Its leaves may be parax variables:
      `parax.Random(prior)` (a distreqx or `parax.distributions` prior; its raw space
      and bijector come from the prior's support, as parax infers them),
      `parax.Constrained(constraint, value)` (a flat prior on the constraint's
      support), `parax.Fixed` (held fixed, not sampled), `parax.Derived`,
      `parax.Tie` (the target follows the source, only the source is sampled). A plain
      floating-point array needs a prior (from `priors`), `parax.Fixed` (fixed random
      features, say), or `flat_priors=True`. Non-float and non-array leaves (ints,
      functions, activation choices) stay static.
    - `log_likelihood`: `log_likelihood(model, *args, **data) -> Scalar`, called with the
      **unwrapped** model (`parax.unwrap`: every parameter in its own, constrained
      space, `Fixed`/`Tie`/`Derived` resolved). Pure JAX. It may add terms of its own
      (a hierarchical prior whose parameters are other leaves, say).
    - `*args`, or `data`: the data, passed to `log_likelihood` (and `deterministics`)
      after the model, positionally or (a dict) as keywords; traced, not baked into
      compiled code. `model.data` is what was given (the tuple or the dict), and
      `model.replace_data(new)` takes the same: as many arguments, or the same keys,
      each of the same structure. (The module's own small constant arrays, prior
      parameters and `Fixed` values of up to 8 KiB each, are compiled in, so that XLA
      folds what depends on them alone; larger ones are traced like the data.)
    - `priors`: for a plain Equinox module, a pytree of distributions with the
      module's structure (a distribution, or `None`, at each inexact-array leaf).
    - `deterministics`: `deterministics(model, *args, **data) -> {name: Array}`, called with the
      unwrapped model like `log_likelihood`: named functions of several leaves (e.g.
      `theta = mu + tau * theta_trans`) reported by `constrain` and kept in the draws,
      NumPyro's `numpyro.deterministic`. Their names must differ from the leaves'.
    - `flat_priors`: sample plain float arrays without a prior under a flat (improper)
      prior on the real line, as parax's `tree_distributions` treats them. Off by
      default: a leaf nobody gave a prior is refused, not silently sampled.
    - `dims`, `coords`: ArviZ dimension names per value (by path name) and labels.
      Without them, an axis whose length is the value of exactly one integer field of
      the module holding the leaf is named after it: `layers[0].weight` of an
      `eqx.nn.Linear(3, 15)` has dims `(layers[0].out_features, layers[0].in_features)`,
      shared with its bias; other axes are `{path}_dim_{i}`.

    **Returns:** an [`EquinoxModel`][logdensity.adapters.EquinoxModel], a `Model`
    whose position is `{path: raw value}` for every free leaf (path names as the
    unwrapped module would have them: `weight`, `layers[0].bias`; the raw value is
    parax's `raw_value`, unconstrained, float32 or float64 as the module holds it). The
    log density is the prior on that raw space (every log-Jacobian included) plus the
    likelihood. `constrain` returns every leaf of the unwrapped module that the
    position moves: the free leaves in their own space, and as deterministics the tied
    targets and derived values.

    **Float32 note:** for a prior with an inverse CDF (Gamma, Beta, LogNormal, ...),
    parax's raw space is the prior's Gaussian copula; its map clips where the normal
    CDF rounds to 0 or 1, about ±5 prior standard deviations in float32 (±8 in
    float64), and the likelihood's gradient vanishes there. Use
    `jax.config.update("jax_enable_x64", True)` when the posterior may sit in a prior's
    tail.

    **Raises:**

    - `TypeError` naming the path when `priors` gives a prior to a leaf that is not a
      floating-point array, or a parax variable's raw value is not one;
    - `NotImplementedError` naming the path for a prior or constraint over a whole
      pytree (`Probabilize`/`Constrain` of a subtree: give each leaf its own);
    - `ValueError` naming the paths of plain float arrays without a prior (unless
      `flat_priors`), with the fixes;
    - `ValueError` when the module has no free leaf, `priors` does not match its
      structure, `log_likelihood` does not return a scalar, or a deterministic has a
      leaf's name.
    """
    require("parax", "equinox")
    if args and data is not None:
        raise TypeError("give the data as *args or as data={...}, not both.")
    given = (as_arrays(tuple(args), "data"), as_arrays(dict(data or {}), "data"))
    if priors is not None:
        module = _attach_priors(module, priors)
    _check_nodes(module)
    structure = _Structure(module, log_likelihood)
    stored = (structure.constants, *given)
    if not structure.names:
        raise ValueError(
            "the module has no free leaf to sample: every float array is Fixed, static or absent."
        )
    flat = [n for n, owner in zip(structure.names, structure.owners, strict=True) if owner is None]
    if flat and not flat_priors:
        raise ValueError(
            f"the module's leaves {flat} are plain float arrays without a prior: they "
            "would be sampled under a flat (improper) prior. Hold them fixed with "
            "parax.Fixed(value) (e.g. fixed random features), give them a prior "
            "(parax.Random(prior), or priors=), or, if log_likelihood gives them their "
            "prior (a hierarchical prior on other leaves) or a flat prior is meant, pass "
            "flat_priors=True."
        )
    position = structure.initial_position
    constrain = _Constrain(structure, (), ())
    import equinox as eqx

    # the unwrapped module's structure and leaf types, traced abstractly: run eagerly,
    # parax's unwrapping compiled one small program per operation (43 on the zoo's
    # hierarchical model, 3.6 s)
    unwrapped = eqx.filter_eval_shape(constrain.unwrapped, position, structure.constants)

    def inexact(leaf: Any) -> bool:
        return isinstance(leaf, jax.ShapeDtypeStruct) and jnp.issubdtype(leaf.dtype, jnp.inexact)

    flat_with_paths = jax.tree_util.tree_flatten_with_path(unwrapped)[0]
    candidates = [
        (i, _name(path)) for i, (path, leaf) in enumerate(flat_with_paths) if inexact(leaf)
    ]
    found_dims = {}
    for path, leaf in flat_with_paths:
        if inexact(leaf) and leaf.ndim:
            d = _field_dims(unwrapped, path, tuple(leaf.shape))
            if d is not None:
                found_dims[_name(path)] = d

    def candidate_leaves(p: Mapping[str, Array]) -> list[Array]:
        leaves = jax.tree.leaves(constrain.unwrapped(p, structure.constants))
        return [leaves[i] for i, _ in candidates]

    live = _live_outputs(candidate_leaves, position)
    chosen = [(i, name) for (i, name), is_live in zip(candidates, live, strict=True) if is_live]
    constrain = _Constrain(
        structure, tuple(n for _, n in chosen), tuple(i for i, _ in chosen), deterministics
    )
    latents = {n for n, ok in zip(structure.names, structure.invertible, strict=True) if ok}
    names = constrain.names
    if deterministics is not None:  # their names are only known by tracing them
        names = tuple(jax.eval_shape(constrain, position, stored))
    dims = {**{k: v for k, v in found_dims.items() if k in names}, **(dims or {})}
    return EquinoxModel(
        _LogDensity(structure),
        position,
        data=stored,
        constrain_fn=constrain,
        unconstrain_fn=_Unconstrain(structure),
        dims=dims,
        coords=coords,
        deterministics=tuple(n for n in names if n not in latents),
        backend="equinox",
        data_form=_Arguments(keyword=data is not None),
    )
