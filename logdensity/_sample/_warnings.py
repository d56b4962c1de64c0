"""The warning and the error of the sampling loop, apart so that every part can raise
them."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["DrawsSavedError", "SamplingWarning", "save_draws"]


class SamplingWarning(UserWarning):
    """Sampling finished but its diagnostics say the draws may not be trustworthy:
    divergences, R-hat above 1.01, bulk or tail ESS below 100 per chain, or an
    interrupted run; or a chain that `init="map"`/`"pathfinder"` could not move; or a
    run without warmup."""


class DrawsSavedError(RuntimeError):
    """Sampling finished, but turning the draws into an `InferenceData` failed; the
    draws are not lost.

    **Attributes:**

    - `draws`: `{group: {name: array}}`, the raw draws as host NumPy arrays:
      `posterior` (every value of `constrain`, `(chain, draw, *shape)`) and
      `sample_stats` (`(chain, draw)`), plus `warmup_posterior`/`warmup_sample_stats`
      with `save_warmup`.
    - `path`: the `.npz` file holding the same arrays, under keys `"{group}/{name}"`
      (`np.load(path)["posterior/mu"]`).

    The cause is chained (`__cause__`).
    """

    def __init__(self, message: str, draws: Mapping[str, Mapping[str, np.ndarray]], path: Path):
        super().__init__(message)
        self.draws = {g: dict(v) for g, v in draws.items()}
        self.path = path


def save_draws(draws: Mapping[str, Mapping[str, np.ndarray]]) -> Path:
    """Write `{group: {name: array}}` to a new `draws.npz` in a fresh temporary
    directory (`tempfile.mkdtemp`); its path."""
    path = Path(tempfile.mkdtemp(prefix="logdensity-draws-")) / "draws.npz"
    flat = {f"{g}/{k}": np.asarray(v) for g, group in draws.items() for k, v in group.items()}
    np.savez(path, **flat)  # type: ignore[arg-type]
    return path
