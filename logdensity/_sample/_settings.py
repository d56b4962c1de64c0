"""The settings of a run: validated once, here, before anything is traced."""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Literal

import jax

__all__ = ["CHAIN_METHODS", "ChainMethod", "Config", "Settings"]

ChainMethod = Literal["vectorized", "sequential", "parallel"]
CHAIN_METHODS: tuple[str, ...] = ("vectorized", "sequential", "parallel")


@dataclasses.dataclass(frozen=True)
class Config:
    """What the compiled programs depend on besides the model: static (hashable), part
    of their compilation key."""

    chain_method: str = "vectorized"
    dense_mass: bool = False
    target_acceptance_rate: float = 0.8
    max_tree_depth: int = 10


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

    @classmethod
    def checked(
        cls,
        *,
        num_chains: Any,
        num_warmup: Any,
        num_samples: Any,
        chain_method: Any,
        dense_mass: Any,
        target_acceptance_rate: Any,
        max_tree_depth: Any,
        init_jitter: Any,
        max_init_tries: Any,
        chunk_size: Any,
        progress_bar: Any,
        save_warmup: Any,
    ) -> Settings:
        """Validated settings.

        **Raises:** `ValueError` for an unknown `chain_method`; counts that are not
        integers, or not positive (`num_warmup` may be 0); `max_tree_depth < 1`;
        `target_acceptance_rate` outside (0, 1); a negative `init_jitter`; and with
        `"parallel"`, `num_chains` not a multiple of the device count.
        """
        if chain_method not in CHAIN_METHODS:
            raise ValueError(f"chain_method must be one of {CHAIN_METHODS}; got {chain_method!r}.")
        counts = {
            "num_chains": _integer("num_chains", num_chains, 1),
            "num_warmup": _integer("num_warmup", num_warmup, 0),
            "num_samples": _integer("num_samples", num_samples, 1),
            "chunk_size": _integer("chunk_size", chunk_size, 1),
            "max_init_tries": _integer("max_init_tries", max_init_tries, 1),
        }
        depth = _integer("max_tree_depth", max_tree_depth, 1)
        if not 0.0 < float(target_acceptance_rate) < 1.0:
            raise ValueError(
                f"target_acceptance_rate must be in (0, 1); got {target_acceptance_rate!r}."
            )
        if not float(init_jitter) >= 0.0:
            raise ValueError(f"init_jitter must be >= 0; got {init_jitter!r}.")
        devices = jax.device_count()
        if chain_method == "parallel" and counts["num_chains"] % devices:
            raise ValueError(
                f"chain_method='parallel' shards chains over {devices} devices, so "
                f"num_chains must be a multiple of it; got num_chains={counts['num_chains']}. "
                "(On CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N gives N devices.)"
            )
        # a chunk longer than either phase only allocates padding
        longest = max(counts["num_warmup"], counts["num_samples"])
        counts["chunk_size"] = min(counts["chunk_size"], longest)
        config = Config(
            chain_method=str(chain_method),
            dense_mass=bool(dense_mass),
            target_acceptance_rate=float(target_acceptance_rate),
            max_tree_depth=depth,
        )
        return cls(
            config=config,
            init_jitter=float(init_jitter),
            progress_bar=bool(progress_bar),
            save_warmup=bool(save_warmup),
            **counts,
        )
