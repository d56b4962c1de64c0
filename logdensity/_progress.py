"""A host-side progress bar, moved between compiled chunks (never from inside `jit`)."""

from __future__ import annotations

from typing import Any

import numpy as np


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
