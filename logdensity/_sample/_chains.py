"""The chain map: one chain's function over every chain, vectorized (`vmap`),
sequential (`lax.map`) or parallel (sharded over the devices with `shard_map`)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree

__all__ = ["chain_mesh", "map_chains", "place_chains", "stack_chains"]


def chain_mesh() -> Mesh:
    """Every device on one `"chain"` axis: where `"parallel"` puts the chains."""
    return Mesh(np.array(jax.devices()), ("chain",))


def map_chains(f: Callable, chain_method: str, batched: PyTree, shared: PyTree) -> PyTree:
    """Apply `f(batched_i, shared)` to every chain i (leading axis of `batched`)."""
    if chain_method == "vectorized":
        return jax.vmap(f, in_axes=(0, None))(batched, shared)
    if chain_method == "sequential":
        return jax.lax.map(lambda b: f(b, shared), batched)
    # "parallel": chains sharded over every device; within a device, vectorized.
    per_device = jax.shard_map(
        lambda b, s: jax.vmap(f, in_axes=(0, None))(b, s),
        mesh=chain_mesh(),
        in_specs=(PartitionSpec("chain"), PartitionSpec()),
        out_specs=PartitionSpec("chain"),
        check_vma=False,
    )
    return per_device(batched, shared)


def place_chains(batched: PyTree, chain_method: str) -> PyTree:
    """For `"parallel"`, put chain-batched arrays where the chunk's outputs live (split
    over the devices along the chain axis), so that its first call, fed from one
    device, does not compile a second program for the calls fed by its own outputs."""
    if chain_method != "parallel":
        return batched
    return jax.device_put(batched, NamedSharding(chain_mesh(), PartitionSpec("chain")))


def stack_chains(position: PyTree, num_chains: int) -> PyTree:
    """`position` repeated on a new leading chain axis."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_chains, *jnp.shape(x))), position)
