"""The host side of a run: the chunk schedule, the draws' host buffers, the progress
bar, and the phase function that runs compiled chunks between them."""

from __future__ import annotations

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

__all__ = ["Draws", "Progress", "run_phase"]


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

    def __init__(self, total: int, *, keep_draws: bool = True) -> None:
        self.total, self.keep_draws = total, keep_draws
        self.stats: dict[str, np.ndarray] = {}
        self.draws: dict[str, np.ndarray] = {}
        self.num_draws = 0

    def add(self, stats: Stats, draws: dict[str, np.ndarray], n: int) -> None:
        new = {"stats": stats._asdict(), "draws": draws if self.keep_draws else {}}
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


class Progress:
    """One tqdm bar over warmup then sampling: phase, draws, divergences, step size.

    Driven from the host after each chunk, so it works under `vmap` and `shard_map`
    where an `io_callback` progress bar does not (BlackJAX #927).
    """

    def __init__(self, num_warmup: int, num_samples: int, num_chains: int, *, enabled: bool):
        self.divergences = {"warmup": 0, "sampling": 0}
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=num_warmup + num_samples,
                desc="warmup" if num_warmup else "sampling",
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
) -> SamplerState:
    """Run `draws.total` steps of every chain from `state`, in compiled chunks of
    `settings.chunk_size`: adapting in `"warmup"` (Stan's schedule, by each step's
    index in the warmup), at the adapted parameters in `"sampling"`. After each chunk
    the draws and sample stats go to `draws` on the host and `progress` moves; a
    `KeyboardInterrupt` between chunks leaves `draws` holding every completed chunk.

    **Returns:** the state after the last step.
    """
    size, config = settings.chunk_size, settings.config
    adapting = phase == "warmup"
    schedule = adaptation(config).schedule(draws.total) if adapting else None
    for steps, active in chunk_schedule(draws.total, size):
        if schedule is not None:
            stages = schedule[np.minimum(steps, draws.total - 1)]
        else:
            stages = np.zeros((size, 2), np.int32)
        state, (stats, values) = chunk(
            model, config, place_chains(state, config.chain_method), stages, active, adapting
        )
        n = int(active.sum())
        stats, values = jax.device_get((stats, values if draws.keep_draws else {}))
        draws.add(stats, values, n)
        progress.update(phase, n, stats)
    return state
