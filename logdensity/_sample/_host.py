"""The host side of a run: the chunk schedule, the draws' host buffers, the progress
bar, and the phase function that runs compiled chunks between them."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from .._protocol import LogDensity
from ._adaptation import adaptation
from ._chains import place_chains
from ._kernel import Stats
from ._programs import chunk
from ._settings import Settings
from ._state import SamplerState

__all__ = ["Draws", "Progress", "StoredDraws", "run_phase"]


def chunk_schedule(total: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed-length index chunks over `range(total)`, with an 'active' mask for the
    padding of the last one (every chunk is the same program)."""
    out = []
    for first in range(0, total, size):
        idx = np.arange(first, first + size)
        out.append((idx, idx < total))
    return out


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
    """Run steps `done` to `draws.total` of every chain from `state` (`done`, a chunk
    boundary, when a stored run resumes), in compiled chunks of `settings.chunk_size`:
    adapting in `"warmup"` (the adaptation's schedule, by each step's index in the
    warmup), at the adapted parameters in `"sampling"`. After each chunk the draws,
    sample stats and state go to `draws` and `progress` moves; a `KeyboardInterrupt`
    between chunks leaves `draws` holding every completed chunk and the state after it.

    **Returns:** the state after the last step.
    """
    size, config = settings.chunk_size, settings.config
    adapting = phase == "warmup"
    schedule = adaptation(config).schedule(draws.total) if adapting else None
    for steps, active in chunk_schedule(draws.total, size):
        if steps[0] < done:
            continue
        if schedule is not None:
            stages = schedule[np.minimum(steps, draws.total - 1)]
        else:
            stages = np.zeros((size, 2), np.int32)
        state, (stats, values) = chunk(
            model, config, place_chains(state, config.chain_method), stages, active, adapting
        )
        n = int(active.sum())
        stats, values = jax.device_get((stats, values if draws.keep_draws else {}))
        draws.add(stats, values, n, state)
        progress.update(phase, n, stats)
    return state
