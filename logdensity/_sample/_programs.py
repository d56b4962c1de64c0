"""The compiled programs: the start of every chain, and a chunk of steps. One chain's
pieces (`init_chain`, `transition`) are pure and shared with every other consumer of
the loop (`logdensity.testing.sbc`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._protocol import LogDensity
from ._adaptation import adaptation
from ._chains import chain_mesh, map_chains, stack_chains
from ._kernel import Stats, nuts, zero_stats
from ._precision import in_model_dtypes, in_sampler_dtype, sampler_dtype, sampler_precision
from ._settings import Config
from ._state import SamplerState

__all__ = [
    "chunk",
    "init_chain",
    "jittered",
    "precompile_chunk",
    "start",
    "state_shapes",
    "transition",
]


# XLA's CPU options for the loop's programs. Both cut compilation (the time to first
# draw) and, measured on the benchmark models, nothing off the sampling speed:
# - without LLVM's expensive passes: 10-20% off the loop's compilation;
# - with XLA's classic elemental emitters instead of its MLIR fusion emitters (the
#   default since jaxlib 0.5): a fresh process's first `sample` call 25% shorter on
#   eight schools, 18% on rat tumors, the same draws bit for bit
#   (`python -m benchmarks firstdraw`).
_CPU_COMPILER_OPTIONS = {
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}


class _Compiled:
    """`jax.jit(f)` with `config` (the second argument) static; on CPU with
    `_CPU_COMPILER_OPTIONS`, which make compilation cheaper.

    `precompile(*args)` compiles ahead of time (`jit(f).lower(...).compile()`, JAX's AOT
    API) for arguments given as `jax.ShapeDtypeStruct`s: traced and lowered in the
    caller's thread, compiled by XLA in a worker thread (it releases the GIL), so a
    program compiles while the caller traces, compiles and runs another. A later call
    whose arguments have those types (structure, shapes, dtypes, weak types) runs the
    AOT executable; any other goes through `jit`. `_cache_size()` counts the programs
    compiled so far either way (tests read it: one per model structure and settings)."""

    def __init__(self, f: Callable):
        self.cpu = jax.jit(
            f,
            static_argnames=("config",),
            compiler_options=_CPU_COMPILER_OPTIONS,
        )
        self.other = jax.jit(f, static_argnames=("config",))
        # the newest executables, least recently used first: each holds its model's
        # data and XLA's code (thousands of memory mappings over a test suite) alive
        self._ahead: OrderedDict[Any, Future] = OrderedDict()
        self._compiles = 0
        _PROGRAMS.append(self)

    def _jit(self) -> Any:
        return self.cpu if jax.default_backend() == "cpu" else self.other

    @staticmethod
    def _key(args: tuple[Any, ...]) -> Any:
        model, config, *rest = args
        leaves, treedef = jax.tree.flatten((model, rest))
        types = tuple(
            (tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False)))
            if hasattr(x, "shape") and hasattr(x, "dtype")
            else (type(x).__name__,)
            for x in leaves
        )
        return config, treedef, types

    def _future(self, args: tuple[Any, ...]) -> Future:
        key = self._key(args)
        if key in self._ahead:
            self._ahead.move_to_end(key)
            return self._ahead[key]
        # traced and lowered here, under this thread's JAX config (x64 and the other
        # context managers are thread-local); only XLA's compilation moves to the worker
        lowered = self._jit().lower(*args)
        future = self._ahead[key] = _WORKERS.submit(lowered.compile)
        self._compiles += 1
        while len(self._ahead) > _KEPT_EXECUTABLES:
            self._ahead.popitem(last=False)
        return future

    def precompile(self, *args: Any) -> None:
        """Start compiling for `args` (`config` second, concrete or `ShapeDtypeStruct`
        leaves elsewhere) in a worker thread, unless it already was (and is among the
        `_KEPT_EXECUTABLES` used last)."""
        self._future(args)

    def compiled(self, *args: Any) -> Callable[..., Any]:
        """The AOT executable for `args` (`config` second), compiled if it was not:
        called with the arguments but `config`, it traces nothing, so it can run in any
        thread whatever that thread's JAX config (`"threaded"` chains)."""
        return self._future(args).result()

    def __call__(self, *args: Any) -> Any:
        ahead = self._ahead.get(self._key(args)) if self._ahead else None
        if ahead is not None:
            model, _, *rest = args
            return ahead.result()(model, *rest)
        return self._jit()(*args)

    def _cache_size(self) -> int:
        jitted = sum(f._cache_size() for f in (self.cpu, self.other))  # type: ignore[attr-defined]
        return jitted + self._compiles


def release() -> None:
    """Drop every kept AOT executable (with `jax.clear_caches()`, what a long-lived
    process that samples many models calls to give their code and data back)."""
    for program in _PROGRAMS:
        program._ahead.clear()


_PROGRAMS: list[_Compiled] = []
# Per program (start, chunk): enough for the programs of a few runs (warmup and
# sampling chunks, each chain method); older ones are dropped, and compiled again (or
# loaded from the persistent cache) if a run needs them.
_KEPT_EXECUTABLES = 8
_WORKERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="logdensity-compile")


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
    positions = stack_chains(model.initial_position, num_chains)
    init_keys = jax.random.split(jax.random.key(0), num_chains)
    kernel, adapted = jax.eval_shape(
        jax.vmap(lambda k, p: init_chain(model, config, k, p)), init_keys, positions
    )
    return SamplerState(kernel, adapted, keys, jax.ShapeDtypeStruct((num_chains,), jnp.int32))


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


@_Compiled
def start(
    model: LogDensity,
    config: Config,
    keys: PRNGKeyArray,
    step_keys: PRNGKeyArray,
    positions: PyTree,
    redraw: Array,
    attempt: int,
    jitter: float,
) -> tuple[PyTree, Array, list[Array], Any, Any]:
    """Start every chain, in one compiled program (one compilation of the model's
    gradient, not one per step of the start): redraw the chains marked `redraw` at
    `initial_position + uniform(-jitter, jitter)`, evaluate the log density and its
    gradient there (whether each leaf's gradient is finite), find a first step size and
    initialise the adaptation."""
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
    return positions, kernel_states.logdensity, grad_ok, kernel_states, adaptation_states


def _masked_scan(step: Callable, carry: Any, xs: tuple[Array, ...], zeros: Any) -> tuple[Any, Any]:
    """`lax.scan` of `step(carry, x)` where `x[-1]` says whether the step is real.

    Chunks have one fixed length so that each compiles once; the steps past the end of
    a phase are skipped by a `lax.cond` on an unbatched flag (a real branch, even under
    `vmap`), and output `zeros` (the structure of `step`'s output), which the host drops.
    """

    def masked(carry: Any, x: tuple[Array, ...]) -> tuple[Any, Any]:
        return jax.lax.cond(x[-1], step, lambda c, _: (c, zeros), carry, x)

    return jax.lax.scan(masked, carry, xs)


@_Compiled
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


def precompile_chunk(
    model: LogDensity, config: Config, num_chains: int, chunk_size: int, rng_key: PRNGKeyArray
) -> None:
    """Compile the chunk for the state that `start` will return, in a worker thread,
    while the caller traces, compiles and runs `start` (the two programs are
    independent given the state's types). Not for `"parallel"`, whose state is sharded:
    there the chunk compiles at its first call. For `"threaded"`, the one-chain chunk."""
    if config.chain_method == "parallel":
        return
    if config.chain_method == "threaded":  # one chain's program, run in every thread
        num_chains = 1
    keys = jax.eval_shape(lambda k: jax.random.split(k, num_chains), rng_key)
    state = state_shapes(model, config, num_chains, keys)
    stages = np.zeros((chunk_size, 2), np.int32)
    active = np.ones(chunk_size, bool)
    chunk.precompile(model, config, state, stages, active, True)
