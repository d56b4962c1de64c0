"""The chain map: one chain's function over every chain, vectorized (`vmap`),
sequential (`lax.map`) or parallel (sharded over the devices with `shard_map`: every
device of every process, or the `"chain"` axis of the mesh the model's data are on);
and `threaded`, one chain's program run for every chain in host threads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree

from .._sharding import CHAIN, chain_mesh, is_key, through_key_data, to_host
from ._compiled import Compiled
from ._settings import cores

__all__ = [
    "chain_mesh",
    "join_chains",
    "map_chains",
    "place_chains",
    "split_chains",
    "stack_chains",
    "threaded",
]


def map_chains(
    f: Callable, chain_method: str, batched: PyTree, shared: PyTree, mesh: Mesh | None = None
) -> PyTree:
    """Apply `f(batched_i, shared)` to every chain i (leading axis of `batched`); with
    `"parallel"`, over `mesh`'s `"chain"` axis (default `chain_mesh()`, every device):
    one `shard_map` loop per device, or, on a mesh with data axes too, the vectorized
    program split by jit's partitioner (`_partitioned`)."""
    if chain_method == "vectorized":
        return jax.vmap(f, in_axes=(0, None))(batched, shared)
    if chain_method in ("sequential", "threaded"):  # threaded: one chain per program
        return jax.lax.map(lambda b: f(b, shared), batched)
    # "parallel": chains sharded over the chain axis; within a device, vectorized.
    mesh = chain_mesh() if mesh is None else mesh
    if len(mesh.axis_names) > 1:
        return _partitioned(f, batched, shared, mesh)
    per_device = jax.shard_map(
        lambda b, s: jax.vmap(f, in_axes=(0, None))(b, s),
        mesh=mesh,
        in_specs=(PartitionSpec(CHAIN), PartitionSpec()),
        out_specs=PartitionSpec(CHAIN),
        check_vma=False,
    )
    return per_device(batched, shared)


def _partitioned(f: Callable, batched: PyTree, shared: PyTree, mesh: Mesh) -> PyTree:
    """Chains × data: the vectorized program with the chain axis split over the mesh's
    `"chain"` axis by jit's partitioner (the data's axes are the model's own), so the
    chains step in lockstep. Not one `shard_map` loop per chain group: the partitioner's
    collectives for the data span every device of the mesh, and XLA's CPU collectives
    deadlock (a 40 s rendezvous timeout) when the groups' NUTS loops run different
    numbers of iterations."""
    split = NamedSharding(mesh, PartitionSpec(CHAIN))
    batched = jax.lax.with_sharding_constraint(batched, split)
    out = jax.vmap(f, in_axes=(0, None))(batched, shared)
    return jax.lax.with_sharding_constraint(out, split)


def place_chains(batched: PyTree, chain_method: str, mesh: Mesh | None = None) -> PyTree:
    """For `"parallel"`, put chain-batched arrays where the chunk's outputs live (split
    along the chain axis of `mesh`, default `chain_mesh()`), so that its first call, fed
    from one device, does not compile a second program for the calls fed by its own
    outputs. Arrays already there stay. The mesh may span several processes: each
    process holds the same values, and a process's own array goes through its host
    memory."""
    if chain_method != "parallel":
        return batched
    sharding = NamedSharding(chain_mesh() if mesh is None else mesh, PartitionSpec(CHAIN))

    def place(x: Any) -> Any:
        if getattr(x, "sharding", None) == sharding:
            return x
        if is_key(x):
            return through_key_data(place, x)
        if x.is_fully_addressable and jax.process_count() > 1:
            x = np.asarray(x)  # one process's array onto every process's devices
        return jax.device_put(x, sharding)

    return jax.tree.map(place, batched)


def stack_chains(position: PyTree, num_chains: int) -> PyTree:
    """`position` repeated on a new leading chain axis."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_chains, *jnp.shape(x))), position)


# one worker per core: XLA runs each chain's program on the thread that calls it
_CHAINS = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="logdensity-chain")


@partial(Compiled, static_argnums=(), once=True)
def split_chains(batched: PyTree) -> list[PyTree]:
    """`batched` as one pytree per chain, each with a leading axis of 1."""
    n = jax.tree.leaves(batched)[0].shape[0]
    return [jax.tree.map(lambda x, c=c: x[c : c + 1], batched) for c in range(n)]


@partial(Compiled, static_argnums=(), once=True)
def join_chains(parts: Sequence[PyTree]) -> PyTree:
    """The inverse of `split_chains`."""
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)


def threaded(
    program: Callable[..., tuple[PyTree, PyTree]], model: Any, state: PyTree, *args: Any
) -> tuple[PyTree, PyTree]:
    """`"threaded"` chains: `program(model, state_c, *args)` for every chain c (its
    slice of `state`, a leading axis of 1) in host threads, one per core at a time;
    XLA releases the GIL while a program runs, so the chains use every core and none
    waits for another's trajectory (nutpie's one thread per chain). `program` is an AOT
    executable, which traces nothing in the workers (JAX's config is thread-local).

    **Returns:** the new states joined on the device, and the outputs joined on the
    host (`np.concatenate` along the chain axis).

    **Raises:** whatever a chain's program raised, after the chains before it finished.
    """

    def one(part: PyTree) -> tuple[PyTree, PyTree]:
        new, out = program(model, part, *args)
        return jax.block_until_ready(new), to_host(out)

    futures = [_CHAINS.submit(one, part) for part in split_chains(state)]
    done = [f.result() for f in futures]
    outs = jax.tree.map(lambda *xs: np.concatenate(xs), *[out for _, out in done])
    return join_chains([new for new, _ in done]), outs
