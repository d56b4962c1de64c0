"""`Model`, the concrete `LogDensity` the adapters return, and its flat view."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float, PyTree, Scalar

from ._protocol import VariableInfo

__all__ = ["FlatView", "Model", "leaf_names"]

# A model function takes the position (or values) and the model's data pytree.
ModelFn = Callable[[PyTree, PyTree], Any]


def _key_name(key: Any) -> str:
    if isinstance(key, jax.tree_util.DictKey):
        return f".{key.key}"
    if isinstance(key, jax.tree_util.SequenceKey):
        return f"[{key.idx}]"
    if isinstance(key, jax.tree_util.GetAttrKey):
        return f".{key.name}"
    return str(key)


def leaf_names(tree: PyTree, root: str = "x") -> list[str]:
    """Readable names for the leaves of `tree`, in `jax.tree.leaves` order.

    A dict `{"mu": ., "tau": .}` gives `["mu", "tau"]`, an Equinox module gives
    `["weight", "layers[0].bias"]`, a bare array gives `[root]`.
    """
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = "".join(_key_name(k) for k in path).lstrip(".")
        names.append(name or root)
    return names


def _freeze_coords(
    coords: Mapping[str, Any] | None,
) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not coords:
        return ()
    return tuple((str(k), tuple(np.asarray(v).tolist())) for k, v in coords.items())


@jax.tree_util.register_pytree_node_class
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

    **Raises:**

    - `TypeError` if `initial_position` has a leaf that is not a floating array.
    - `ValueError` if `dims` names a variable that `constrain_fn` does not return or
      gives it the wrong number of dims, or if `logdensity_fn` at the initial position
      is not a scalar.
    """

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
    ):
        initial_position = jax.tree.map(jnp.asarray, initial_position)
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
        self._logdensity_fn = logdensity_fn
        self._constrain_fn = constrain_fn
        self._unconstrain_fn = unconstrain_fn
        self._initial_position = initial_position
        self._data = data
        self._backend = backend
        self._unravel = ravel_pytree(initial_position)[1]

        out = jax.eval_shape(logdensity_fn, initial_position, data)
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
            d = tuple(dims[name]) if name in dims else None
            if d is not None and len(d) != len(value.shape):
                raise ValueError(
                    f"dims for {name!r} are {d}, but {name!r} has shape {value.shape} "
                    f"({len(value.shape)} axes)."
                )
            infos.append(VariableInfo(name, tuple(value.shape), d, name in deterministics))
        self._variables = tuple(infos)
        self._coords = _freeze_coords(coords)

    # --- pytree --------------------------------------------------------------------
    def _static(self) -> tuple[Any, ...]:
        return (
            self._logdensity_fn,
            self._constrain_fn,
            self._unconstrain_fn,
            self._unravel,
            self._variables,
            self._coords,
            self._backend,
        )

    def tree_flatten(self) -> tuple[tuple[PyTree, PyTree], tuple[Any, ...]]:
        return (self._initial_position, self._data), self._static()

    @classmethod
    def tree_unflatten(cls, static: tuple[Any, ...], children: tuple[PyTree, PyTree]) -> Model:
        self = object.__new__(cls)
        (
            self._logdensity_fn,
            self._constrain_fn,
            self._unconstrain_fn,
            self._unravel,
            self._variables,
            self._coords,
            self._backend,
        ) = static
        self._initial_position, self._data = children
        return self

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

    @property
    def data(self) -> PyTree:
        """The data pytree the model's functions read (traced, never baked in)."""
        return self._data

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

    def replace_data(self, data: PyTree) -> Model:
        """The same model on new `data`.

        With data of the same shapes and dtypes, compiled code is reused (no retrace).
        """
        return type(self).tree_unflatten(self._static(), (self._initial_position, data))

    def __repr__(self) -> str:
        names = ", ".join(f"{v.name}{list(v.shape)}" for v in self._variables)
        return f"Model(backend={self._backend!r}, dim={self.flat.dim}, values=[{names}])"


class _IdentityConstrain:
    """constrain for a position already in the model's space: leaves under their names."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names

    def __call__(self, position: PyTree, data: PyTree) -> dict[str, Array]:
        del data
        return dict(zip(self.names, jax.tree.leaves(position), strict=True))


class _IdentityUnconstrain:
    def __init__(self, names: tuple[str, ...], treedef: Any):
        self.names = names
        self.treedef = treedef

    def __call__(self, values: Mapping[str, ArrayLike], data: PyTree) -> PyTree:
        del data
        missing = [n for n in self.names if n not in values]
        if missing:
            raise KeyError(f"unconstrain needs values for {missing}; got {sorted(values)}.")
        return jax.tree.unflatten(self.treedef, [jnp.asarray(values[n]) for n in self.names])


@jax.tree_util.register_pytree_node_class
class FlatView:
    """A `LogDensity` on a 1-D vector: `model` seen through `jax.flatten_util.ravel_pytree`.

    `view(x)` equals `model(view.unravel(x))` for `x` of shape `(dim,)`, and the
    `constrain`/`unconstrain` maps are composed accordingly. The vector's dtype is the
    common dtype of the position's leaves (as `ravel_pytree` promotes them).
    """

    def __init__(self, model: Model):
        self.model = model

    def tree_flatten(self) -> tuple[tuple[Model], None]:
        return (self.model,), None

    @classmethod
    def tree_unflatten(cls, static: None, children: tuple[Model]) -> FlatView:
        return cls(*children)

    def ravel(self, position: PyTree) -> Float[Array, " dim"]:
        """The 1-D vector of an unconstrained `position` pytree."""
        return ravel_pytree(position)[0]

    def unravel(self, x: Float[Array, " dim"]) -> PyTree:
        """The unconstrained position pytree of a vector `x` of shape `(dim,)`."""
        return self.model._unravel(x)

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
    def variables(self) -> dict[str, VariableInfo]:
        return self.model.variables

    @property
    def coords(self) -> dict[str, tuple[Any, ...]]:
        return self.model.coords

    @property
    def backend(self) -> str:
        return self.model.backend
