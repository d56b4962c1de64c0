"""The compiled programs: the start of every chain, and a chunk of steps. One chain's
pieces (`init_chain`, `transition`) are pure and shared with every other consumer of
the loop (`logdensity.testing.sbc`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._protocol import LogDensity
from .._sharding import data_mesh
from ._adaptation import adaptation
from ._chains import chain_mesh, join_chains, map_chains, split_chains, stack_chains
from ._compiled import Compiled, release
from ._kernel import Stats, nuts, zero_stats
from ._precision import in_model_dtypes, in_sampler_dtype, sampler_dtype, sampler_precision
from ._settings import Config
from ._state import SamplerState

__all__ = [
    "chain_keys",
    "chunk",
    "end_warmup",
    "init_chain",
    "jittered",
    "precompile_chunk",
    "release",
    "start",
    "state_shapes",
    "transition",
]


def jittered(model: LogDensity, rng_key: PRNGKeyArray, jitter: float | Array) -> PyTree:
    """`initial_position + uniform(-jitter, jitter)` per coordinate (Stan's start)."""
    flat0, unravel = ravel_pytree(model.initial_position)
    u = jax.random.uniform(rng_key, flat0.shape, flat0.dtype, -jitter, jitter)
    return unravel(flat0 + u)


def init_chain(
    model: LogDensity, config: Config, rng_key: PRNGKeyArray, position: PyTree
) -> tuple[Any, Any]:
    """One chain's kernel and adaptation states at `position` (the kernel's position
    holds every leaf in the sampler's dtype, `_precision`)."""
    position = in_sampler_dtype(position, model.initial_position)
    with sampler_precision(model, sampler_dtype(model.initial_position)) as logdensity_fn:
        kernel_state = nuts(config).init(position, logdensity_fn)
        states = kernel_state, adaptation(config).init(rng_key, kernel_state, logdensity_fn)
        # Python scalars in the states become arrays here, in the block's x64 mode
        return jax.tree.map(jnp.asarray, states)


def state_shapes(model: LogDensity, config: Config, num_chains: int, keys: Any) -> SamplerState:
    """The structure of every chain's state (`jax.ShapeDtypeStruct` leaves, `keys` as
    given), traced but not compiled: the template a stored state is rebuilt into."""

    def init(position: PyTree) -> Any:
        init_keys = jax.random.split(jax.random.key(0), num_chains)
        positions = stack_chains(position, num_chains)
        return jax.vmap(lambda k, p: init_chain(model, config, k, p))(init_keys, positions)

    kernel, adapted = jax.eval_shape(init, model.initial_position)
    return SamplerState(kernel, adapted, keys, jax.ShapeDtypeStruct((num_chains,), jnp.int32))


def chain_keys(rng_key: PRNGKeyArray, num_chains: int) -> tuple[PRNGKeyArray, ...]:
    """Every chain's keys from `rng_key`: `init_key, run_key = split(rng_key)`; chain `c`
    draws its start from `split(init_key)[c]`, its first step size from
    `split(fold_in(init_key, 1))[c]`, and steps with `split(run_key)[c]`.

    **Returns:** `(start_keys, step_size_keys, run_keys)`, each `(num_chains,)`."""
    init_key, run_key = jax.random.split(rng_key)
    return (
        jax.random.split(init_key, num_chains),
        jax.random.split(jax.random.fold_in(init_key, 1), num_chains),
        jax.random.split(run_key, num_chains),
    )


def transition(
    model: LogDensity,
    config: Config,
    rng_key: PRNGKeyArray,
    kernel_state: Any,
    adaptation_state: Any,
    stage: Array,
    adapting: Array | bool,
) -> tuple[Any, Any, Stats]:
    """One NUTS step at the adaptation's current parameters, then (where `adapting`)
    the adaptation's update with the step's `stage` of the schedule."""
    adapt = adaptation(config)
    with sampler_precision(model, sampler_dtype(model.initial_position)) as logdensity_fn:
        parameters = adapt.parameters(adaptation_state)
        kernel_state, stats = nuts(config).step(rng_key, kernel_state, logdensity_fn, parameters)
        adaptation_state = jax.lax.cond(
            adapting,
            lambda a: adapt.update(a, stage, kernel_state, stats),
            lambda a: a,
            adaptation_state,
        )
    return kernel_state, adaptation_state, stats


@Compiled
def start(
    model: LogDensity,
    config: Config,
    rng_key: PRNGKeyArray,
    positions: PyTree,
    redraw: Array,
    attempt: int,
    jitter: float,
) -> tuple[PyTree, Array, list[Array], SamplerState]:
    """Start every chain, in one compiled program (one compilation of the model's
    gradient, not one per step of the start; the chains' keys derived here too, not in
    small programs of their own): redraw the chains marked `redraw` at
    `initial_position + uniform(-jitter, jitter)`, evaluate the log density and its
    gradient there (whether each leaf's gradient is finite), find a first step size and
    initialise the adaptation. The chains' keys are `chain_keys(rng_key)`.

    **Returns:** the positions, their log densities, per leaf whether each chain's
    gradient is finite, and the `SamplerState` at step 0."""
    num_chains = jnp.shape(redraw)[0]
    keys, step_keys, run_keys = chain_keys(rng_key, num_chains)
    candidates = jax.vmap(lambda k: jittered(model, k, jitter))(
        jax.vmap(jax.random.fold_in, (0, None))(keys, attempt)
    )
    positions = jax.tree.map(
        lambda old, new: jnp.where(jnp.reshape(redraw, (-1,) + (1,) * (new.ndim - 1)), new, old),
        positions,
        candidates,
    )
    kernel_states, adaptation_states = jax.vmap(lambda k, p: init_chain(model, config, k, p))(
        step_keys, positions
    )
    grad_ok = [
        jnp.all(jnp.isfinite(g).reshape(g.shape[0], -1), axis=1)
        for g in jax.tree.leaves(kernel_states.logdensity_grad)
    ]
    steps = jnp.zeros(num_chains, jnp.int32)
    state = SamplerState(kernel_states, adaptation_states, run_keys, steps)
    return positions, kernel_states.logdensity, grad_ok, state


def _masked_scan(step: Callable, carry: Any, xs: tuple[Array, ...], zeros: Any) -> tuple[Any, Any]:
    """`lax.scan` of `step(carry, x)` where `x[-1]` says whether the step is real.

    Chunks have one fixed length so that each compiles once; the steps past the end of
    a phase are skipped by a `lax.cond` on an unbatched flag (a real branch, even under
    `vmap`), and output `zeros` (the structure of `step`'s output), which the host drops.
    """

    def masked(carry: Any, x: tuple[Array, ...]) -> tuple[Any, Any]:
        return jax.lax.cond(x[-1], step, lambda c, _: (c, zeros), carry, x)

    return jax.lax.scan(masked, carry, xs)


@Compiled
def chunk(
    model: LogDensity,
    config: Config,
    state: SamplerState,
    schedule: Array,
    active: Array,
    adapting: Array,
) -> tuple[SamplerState, tuple[Stats, dict[str, Array]]]:
    """`len(active)` steps of every chain from `state` (the first `sum(active)` of them
    real), with the adaptation updated where `adapting` (one program for warmup and
    sampling: half the compilation of two). Returns the new state and, per step, the
    sample stats and `model.constrain` of the position, `(chain, len(active), ...)`."""

    def one_chain(batched: SamplerState, shared: Any) -> Any:
        model, schedule, active, adapting = shared
        first = batched.step

        def step(carry: Any, x: Any) -> Any:
            kernel_state, adaptation_state = carry
            offset, stage, _ = x
            kernel_state, adaptation_state, stats = transition(
                model,
                config,
                jax.random.fold_in(batched.rng_key, first + offset),
                kernel_state,
                adaptation_state,
                stage,
                adapting,
            )
            return (kernel_state, adaptation_state), (stats, constrain(kernel_state.position))

        def constrain(position: PyTree) -> PyTree:
            return model.constrain(in_model_dtypes(position, model.initial_position))

        position = batched.kernel.position
        zeros = (
            zero_stats(jnp.result_type(batched.kernel.logdensity)),
            jax.tree.map(
                lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(constrain, position)
            ),
        )
        offsets = jnp.arange(active.shape[0], dtype=first.dtype)
        (kernel_state, adaptation_state), out = _masked_scan(
            step, (batched.kernel, batched.adaptation), (offsets, schedule, active), zeros
        )
        steps = first + jnp.sum(active, dtype=first.dtype)
        return SamplerState(kernel_state, adaptation_state, batched.rng_key, steps), out

    mesh = chain_mesh(model) if config.chain_method == "parallel" else None
    shared = (model, schedule, active, adapting)
    return map_chains(one_chain, config.chain_method, state, shared, mesh)


@partial(Compiled, static_argnums=(0,), once=True)
def end_warmup(config: Config, adaptation_state: Any) -> Any:
    """Every chain's adaptation state with its final parameters (the adaptation's
    `final`, e.g. `exp` of the dual-averaged log step size), in one program."""
    return jax.vmap(adaptation(config).final)(adaptation_state)


def precompile_chunk(
    model: LogDensity, config: Config, state: SamplerState, chunk_size: int
) -> None:
    """Compile the chunk for a state of the types `state` (`jax.ShapeDtypeStruct`
    leaves: `start`'s output types), in a worker thread, while the caller compiles and
    runs `start` (the two programs are independent given the state's types). Not for
    `"parallel"`, whose state is sharded: there the chunk compiles at its first call.
    For `"threaded"`, the one-chain chunk."""
    if config.chain_method == "parallel":
        return
    one = config.chain_method == "threaded"  # one chain's program, run in every thread

    def typed(x: Any) -> jax.ShapeDtypeStruct:
        shape = (1, *x.shape[1:]) if one else x.shape
        return jax.ShapeDtypeStruct(shape, x.dtype, weak_type=x.weak_type)

    # the small programs first, so that they compile while the chunk is traced here
    if data_mesh(model) is None:  # on a mesh its state is sharded: compiled at its call
        end_warmup.precompile(config, state.adaptation)
    if one:  # and the programs that split the state for the threads and join it again
        split_chains.precompile(state)
    one_chain = jax.tree.map(typed, state)
    stages = np.zeros((chunk_size, 2), np.int32)
    active = np.ones(chunk_size, bool)
    new, _ = chunk.precompile(model, config, one_chain, stages, active, True)
    if one:
        join_chains.precompile([new] * jax.tree.leaves(state)[0].shape[0])
