"""The shared sampling loop: BlackJAX window adaptation then NUTS, in compiled chunks."""

from __future__ import annotations

import collections
import dataclasses
import time
import warnings
from collections.abc import Callable
from typing import Any, Literal, NamedTuple, cast

import arviz as az
import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation import window_adaptation as _window_adaptation
from blackjax.adaptation.step_size import find_reasonable_step_size
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, PRNGKeyArray, PyTree

from ._inference_data import diagnose, to_inference_data
from ._model import FlatView, Model, leaf_names
from ._progress import Progress
from ._protocol import LogDensity

__all__ = ["SamplingWarning", "sample"]

ChainMethod = Literal["vectorized", "sequential", "parallel"]
CHAIN_METHODS: tuple[str, ...] = ("vectorized", "sequential", "parallel")

# How often each compiled function has been traced, by name. Tests read it to check
# that a model compiles once per shape, however many chunks or calls follow.
trace_counts: collections.Counter[str] = collections.Counter()


class SamplingWarning(UserWarning):
    """Sampling finished but its diagnostics say the draws may not be trustworthy:
    divergences, R-hat above 1.01, bulk or tail ESS below 400, or an interrupted run."""


@dataclasses.dataclass(frozen=True)
class _Config:
    """Everything static about a run: part of the compilation cache key."""

    chain_method: str
    dense_mass: bool
    target_acceptance_rate: float
    max_tree_depth: int


class _Stats(NamedTuple):
    diverging: Array
    acceptance_rate: Array
    step_size: Array
    tree_depth: Array
    n_steps: Array
    energy: Array
    lp: Array


def _adaptation(config: _Config) -> tuple[Callable, Callable, Callable]:
    # `base` is BlackJAX's released (init, update, final) triple for Stan's window
    # adaptation; it is the piece that lets us step the warmup chunk by chunk, where
    # `window_adaptation(...).run` would run all of it in one opaque scan. It is marked
    # deprecated in 1.7 but kept "at its released API for downstream code".
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _window_adaptation.base(
            is_mass_matrix_diagonal=not config.dense_mass,
            target_acceptance_rate=config.target_acceptance_rate,
        )


def _chain_mesh() -> Mesh:
    """Every device on one `"chain"` axis: where `"parallel"` puts the chains."""
    return Mesh(np.array(jax.devices()), ("chain",))


def _map_chains(f: Callable, chain_method: str, batched: PyTree, shared: PyTree) -> PyTree:
    """Apply `f(batched_i, shared)` to every chain i (leading axis of `batched`)."""
    if chain_method == "vectorized":
        return jax.vmap(f, in_axes=(0, None))(batched, shared)
    if chain_method == "sequential":
        return jax.lax.map(lambda b: f(b, shared), batched)
    # "parallel": chains sharded over every device; within a device, vectorized.
    per_device = jax.shard_map(
        lambda b, s: jax.vmap(f, in_axes=(0, None))(b, s),
        mesh=_chain_mesh(),
        in_specs=(PartitionSpec("chain"), PartitionSpec()),
        out_specs=PartitionSpec("chain"),
        check_vma=False,
    )
    return per_device(batched, shared)


def _transition(
    model: LogDensity,
    config: _Config,
    key: PRNGKeyArray,
    state: Any,
    step_size: Array,
    imm: Array,
) -> tuple[Any, _Stats]:
    kernel = blackjax.nuts.build_kernel()
    new_state, info = kernel(
        key, state, model, step_size, imm, max_num_doublings=config.max_tree_depth
    )
    return new_state, _stats(
        diverging=info.is_divergent,
        acceptance_rate=info.acceptance_rate,
        step_size=step_size,
        tree_depth=info.num_trajectory_expansions,
        n_steps=info.num_integration_steps,
        energy=info.energy,
        lp=new_state.logdensity,
    )


def _stats(**fields: Any) -> _Stats:
    """`_Stats` with fixed dtypes (bool, ints as int32, floats as the log density's),
    so that a skipped step's zeros can be built without tracing the kernel."""
    dtypes = _stat_dtypes(jnp.result_type(fields["lp"]))
    return _Stats(*(jnp.asarray(fields[k], t) for k, t in zip(_Stats._fields, dtypes, strict=True)))


def _masked_scan(step: Callable, carry: Any, xs: tuple[Array, ...], zeros: Any) -> tuple[Any, Any]:
    """`lax.scan` of `step(carry, x)` where `x[-1]` says whether the step is real.

    Chunks have one fixed length so that each compiles once; the steps past the end of
    a phase are skipped by a `lax.cond` on an unbatched flag (a real branch, even under
    `vmap`), and output `zeros` (the structure of `step`'s output), which the host drops.
    """

    def masked(carry: Any, x: tuple[Array, ...]) -> tuple[Any, Any]:
        return jax.lax.cond(x[-1], step, lambda c, _: (c, zeros), carry, x)

    return jax.lax.scan(masked, carry, xs)


def _compiled(f: Callable) -> Callable:
    """`jax.jit(f)` with `config` static; on CPU without LLVM's expensive passes, which
    take 10-20% off the loop's compilation (the time to first draw) and, measured on
    the benchmark models, nothing off its speed."""
    cpu = jax.jit(
        f,
        static_argnames=("config",),
        compiler_options={"xla_llvm_disable_expensive_passes": True},
    )
    other = jax.jit(f, static_argnames=("config",))

    def call(*args: Any, **kwargs: Any) -> Any:
        return (cpu if jax.default_backend() == "cpu" else other)(*args, **kwargs)

    return call


@_compiled
def _start(
    model: LogDensity,
    config: _Config,
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
    initialise the window adaptation."""
    trace_counts["start"] += 1
    flat0, unravel = ravel_pytree(model.initial_position)

    def draw(key: PRNGKeyArray) -> PyTree:
        u = jax.random.uniform(key, flat0.shape, flat0.dtype, -jitter, jitter)
        return unravel(flat0 + u)

    candidates = jax.vmap(draw)(jax.vmap(jax.random.fold_in, (0, None))(keys, attempt))
    positions = jax.tree.map(
        lambda old, new: jnp.where(jnp.reshape(redraw, (-1,) + (1,) * (new.ndim - 1)), new, old),
        positions,
        candidates,
    )
    states = jax.vmap(lambda p: blackjax.nuts.init(p, model))(positions)
    grad_ok = [
        jnp.all(jnp.isfinite(g).reshape(g.shape[0], -1), axis=1)
        for g in jax.tree.leaves(states.logdensity_grad)
    ]
    step_sizes = jax.vmap(lambda k, s: _initial_step_size(model, k, s))(step_keys, states)
    adapt_states = jax.vmap(_adaptation(config)[0])(positions, step_sizes)
    return positions, states.logdensity, grad_ok, states, adapt_states


def _initial_step_size(model: LogDensity, key: PRNGKeyArray, state: Any) -> Array:
    """Stan's and NumPyro's start for dual averaging: from 1, double or halve the step
    size of one leapfrog step (unit mass) until its acceptance rate crosses 0.65
    (Hoffman & Gelman 2014, Alg. 4; `blackjax.adaptation.step_size.
    find_reasonable_step_size`). Without it, a chain that starts far out in a
    concentrated posterior spends its first warmup steps at the maximum tree depth."""
    kernel = blackjax.hmc.build_kernel()
    ones = jnp.ones_like(ravel_pytree(state.position)[0])

    def kernel_generator(step_size: Array) -> Callable:
        return lambda k, s: kernel(k, s, model, step_size, ones, num_integration_steps=1)

    one = jnp.asarray(1.0, ones.dtype)
    return find_reasonable_step_size(key, kernel_generator, state, one)


@_compiled
def _chunk(
    model: LogDensity,
    config: _Config,
    keys: PRNGKeyArray,
    states: Any,
    adapt_states: Any,
    steps: Array,
    schedule: Array,
    active: Array,
    adapting: Array,
) -> tuple[tuple[Any, Any], tuple[_Stats, dict[str, Array]]]:
    """`len(steps)` NUTS transitions of every chain, at the step size and inverse mass
    matrix of `adapt_states`, which Stan's window adaptation updates where `adapting`
    (one program for warmup and sampling: half the compilation of two)."""
    trace_counts["chunk"] += 1
    adapt_update = _adaptation(config)[1]

    def one_chain(batched: Any, shared: Any) -> Any:
        key, state, adapt_state = batched
        model, steps, schedule, active, adapting = shared

        def step(carry: Any, x: Any) -> Any:
            state, adapt_state = carry
            i, stage, _ = x
            state, stats = _transition(
                model,
                config,
                jax.random.fold_in(key, i),
                state,
                adapt_state.step_size,
                adapt_state.inverse_mass_matrix,
            )
            adapt_state = jax.lax.cond(
                adapting,
                lambda a: adapt_update(
                    a, (stage[0], stage[1]), state.position, stats.acceptance_rate
                ),
                lambda a: a,
                adapt_state,
            )
            return (state, adapt_state), (stats, model.constrain(state.position))

        dtype = jnp.result_type(state.logdensity)
        zeros = (
            _Stats(*(jnp.zeros((), t) for t in _stat_dtypes(dtype))),
            jax.tree.map(
                lambda a: jnp.zeros(a.shape, a.dtype),
                jax.eval_shape(model.constrain, state.position),
            ),
        )
        return _masked_scan(step, (state, adapt_state), (steps, schedule, active), zeros)

    return _map_chains(
        one_chain,
        config.chain_method,
        (keys, states, adapt_states),
        (model, steps, schedule, active, adapting),
    )


def _stat_dtypes(dtype: Any) -> tuple[Any, ...]:
    cast = {"diverging": jnp.bool_, "tree_depth": jnp.int32, "n_steps": jnp.int32}
    return tuple(cast.get(name, dtype) for name in _Stats._fields)


class _Method:
    """`obj.name(x)` in the `(x, data)` signature of `Model`; equal for the same object,
    so a third-party `LogDensity` sampled twice reuses compiled code."""

    def __init__(self, obj: Any, name: str):
        self.obj, self.name = obj, name

    def __call__(self, x: Any, data: Any) -> Any:
        del data
        return getattr(self.obj, self.name)(x)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Method) and (other.obj, other.name) == (
            self.obj,
            self.name,
        )

    def __hash__(self) -> int:
        return hash((id(self.obj), self.name))


def _as_model(logdensity: LogDensity) -> LogDensity:
    """A pytree `LogDensity` to pass through `jax.jit`: built-in ones as they are, any
    other object satisfying the protocol wrapped in a `Model` that calls its methods."""
    if isinstance(logdensity, Model | FlatView):
        return cast(LogDensity, logdensity)
    if not isinstance(logdensity, LogDensity):
        missing = [
            n
            for n in ("initial_position", "constrain", "unconstrain", "variables", "coords")
            if not hasattr(logdensity, n)
        ]
        raise TypeError(
            f"sample needs a LogDensity (e.g. from logdensity.from_jax); got "
            f"{type(logdensity).__name__}, which lacks {missing}."
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


def _place_chains(batched: PyTree, chain_method: str) -> PyTree:
    """For `"parallel"`, put chain-batched arrays where the chunk's outputs live (split
    over the devices along the chain axis), so that its first call, fed from one
    device, does not compile a second program for the calls fed by its own outputs."""
    if chain_method != "parallel":
        return batched
    sharding = NamedSharding(_chain_mesh(), PartitionSpec("chain"))
    return jax.device_put(batched, sharding)


def _stack_chains(position: PyTree, num_chains: int) -> PyTree:
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_chains, *jnp.shape(x))), position)


def _validate_user_positions(model: LogDensity, positions: PyTree, num_chains: int) -> PyTree:
    reference = model.initial_position
    ref_def: Any = jax.tree.structure(reference)
    got_def = jax.tree.structure(positions)
    if ref_def != got_def:
        raise ValueError(
            f"initial_positions must have the structure of the model's initial_position "
            f"with a leading chain axis: expected {ref_def}, got {got_def}."
        )
    names = leaf_names(reference)
    out = []
    for name, ref, got in zip(
        names, jax.tree.leaves(reference), jax.tree.leaves(positions), strict=True
    ):
        got = jnp.asarray(got, dtype=jnp.result_type(ref))
        expected = (num_chains, *jnp.shape(ref))
        if got.shape != expected:
            raise ValueError(
                f"initial_positions leaf {name!r} has shape {got.shape}; expected "
                f"{expected} (num_chains={num_chains} then the leaf's shape {jnp.shape(ref)})."
            )
        out.append(got)
    return jax.tree.unflatten(ref_def, out)


def _non_finite_report(
    model: LogDensity,
    lp: np.ndarray,
    grad_ok: list[np.ndarray],
    bad: np.ndarray,
    positions: PyTree,
) -> str:
    names = leaf_names(model.initial_position)
    pos_leaves = jax.device_get(jax.tree.leaves(positions))
    lines = []
    for c in np.flatnonzero(bad):
        grad_bad = [n for n, ok in zip(names, grad_ok, strict=True) if not ok[c]]
        pos_bad = [
            n for n, x in zip(names, pos_leaves, strict=True) if not np.all(np.isfinite(x[c]))
        ]
        parts = [f"log density = {lp[c]}"]
        if pos_bad:
            parts.append(f"non-finite position in {pos_bad}")
        if grad_bad:
            parts.append(f"non-finite gradient in {grad_bad}")
        lines.append(f"  chain {c}: " + "; ".join(parts))
    return "\n".join(lines)


def _start_chains(
    model: LogDensity,
    config: _Config,
    keys: PRNGKeyArray,
    step_keys: PRNGKeyArray,
    given: PyTree | None,
    jitter: float,
    max_tries: int,
) -> tuple[Any, Any]:
    """NUTS and adaptation states at validated starting points, never non-finite."""
    num_chains = keys.shape[0]
    if given is not None:
        positions = _validate_user_positions(model, given, num_chains)
        redraw = np.zeros(num_chains, bool)
    else:
        positions = _stack_chains(model.initial_position, num_chains)
        redraw = np.ones(num_chains, bool)
    for attempt in range(max_tries if given is None else 1):
        positions, lp, grad_ok, states, adapt_states = _start(
            model, config, keys, step_keys, positions, redraw, attempt, jitter
        )
        lp, grad_ok = jax.device_get((lp, grad_ok))
        redraw = ~(np.isfinite(lp) & np.all(grad_ok, axis=0))
        if not redraw.any():
            return states, adapt_states
        if given is not None:
            raise ValueError(
                "The given initial_positions have a non-finite log density or gradient "
                "(BlackJAX would warm up from there and freeze):\n"
                + _non_finite_report(model, lp, grad_ok, redraw, positions)
            )
    raise ValueError(
        f"No finite starting point found in {max_tries} tries of initial_position + "
        f"uniform(-{jitter}, {jitter}) for {int(redraw.sum())} of {num_chains} chains "
        "(BlackJAX would warm up from there and freeze). At the last try:\n"
        + _non_finite_report(model, lp, grad_ok, redraw, positions)
        + "\nCheck the model at its initial position, give initial_positions, or lower "
        "init_jitter."
    )


def _chunks(total: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed-length index chunks over `range(total)` with an 'active' mask for padding."""
    out = []
    for start in range(0, total, size):
        idx = np.arange(start, start + size)
        out.append((idx, idx < total))
    return out


class _Collected:
    """One phase's host arrays, `(chain, total, ...)`, allocated at the first chunk and
    filled chunk by chunk: the draws are held once (no list of chunks to join), so
    peak memory stays near the size of what is returned."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.stats: dict[str, np.ndarray] = {}
        self.draws: dict[str, np.ndarray] = {}
        self.num_draws = 0

    def add(self, stats: _Stats, draws: dict[str, np.ndarray], n: int) -> None:
        new = {"stats": stats._asdict(), "draws": draws}
        for group, arrays in new.items():
            store = getattr(self, group)
            for name, a in arrays.items():
                if name not in store:
                    store[name] = np.empty((a.shape[0], self.total, *a.shape[2:]), a.dtype)
                store[name][:, self.num_draws : self.num_draws + n] = a[:, :n]
        self.num_draws += n

    def joined(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(draws, stats), trimmed to the steps completed."""
        n = self.num_draws
        return (
            {k: v[:, :n] for k, v in self.draws.items()},
            {k: v[:, :n] for k, v in self.stats.items()},
        )


def sample(
    logdensity: LogDensity,
    rng_key: PRNGKeyArray,
    *,
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    chain_method: ChainMethod = "vectorized",
    initial_positions: PyTree | None = None,
    progress_bar: bool = True,
    dense_mass: bool = False,
    target_acceptance_rate: float = 0.8,
    max_tree_depth: int = 10,
    init_jitter: float = 2.0,
    max_init_tries: int = 20,
    chunk_size: int = 100,
    save_warmup: bool = False,
) -> az.InferenceData:
    """Sample a `LogDensity` with NUTS after Stan's window adaptation, chain by chain.

    Every chain runs BlackJAX's window adaptation (Stan's schedule: a fast step-size
    window, doubling slow windows that estimate the inverse mass matrix, a final fast
    window; Hoffman & Gelman 2014, Stan Reference Manual §15.2) for `num_warmup`
    steps, then `blackjax.nuts` with its own adapted step size and inverse mass matrix
    for `num_samples` draws. Steps run in compiled chunks of `chunk_size` (one
    `lax.scan` each); between chunks the draws move to host memory and the progress bar
    moves. Each compiled function is traced once per model structure and settings.

    Chain `c`'s randomness is `fold_in(split(rng_key)[c], step)`, so the same `rng_key`
    gives the same draws whatever the `chain_method` and `chunk_size`.

    **Arguments:**

    - `logdensity`: any `LogDensity` (e.g. from `logdensity.from_jax`).
    - `rng_key`: a JAX PRNG key (`jax.random.key(0)` or `jax.random.PRNGKey(0)`).
    - `num_chains`, `num_warmup`, `num_samples`: chains, warmup steps per chain, draws
      kept per chain.
    - `chain_method`: `"vectorized"` (`jax.vmap`: one program, chains in lockstep,
      each step waits for the longest trajectory), `"sequential"` (`lax.map`: one
      program, one chain after the other; no lockstep), or `"parallel"` (chains sharded
      across `jax.devices()` with `jax.shard_map`, vectorized within a device; needs
      `num_chains` divisible by the device count).
    - `initial_positions`: unconstrained starting points with a leading `num_chains`
      axis on every leaf. Default: `initial_position + uniform(-init_jitter,
      init_jitter)` per coordinate (Stan's default is uniform(-2, 2)), redrawn up to
      `max_init_tries` times while the log density or its gradient is not finite.
    - `progress_bar`: show a tqdm bar (phase, draws, divergences, step size).
    - `dense_mass`: adapt a dense inverse mass matrix instead of a diagonal one.
    - `target_acceptance_rate`: the dual-averaging target (Stan: 0.8).
    - `max_tree_depth`: NUTS's maximum number of trajectory doublings (Stan: 10).
    - `chunk_size`: steps per compiled chunk (memory on device: `chunk_size` draws per
      chain).
    - `save_warmup`: also return the warmup draws (`warmup_posterior`,
      `warmup_sample_stats`).

    **Returns:** an `arviz.InferenceData` with
    - `posterior`: every value of `logdensity.constrain` (latents in their constrained
      space and deterministics), shape `(chain, draw, *shape)`, with the model's dims and
      coords;
    - `sample_stats`: `diverging` (bool), `acceptance_rate`, `step_size`, `tree_depth`
      (trajectory doublings), `n_steps` (leapfrog steps), `energy`, and `lp` (the log
      density on the unconstrained space, Jacobians included), each `(chain, draw)`;
    - `adaptation`: the adapted `step_size` `(chain,)` and `inverse_mass_matrix`
      `(chain, dim)` (or `(chain, dim, dim)` when dense) over the flattened position;
    - attrs: backend, library versions, `warmup_time` and `sampling_time` (seconds, wall
      clock, compilation included), `interrupted`.

    A `KeyboardInterrupt` stops at the current chunk and returns the draws completed so
    far, with a `SamplingWarning`. At the end, a `SamplingWarning` lists divergences,
    R-hat > 1.01 and bulk/tail ESS < 400 (computed by ArviZ).

    **Raises:**

    - `ValueError` for an unknown `chain_method`, non-positive counts, `num_chains` not
      divisible by the device count with `"parallel"`, `initial_positions` of the wrong
      structure or shape (naming the leaf), or a start whose log density or gradient is
      not finite (naming the chain and the leaves).
    - `TypeError` if `logdensity` does not satisfy the `LogDensity` protocol.
    """
    model = _as_model(logdensity)
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {CHAIN_METHODS}; got {chain_method!r}.")
    for name, value in (
        ("num_chains", num_chains),
        ("num_samples", num_samples),
        ("chunk_size", chunk_size),
        ("max_init_tries", max_init_tries),
    ):
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer; got {value}.")
    if num_warmup < 0:
        raise ValueError(f"num_warmup must be >= 0; got {num_warmup}.")
    if chain_method == "parallel" and num_chains % jax.device_count():
        raise ValueError(
            f"chain_method='parallel' shards chains over {jax.device_count()} devices, "
            f"so num_chains must be a multiple of it; got num_chains={num_chains}. "
            "(On CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N gives N devices.)"
        )
    config = _Config(
        chain_method=chain_method,
        dense_mass=bool(dense_mass),
        target_acceptance_rate=float(target_acceptance_rate),
        max_tree_depth=int(max_tree_depth),
    )
    init_key, run_key = jax.random.split(rng_key)
    chain_keys = jax.random.split(run_key, num_chains)
    states, adapt_states = _start_chains(
        model,
        config,
        jax.random.split(init_key, num_chains),
        jax.random.split(jax.random.fold_in(init_key, 1), num_chains),
        initial_positions,
        init_jitter,
        max_init_tries,
    )
    _, _, adapt_final = _adaptation(config)

    warmup, sampling = _Collected(num_warmup), _Collected(num_samples)
    progress = Progress(num_warmup, num_samples, num_chains, enabled=progress_bar)
    timings = {"warmup_time": 0.0, "sampling_time": 0.0}
    interrupted: str | None = None
    step_size = imm = None

    def run_chunk(states: Any, adapt_states: Any, *args: Any) -> Any:
        batched = _place_chains((chain_keys, states, adapt_states), chain_method)
        return _chunk(model, config, *batched, *args)

    try:
        start = time.perf_counter()
        if num_warmup:
            schedule = np.asarray(_window_adaptation.build_schedule(num_warmup)).astype(np.int32)
            for steps, active in _chunks(num_warmup, chunk_size):
                sched = schedule[np.minimum(steps, num_warmup - 1)]
                (states, adapt_states), (stats, draws) = run_chunk(
                    states, adapt_states, steps, sched, active, True
                )
                stats, draws = jax.device_get((stats, draws if save_warmup else {}))
                warmup.add(stats, draws, int(active.sum()))
                progress.update("warmup", int(active.sum()), stats)
        step_size, imm = jax.vmap(adapt_final)(adapt_states)
        # the adapted values, with the types the chunk was compiled for (no retrace)
        adapt_states = adapt_states._replace(
            step_size=jnp.asarray(step_size, adapt_states.step_size.dtype),
            inverse_mass_matrix=jnp.asarray(imm, adapt_states.inverse_mass_matrix.dtype),
        )
        timings["warmup_time"] = time.perf_counter() - start

        start = time.perf_counter()
        no_schedule = np.zeros((chunk_size, 2), np.int32)
        for steps, active in _chunks(num_samples, chunk_size):
            (states, adapt_states), (stats, draws) = run_chunk(
                states, adapt_states, steps + num_warmup, no_schedule, active, False
            )
            stats, draws = jax.device_get((stats, draws))
            sampling.add(stats, draws, int(active.sum()))
            progress.update("sampling", int(active.sum()), stats)
        timings["sampling_time"] = time.perf_counter() - start
    except KeyboardInterrupt:
        interrupted = "sampling" if step_size is not None else "warmup"
        warnings.warn(
            f"Interrupted during {interrupted}: returning the {sampling.num_draws} draws "
            f"per chain completed so far (and {warmup.num_draws} warmup steps).",
            SamplingWarning,
            stacklevel=2,
        )
    finally:
        progress.close()

    adaptation = None
    if step_size is not None:
        adaptation = {
            "step_size": np.asarray(step_size),
            "inverse_mass_matrix": np.asarray(imm),
        }
    idata = to_inference_data(
        model,
        posterior=sampling.joined(),
        warmup=warmup.joined() if save_warmup else None,
        adaptation=adaptation,
        num_chains=num_chains,
        attrs={
            "chain_method": chain_method,
            "num_warmup": num_warmup,
            "interrupted": interrupted or "",
            **timings,
        },
    )
    if interrupted is None:
        problems = diagnose(idata)
        if problems:
            warnings.warn(
                "Sampling diagnostics: " + "; ".join(problems) + ".",
                SamplingWarning,
                stacklevel=2,
            )
    return idata
