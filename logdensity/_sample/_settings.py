"""The settings of a run: validated once, here, before anything is traced."""

from __future__ import annotations

import dataclasses
import functools
import numbers
import os
from collections.abc import Callable
from typing import Any, Literal

import jax
import numpy as np

__all__ = [
    "CHAIN_METHODS",
    "INITS",
    "METRICS",
    "ChainMethod",
    "Config",
    "Init",
    "Metric",
    "Settings",
    "cores",
    "default_chain_method",
    "default_chunk_size",
    "leapfrogs_per_call",
]

ChainMethod = Literal["vectorized", "sequential", "parallel", "threaded"]
CHAIN_METHODS: tuple[str, ...] = ("vectorized", "sequential", "parallel", "threaded")
Metric = Literal["diag", "dense", "low_rank", "fisher_diag"]
METRICS: tuple[str, ...] = ("diag", "dense", "low_rank", "fisher_diag")
Init = Literal["jitter", "map", "pathfinder"]
INITS: tuple[str, ...] = ("jitter", "map", "pathfinder")
# the low-rank metric's default rank: every direction up to this dimension (the cost
# of a leapfrog step is O(dim * rank), a dense metric's O(dim²)), a fixed rank beyond
FULL_RANK_UP_TO = 64
DEFAULT_MAX_RANK = 16
# nutpie recomputes its low-rank metric at each window switch and 10 warmup draws after
# the last recompute (nuts-rs's `LowRankNutsSettings`, `mass_matrix_update_freq = 10`;
# read off nutpie 0.16.8's stored mass matrices: changes at draws 9, 19, 22, 32, ...).
# Each recompute costs O(buffer² · dim) (SVDs of the buffered draws and gradients):
# on diamonds (26 dimensions) a recompute at every draw took 2.9 of warmup's 4.8 s.
LOW_RANK_RECOMPUTE_EVERY = 10
# A recompute takes seconds per chain at dim 10,000: beyond this dimension only each
# window's end recomputes it
RECOMPUTE_IN_WINDOWS_UP_TO = 1000


@dataclasses.dataclass(frozen=True)
class Config:
    """What the compiled programs depend on besides the model: static (hashable), part
    of their compilation key."""

    chain_method: str = "vectorized"
    metric: str = "diag"
    target_acceptance_rate: float = 0.8
    max_tree_depth: int = 10
    max_rank: int = 0
    buffer_size: int = 0
    recompute_every: int = 1


# the most bytes of draws one chunk holds by default: the chunk in flight is held as
# the scan's output, its host copy and its copy into the returned arrays, so its size
# is the peak's excess over the draws (measured: 1.49x at 32 MB, 1.17x at 8 MB)
CHUNK_BYTES = 8 * 2**20
MAX_CHUNK_SIZE = 100


def default_chunk_size(draw_bytes: int, num_chains: int) -> int:
    """`MAX_CHUNK_SIZE` steps, or fewer so that a chunk's draws of every chain fit in
    `CHUNK_BYTES`; at least 1."""
    per_step = max(draw_bytes * num_chains, 1)
    return int(min(MAX_CHUNK_SIZE, max(1, CHUNK_BYTES // per_step)))


# XLA's CPU runtime, while it runs two programs at once (the `"threaded"` chains), holds
# memory for every iteration of their while loops until the program returns: measured
# with BlackJAX's NUTS on the 10,003-parameter hierarchical model in two threads, 10.9
# KiB per leapfrog step (0.14 of the position's size), 1.05 GB over a 100-step call, and
# none with one thread (`benchmarks/memory.py`). A threaded call runs at most as many
# steps as keep its leapfrog steps times the position's bytes under this.
CALL_LEAPFROG_BYTES = 64 * 2**20


def leapfrogs_per_call(position_bytes: int) -> int:
    """How many leapfrog steps one threaded chain's call may take (`CALL_LEAPFROG_BYTES`
    over the bytes of one chain's position); at least 1."""
    return max(1, CALL_LEAPFROG_BYTES // max(position_bytes, 1))


def low_rank_buffer_size(num_warmup: int) -> int:
    """How many draws (and gradients) the low-rank metric keeps: the most that nutpie's
    partial-forget buffer holds over the warmup schedule (the largest sum of two
    consecutive windows; `low_rank_adaptation._accumulating_buffer_capacity`),
    computed on the host so that it is a static shape under `jit` and `vmap`."""
    from blackjax.adaptation.low_rank_adaptation import _accumulating_buffer_capacity

    return max(_accumulating_buffer_capacity(low_rank_schedule(num_warmup)), 1)


@functools.cache
def low_rank_schedule(num_warmup: int) -> np.ndarray:
    """nutpie's warmup schedule (`build_growing_window_schedule`), `(num_warmup, 2)`,
    read-only (`host_schedule`)."""
    from blackjax.adaptation.low_rank_adaptation import build_growing_window_schedule

    return host_schedule(build_growing_window_schedule, num_warmup)


def host_schedule(build: Callable[[int], Any], num_warmup: int) -> np.ndarray:
    """BlackJAX's schedule `build(num_warmup)` as a read-only int32 NumPy array (its
    builders return a device array, whose conversion is a small program of its own:
    8 ms alone, 0.2-0.5 s in a fresh process beside the loop's compilation, hence the
    callers' cache and `sample`'s early call)."""
    schedule = np.zeros((0, 2), np.int32) if num_warmup == 0 else build(num_warmup)
    schedule = np.array(schedule, np.int32)
    schedule.setflags(write=False)
    return schedule


def _integer(name: str, value: Any, minimum: int) -> int:
    integral = isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and float(value).is_integer()
    )
    if isinstance(value, bool) or not integral:
        raise ValueError(f"{name} must be an integer; got {value!r}.")
    if int(value) < minimum:
        raise ValueError(
            f"{name} must be {'a positive integer' if minimum == 1 else f'>= {minimum}'}; "
            f"got {value!r}."
        )
    return int(value)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything about one call of `sample`, checked together.

    Build it with [`Settings.checked`][], which raises `ValueError` naming the setting
    (and what it must be) before any program is traced.
    """

    config: Config
    num_chains: int
    num_warmup: int
    num_samples: int
    chunk_size: int
    init_jitter: float
    max_init_tries: int
    progress_bar: bool
    save_warmup: bool
    init: str = "jitter"

    @classmethod
    def checked(
        cls,
        *,
        dim: int,
        draw_bytes: int = 0,
        num_chains: Any,
        num_warmup: Any,
        num_samples: Any,
        chain_method: Any,
        metric: Any,
        max_rank: Any,
        target_acceptance_rate: Any,
        max_tree_depth: Any,
        init_jitter: Any,
        max_init_tries: Any,
        chunk_size: Any,
        progress_bar: Any,
        save_warmup: Any,
        init: Any = "jitter",
        chain_devices: int | None = None,
    ) -> Settings:
        """Validated settings.

        `dim` is the number of unconstrained coordinates (it sizes the low-rank metric);
        `draw_bytes` the bytes of one chain's draw (its constrained values and sample
        stats), which size the default chunk (`chunk_size=None`).

        **Raises:** `ValueError` for an unknown `chain_method`, `metric` or `init`;
        counts that are not integers, or not positive (`num_warmup` may be 0); `max_tree_depth < 1`;
        `target_acceptance_rate` outside (0, 1); a negative `init_jitter`; and with
        `"parallel"`, `num_chains` not a multiple of the device count (`chain_devices`:
        the size of the mesh's chain axis, default every device).
        """
        if chain_method not in CHAIN_METHODS:
            raise ValueError(f"chain_method must be one of {CHAIN_METHODS}; got {chain_method!r}.")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {init!r}.")
        counts = {
            "num_chains": _integer("num_chains", num_chains, 1),
            "num_warmup": _integer("num_warmup", num_warmup, 0),
            "num_samples": _integer("num_samples", num_samples, 1),
            "chunk_size": default_chunk_size(draw_bytes, _integer("num_chains", num_chains, 1))
            if chunk_size is None
            else _integer("chunk_size", chunk_size, 1),
            "max_init_tries": _integer("max_init_tries", max_init_tries, 1),
        }
        depth = _integer("max_tree_depth", max_tree_depth, 1)
        if not 0.0 < float(target_acceptance_rate) < 1.0:
            raise ValueError(
                f"target_acceptance_rate must be in (0, 1); got {target_acceptance_rate!r}."
            )
        if not float(init_jitter) >= 0.0:
            raise ValueError(f"init_jitter must be >= 0; got {init_jitter!r}.")
        devices = jax.device_count() if chain_devices is None else chain_devices
        if chain_method == "parallel" and counts["num_chains"] % devices:
            raise ValueError(
                f"chain_method='parallel' shards chains over {devices} devices, so "
                f"num_chains must be a multiple of it; got num_chains={counts['num_chains']}. "
                "(On CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N gives N devices.)"
            )
        # a chunk longer than either phase only allocates padding
        longest = max(counts["num_warmup"], counts["num_samples"])
        counts["chunk_size"] = min(counts["chunk_size"], longest)
        low_rank = metric == "low_rank"
        rank = 0
        buffer = low_rank_buffer_size(counts["num_warmup"]) if low_rank else 0
        if low_rank:
            default = dim if dim <= FULL_RANK_UP_TO else DEFAULT_MAX_RANK
            rank = min(dim, default if max_rank is None else _integer("max_rank", max_rank, 1))
        config = Config(
            chain_method=str(chain_method),
            metric=str(metric),
            target_acceptance_rate=float(target_acceptance_rate),
            max_tree_depth=depth,
            max_rank=rank,
            buffer_size=buffer,
            recompute_every=LOW_RANK_RECOMPUTE_EVERY
            if dim <= RECOMPUTE_IN_WINDOWS_UP_TO
            else max(buffer, 1),
        )
        return cls(
            config=config,
            init_jitter=float(init_jitter),
            progress_bar=bool(progress_bar),
            save_warmup=bool(save_warmup),
            init=str(init),
            **counts,
        )


CHAINS_PER_CORE = 4  # beyond this many chains per core, one vectorized program


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS says, so a
    container's limit, not the host's count)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def default_chain_method(num_chains: int, sharded: bool) -> ChainMethod:
    """`chain_method=None`: `"threaded"` on CPU, for a run of one process whose data
    are not split over a mesh, with at most `CHAINS_PER_CORE` chains per core; else
    `"vectorized"`. On CPU, vectorized chains wait in lockstep for the longest
    trajectory and use one core, and threaded ones do neither: measured on every zoo
    model and diamonds (`benchmarks/results/chains.md`, 2 cores), 1.05-3.0x the ESS/s
    of vectorized chains, except 0.97x on eight schools (diagonal, compiled: a 0.4 s
    run) and 0.86-0.94x on rat tumors with the low-rank metric (its per-draw metric
    recompute, batched when vectorized). On an accelerator (not measured: no GPU was
    lent) and beyond `CHAINS_PER_CORE` chains per core, the default stays one batched
    program, which fills a device where one chain's program would not."""
    cpu = jax.default_backend() == "cpu" and jax.process_count() == 1
    if cpu and not sharded and num_chains <= CHAINS_PER_CORE * cores():
        return "threaded"
    return "vectorized"


def check_rng_key(rng_key: Any) -> None:
    """**Raises:** `TypeError` unless `rng_key` is one JAX PRNG key: a typed key
    (`jax.random.key(0)`, shape `()`) or a raw one (`jax.random.PRNGKey(0)`, `uint32`,
    shape `(2,)`)."""
    dtype = getattr(rng_key, "dtype", None)
    shape = getattr(rng_key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
    elif dtype == "uint32" and shape == (2,):
        return
    kind = f"{dtype}{list(shape or ())}"
    got = f"{type(rng_key).__name__} {rng_key!r}" if dtype is None else kind
    raise TypeError(
        f"rng_key must be one JAX PRNG key, e.g. jax.random.key(0); got {got}"
        + (" (an integer seed: pass jax.random.key(seed))" if isinstance(rng_key, int) else "")
        + "."
    )
