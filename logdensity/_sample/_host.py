"""The host side of a run: the chunk schedule, the draws' host buffers, the progress
bar, and the phase function that runs compiled chunks between them."""

from __future__ import annotations

import contextlib
import signal
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from .._inference_data import COLLAPSED
from .._protocol import LogDensity
from .._sharding import to_host
from ._adaptation import adaptation
from ._chains import chain_mesh, place_chains, threaded
from ._kernel import Stats
from ._precision import sampler_dtype
from ._programs import chunk
from ._settings import Settings, leapfrogs_per_call
from ._starts import start_chains
from ._state import SamplerState
from ._warnings import SamplingWarning

__all__ = ["Draws", "Progress", "StoredDraws", "run_phase"]


def steps_per_call(
    last: np.ndarray | None, size: int, budget: int | None, max_tree_depth: int
) -> int:
    """How many real steps the next call of the chunk runs: `size`, or with a leapfrog
    `budget` (threaded chains, `leapfrogs_per_call`) as many as fit it at the deepest
    tree, or, more where the last call's trees (`last`: its `n_steps`, `(chain, step)`)
    were shallower, as many as keep its most leapfrog steps in one step under it, and at
    most twice the last call's steps (trees deepen fast early in warmup: from 5 leapfrog
    steps to 700 within two steps on the hierarchical model); at least 1."""
    if budget is None:
        return size
    deepest = budget // (2**max_tree_depth - 1)
    if last is not None:
        fit = budget // max(int(last.max()), 1)
        deepest = max(deepest, min(2 * last.shape[1], fit))
    return int(min(size, max(1, deepest)))


class Draws:
    """One phase's host arrays, `(chain, total, ...)`, allocated at the first chunk and
    filled chunk by chunk: the draws are held once (no list of chunks to join), so
    peak memory stays near the size of what is returned. With `keep_draws=False` only
    the sample stats are kept (warmup without `save_warmup`)."""

    def __init__(self, total: int, *, keep_draws: bool = True, state: Any = None) -> None:
        self.total, self.keep_draws = total, keep_draws
        self.stats: dict[str, np.ndarray] = {}
        self.draws: dict[str, np.ndarray] = {}
        self.num_draws = 0
        self.state = state  # the state after the last completed step

    def add(self, stats: Stats, draws: dict[str, np.ndarray], n: int, state: Any) -> None:
        """Keep chunk's first `n` steps, and `state`, the state after them."""
        new = {"stats": stats._asdict(), "draws": draws if self.keep_draws else {}}
        for group, arrays in new.items():
            store = getattr(self, group)
            for name, a in arrays.items():
                if name not in store:
                    store[name] = np.empty((a.shape[0], self.total, *a.shape[2:]), a.dtype)
                store[name][:, self.num_draws : self.num_draws + n] = a[:, :n]
        self.num_draws += n
        self.state = state

    def joined(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(draws, stats), trimmed to the steps completed."""
        n = self.num_draws
        return (
            {k: v[:, :n] for k, v in self.draws.items()},
            {k: v[:, :n] for k, v in self.stats.items()},
        )


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise `KeyboardInterrupt`.

    A `KeyboardInterrupt` raised inside zarr's writes (which wait on its I/O thread's
    event loop) could leave that loop mid-write; held here, the chunk is written and
    committed whole and the interrupt lands between chunks, as without a checkpoint.
    Only in the main thread (where Python runs signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


class StoredDraws(Draws):
    """A phase streamed to a checkpoint `Store` instead of host memory: each chunk's
    draws and stats are appended to the store's groups (named and dimensioned as in
    the returned `InferenceData`), then the state after it is committed. Host memory
    holds one chunk."""

    def __init__(
        self,
        store: Any,
        groups: tuple[str, str] | None,
        total: int,
        *,
        done: int,
        first_draw: int,
        phase: str,
        counts: dict[str, int],
        chunk_groups: Any,
        timings: dict[str, float],
        state: Any,
    ) -> None:
        super().__init__(total, keep_draws=groups is not None, state=state)
        self.store, self.groups, self.phase = store, groups, phase
        self.num_draws, self.first_draw = done, first_draw
        self.counts, self.chunk_groups, self.timings = counts, chunk_groups, timings

    def add(self, stats: Stats, draws: dict[str, np.ndarray], n: int, state: Any) -> None:
        with deferred_interrupt():  # a chunk is written and committed whole
            self._write(stats, draws, n, state)

    def _write(self, stats: Stats, draws: dict[str, np.ndarray], n: int, state: Any) -> None:
        if self.groups is not None:
            cut = {k: v[:, :n] for k, v in draws.items()}
            stats_cut = {k: np.asarray(v)[:, :n] for k, v in stats._asdict().items()}
            for group, ds in zip(self.groups, self.chunk_groups(cut, stats_cut), strict=True):
                self.store.append(group, ds, self.first_draw + self.num_draws)
                self.counts[group] = self.num_draws + n
        self.store.save(state, self.phase, self.num_draws + n, self.counts, self.timings)
        self.num_draws += n
        self.state = state

    def joined(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        raise TypeError("a stored phase's draws are in its store")


class Progress:
    """One tqdm bar over warmup then sampling: phase, draws, divergences, step size.

    Driven from the host after each chunk, so it works under `vmap` and `shard_map`
    where an `io_callback` progress bar does not (BlackJAX #927).
    """

    def __init__(
        self,
        num_warmup: int,
        num_samples: int,
        num_chains: int,
        *,
        enabled: bool,
        initial: int = 0,
    ):
        self.divergences = {"warmup": 0, "sampling": 0}
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=num_warmup + num_samples,
                initial=initial,
                desc="warmup" if num_warmup > initial else "sampling",
                unit="step",
                dynamic_ncols=True,
                postfix=f"{num_chains} chains",
            )

    def update(self, phase: str, steps: int, stats: Any) -> None:
        diverging = np.asarray(stats.diverging)[:, :steps]
        self.divergences[phase] += int(diverging.sum())
        if self.bar is None:
            return
        step_size = np.asarray(stats.step_size)[:, steps - 1]
        self.bar.set_description(phase, refresh=False)
        self.bar.set_postfix(
            divergences=self.divergences[phase],
            step_size=f"{np.median(step_size):.3g}",
            refresh=False,
        )
        self.bar.update(steps)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_phase(
    model: LogDensity,
    settings: Settings,
    state: SamplerState,
    phase: str,
    draws: Draws,
    progress: Progress,
    done: int = 0,
) -> SamplerState:
    """Run steps `done` to `draws.total` of every chain from `state` (`done`: the steps
    already stored, when a stored run resumes), in calls of the compiled chunk of
    `settings.chunk_size` steps: adapting in `"warmup"` (the adaptation's schedule, by
    each step's index in the warmup), at the adapted parameters in `"sampling"`. A call
    runs the chunk's steps, or, for threaded chains, fewer real ones where their
    leapfrog steps would pass `leapfrogs_per_call` (the rest are masked; the draws do not
    depend on it: each step's key is its index's). After each call the draws, sample
    stats and state go to `draws` and `progress` moves; a `KeyboardInterrupt` between
    calls leaves `draws` holding every completed call and the state after it.

    **Returns:** the state after the last step.
    """
    size, config = settings.chunk_size, settings.config
    adapting = phase == "warmup"
    schedule = adaptation(config).schedule(draws.total) if adapting else None
    mesh = chain_mesh(model) if config.chain_method == "parallel" else None
    budget = one_chain = None
    if config.chain_method == "threaded":
        flat = jax.tree.leaves(model.initial_position)
        itemsize = np.dtype(sampler_dtype(model.initial_position)).itemsize
        budget = leapfrogs_per_call(sum(int(np.size(x)) for x in flat) * itemsize)
        # one chain's state types, fixed within a phase (a restart keeps them)
        one_chain = jax.eval_shape(lambda s: jax.tree.map(lambda x: x[:1], s), state)
    first, last = done, None
    while first < draws.total:
        n = min(steps_per_call(last, size, budget, config.max_tree_depth), draws.total - first)
        steps = first + np.arange(size)
        active = np.arange(size) < n
        if schedule is not None:
            stages = schedule[np.minimum(steps, draws.total - 1)]
        else:
            stages = np.zeros((size, 2), np.int32)
        if config.chain_method == "threaded":
            args = (*jax.device_put((stages, active)), adapting)  # as every worker gets them
            program = chunk.compiled(model, config, one_chain, *args)
            state, (stats, values) = threaded(program, model, state, *args)
        else:
            placed = place_chains(state, config.chain_method, mesh)
            state, (stats, values) = chunk(model, config, placed, stages, active, adapting)
        stats, values = to_host((stats, values if draws.keep_draws else {}))
        first += n
        if adapting and first <= draws.total // 2:  # before the state is kept
            state = restart_collapsed(model, state, settings, first)
        draws.add(stats, values, n, state)
        progress.update(phase, n, stats)
        last = np.asarray(stats.n_steps)[:, :n]
    return state


FROZEN = 1e-10  # a step size under this has collapsed, whatever the other chains'


def restart_collapsed(
    model: LogDensity, state: SamplerState, settings: Settings, step: int
) -> SamplerState:
    """`state` with every chain whose warmup collapsed restarted.

    A chain has collapsed when its current step size is under `COLLAPSED` (1/1000) of the
    chains' lower median (`diagnose`'s rule for a stuck chain; the lower one, and not the
    largest, because chains proposing into a divergent region can push theirs to 1e100), or
    under `FROZEN` (1e-10: no move of an unconstrained coordinate at that scale means
    anything; this catches the runs where most chains collapsed, and so did their median). A
    chain far in a region where every trajectory diverges (an ARMA's exploding MA recursion)
    drives dual averaging there, down to 1e-38, and never moves again. It takes a healthy
    chain's position and adaptation state (healthy chains in turn) and keeps its own random
    stream, so the two part at the next step; when no chain is healthy, each takes a fresh
    start (`init`'s, with a key of its own stream and this step), and its adaptation starts
    again. Checked at the end of each call of the chunk in the first half of warmup only, so
    that a restarted chain has half of warmup left. A `SamplingWarning` names each restart.
    A restart happens at a call's end, so in a run that has one the draws depend on
    `chunk_size` (and, for threaded chains of a large model, on `leapfrogs_per_call`); in
    other runs they do not.
    """
    step_size = to_host(
        jax.vmap(lambda a: adaptation(settings.config).parameters(a)[0])(state.adaptation)
    )
    median = float(np.sort(step_size)[(step_size.size - 1) // 2])  # the lower median
    ok = (step_size >= COLLAPSED * median) & (step_size >= FROZEN)
    collapsed, healthy = np.flatnonzero(~ok), np.flatnonzero(ok)
    if collapsed.size == 0:
        return state
    if healthy.size:
        donors = healthy[np.arange(collapsed.size) % healthy.size]
        source = (state.kernel, state.adaptation)
        where = [f"chain {d}'s state" for d in donors]
    else:
        key = jax.random.fold_in(state.rng_key[0], 2**31 + step)
        fresh = start_chains(model, settings, key, None)
        donors = collapsed
        source = (fresh.kernel, fresh.adaptation)
        where = ["a fresh start (no chain was healthy)"] * collapsed.size

    def copy(leaf: Any, new: Any) -> Any:
        return leaf.at[collapsed].set(new[donors])

    kernel, adapted = jax.tree.map(copy, (state.kernel, state.adaptation), source)
    warnings.warn(
        "warmup collapsed in "
        + ", ".join(
            f"chain {c} (step size {step_size[c]:.2g} at warmup step {step}, against the "
            f"chains' median {median:.2g}; restarted from {w})"
            for c, w in zip(collapsed, where, strict=True)
        ),
        SamplingWarning,
        stacklevel=2,
    )
    return state._replace(kernel=kernel, adaptation=adapted)
