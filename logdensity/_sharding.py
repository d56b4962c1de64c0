"""Placement over devices and processes, on JAX's own engine: a model's data split over a
mesh axis (`shard_data`), the mesh the loop's `"parallel"` chains use, and the host
transfers that work when arrays span several processes (`jax.distributed`)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, cast

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree

from ._model import FlatView, Model, as_model
from ._protocol import LogDensity
from ._tree import Frozen, leaf_names

__all__ = [
    "barrier",
    "chain_mesh",
    "data_mesh",
    "is_key",
    "is_main_process",
    "quiet_elsewhere",
    "shard_data",
    "through_key_data",
    "to_host",
]

CHAIN, DATA = "chain", "data"


class OnMesh(Frozen):
    """`fn(position, data)` with each data leaf held to its sharding inside a trace
    (`jax.lax.with_sharding_constraint`), so that every compiled program that calls the
    model (the start, the chunk, under `vmap`, `lax.map` or `shard_map`) splits the
    work over the mesh the way the data are split; eager calls run as they are."""

    def __init__(self, fn: Callable, mesh: Mesh, specs: tuple[PartitionSpec, ...]):
        self.fn, self.mesh, self.specs = fn, mesh, specs
        self.key = (fn, mesh, specs)

    def __call__(self, x: Any, data: Any) -> Any:
        leaves, treedef = jax.tree.flatten(data)
        leaves = [
            jax.lax.with_sharding_constraint(leaf, NamedSharding(self.mesh, spec))
            if isinstance(leaf, jax.core.Tracer)
            else leaf
            for leaf, spec in zip(leaves, self.specs, strict=True)
        ]
        return self.fn(x, jax.tree.unflatten(treedef, leaves))


def shard_data(
    logdensity: LogDensity,
    mesh: Mesh | None = None,
    *,
    axis: str = DATA,
    rows: int | None = None,
) -> Model:
    """The same model with its data split by rows over the devices of `mesh`'s `axis`.

    Each log density and gradient is then computed across those devices, each on its
    rows, and XLA's SPMD partitioner (jit's) reduces the sum over rows: one all-reduce
    of the log density and its gradient per chain and leapfrog step. Nothing else
    changes: the values are those of the unsharded model up to the order of the sum
    (float64: ~1e-13 relative). Sample it with any `chain_method`; with `"parallel"`
    the chains go on the mesh's `"chain"` axis (chains × data), so build the mesh with
    both, e.g. `Mesh(np.array(jax.devices()).reshape(2, 2), ("chain", "data"))`. It
    works across processes (`jax.distributed`): the mesh may hold every process's
    devices, and every process must pass the same data.

    **Arguments:**

    - `logdensity`: a model from `from_jax`, `from_numpyro`, `from_pytensor(data=...)`
      or `from_equinox` (any `Model` whose data are traced inputs), or its flat view.
    - `mesh`: a `jax.sharding.Mesh` with an axis named `axis`; default every device
      (`jax.devices()`, all processes') on one `"data"` axis. An `Explicit`-typed mesh
      (`jax.make_mesh`'s default) is used with the same devices and `Auto` axes.
    - `axis`: the mesh axis the rows are split over.
    - `rows`: the number of rows; default the longest leading axis of the data's
      arrays. Every data array whose leading axis has this length is split along it;
      the others (scalars, group-level arrays) are replicated.

    Rows that divide evenly over the axis are stored split (each device holds its
    rows). A row count that does not (71 rat tumors over 4 devices) is stored
    replicated and split inside the programs, where XLA pads the last shard: the work
    is split, the memory is not. New data through `replace_data` keep the split inside
    the programs; call `shard_data` again to store them split.

    **Returns:** a `Model` (a flat view stays a flat view).

    **Raises:**

    - `ValueError` if the model has no traced data (its data are constants of its
      program: `from_pymc`, or `from_pytensor` without `data=`; the message names the
      way to pass them as data), its data are scalars only, `mesh` has no axis `axis`,
      or no data array has `rows` rows (the message lists the data's leading lengths).
    - `TypeError` if `mesh` is not a `jax.sharding.Mesh`.
    """
    if isinstance(logdensity, FlatView):
        return FlatView(shard_data(logdensity.model, mesh, axis=axis, rows=rows))  # type: ignore[return-value]
    model = cast(Model, as_model(logdensity, "shard_data"))  # a Model, or TypeError
    if mesh is None:
        mesh = Mesh(np.array(jax.devices()), (axis,))
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh; got {type(mesh).__name__}.")
    mesh = Mesh(mesh.devices, mesh.axis_names)  # Auto axes: jit's partitioner places the rest
    if axis not in mesh.axis_names:
        raise ValueError(f"the mesh has axes {mesh.axis_names}, not {axis!r} (axis=).")
    data = model._data
    leaves, treedef = jax.tree.flatten(data)
    if not leaves:
        raise ValueError(_no_data(model))
    leading = [int(np.shape(x)[0]) if np.ndim(x) else None for x in leaves]
    lengths = [n for n in leading if n is not None]
    if rows is None:
        if not lengths:
            raise ValueError(
                f"the {model.backend!r} model's data are scalars: nothing to split by rows."
            )
        rows = max(lengths)
    if rows not in lengths:
        names = leaf_names(data)
        raise ValueError(
            f"no data array has {rows} rows (rows=); the data's leading lengths: "
            + ", ".join(f"{n}: {k}" for n, k in zip(names, leading, strict=True))
        )
    size = mesh.shape[axis]
    specs = tuple(PartitionSpec(axis) if n == rows else PartitionSpec() for n in leading)
    placed = [
        jax.device_put(
            np.asarray(to_host(leaf)),  # a leaf sharded before may span processes
            NamedSharding(mesh, spec if rows % size == 0 else PartitionSpec()),
        )
        for leaf, spec in zip(leaves, specs, strict=True)
    ]
    new = object.__new__(Model)
    for name in Model.__dataclass_fields__:
        object.__setattr__(new, name, getattr(model, name))
    object.__setattr__(new, "_data", jax.tree.unflatten(treedef, placed))
    for name in ("_logdensity_fn", "_constrain_fn", "_unconstrain_fn"):
        fn = getattr(model, name)
        if isinstance(fn, OnMesh):  # sharded again: the new placement replaces the old
            fn = fn.fn
        object.__setattr__(new, name, None if fn is None else OnMesh(fn, mesh, specs))
    return new


def _no_data(model: Model) -> str:
    how = {
        "pymc": "from_pymc compiles PyMC's data into its program (pm.Data included); "
        "build the graph with from_pytensor(..., data={variable: value}) to shard them",
        "pytensor": "pass them to from_pytensor as data={variable: value} instead of "
        "as constants of the graph",
    }.get(model.backend, "pass them to the adapter as data, not as constants")
    return f"the {model.backend!r} model has no traced data to shard: {how}."


def data_mesh(model: Any) -> Mesh | None:
    """The mesh `shard_data` put `model`'s data on, or `None`."""
    if isinstance(model, FlatView):
        model = model.model
    fn = getattr(model, "_logdensity_fn", None)
    return fn.mesh if isinstance(fn, OnMesh) else None


def chain_mesh(model: Any = None) -> Mesh:
    """Where `"parallel"` puts the chains: the `"chain"` axis of the mesh the model's
    data are on, else every device (all processes') on one `"chain"` axis.

    **Raises:** `ValueError` if the data are on a mesh without a `"chain"` axis."""
    mesh = data_mesh(model)
    if mesh is None:
        return Mesh(np.array(jax.devices()), (CHAIN,))
    if CHAIN not in mesh.axis_names:
        raise ValueError(
            f"chain_method='parallel' puts the chains on the data mesh's {CHAIN!r} axis, "
            f"and the model's data are on a mesh with axes {mesh.axis_names}: build it "
            f"with both, e.g. Mesh(np.array(jax.devices()).reshape(2, -1), "
            f"({CHAIN!r}, {DATA!r})), or use chain_method='vectorized'."
        )
    return mesh


def to_host(tree: PyTree) -> PyTree:
    """`jax.device_get(tree)`, for arrays split over several processes too: those are
    gathered (`multihost_utils.process_allgather`), so every process gets all of it."""
    leaves, treedef = jax.tree.flatten(tree)
    if not any(_spread(x) for x in leaves):
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    def gather(x: Any) -> Any:
        if not _spread(x):
            return jax.device_get(x)
        if is_key(x):
            return through_key_data(gather, x)
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.unflatten(treedef, [gather(x) for x in leaves])


def is_key(x: Any) -> bool:
    """Whether `x` is an array of typed PRNG keys (`jax.random.key`)."""
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def through_key_data(f: Callable, keys: Any) -> Any:
    """`f` applied to typed `keys` by way of their key data (gathers and placements
    take plain arrays), wrapped back with the same impl."""
    impl = jax.random.key_impl(keys)
    return jax.random.wrap_key_data(f(jax.random.key_data(keys)), impl=impl)


def _spread(x: Any) -> bool:
    return isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated


def barrier(name: str) -> None:
    """Wait for every process (`multihost_utils.sync_global_devices`); nothing under one."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def quiet_elsewhere(fn: Callable) -> Callable:
    """`fn` with its warnings shown on process 0 only (every process runs the loop)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if is_main_process():
            return fn(*args, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return wrapper


def is_main_process() -> bool:
    """Whether this is process 0, the one that shows progress, warns and writes."""
    return jax.process_index() == 0
