"""The transition kernel: a pure `init`/`step` pair in the shape of BlackJAX's
`SamplingAlgorithm`, with the parameters the adaptation tunes passed to each step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import blackjax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree

from . import _nuts
from ._settings import Config

__all__ = ["Kernel", "LogDensityFn", "Parameters", "Stats", "nuts", "zero_stats"]

LogDensityFn = Callable[[PyTree], Array]
"""What the kernel and the adaptation call: a log density of a kernel position (a
`LogDensity` seen through `_precision.sampler_precision`)."""


class Parameters(NamedTuple):
    """What a step uses from the adaptation: `step_size` (scalar) and
    `inverse_mass_matrix` over the flattened position, `(dim,)` or `(dim, dim)`."""

    step_size: Array
    inverse_mass_matrix: Array


class Stats(NamedTuple):
    """Stan's per-draw sample stats (ArviZ's names), for one transition."""

    diverging: Array
    acceptance_rate: Array
    step_size: Array
    tree_depth: Array
    n_steps: Array
    energy: Array
    lp: Array


def _stat_dtypes(dtype: Any) -> tuple[Any, ...]:
    cast = {"diverging": jnp.bool_, "tree_depth": jnp.int32, "n_steps": jnp.int32}
    return tuple(cast.get(name, dtype) for name in Stats._fields)


def _stats(**fields: Any) -> Stats:
    """`Stats` with fixed dtypes (bool, ints as int32, floats as the log density's),
    so that a skipped step's zeros can be built without tracing the kernel."""
    dtypes = _stat_dtypes(jnp.result_type(fields["lp"]))
    return Stats(*(jnp.asarray(fields[k], t) for k, t in zip(Stats._fields, dtypes, strict=True)))


def zero_stats(dtype: Any) -> Stats:
    """The `Stats` of a step that did not run (padding at the end of a phase)."""
    return Stats(*(jnp.zeros((), t) for t in _stat_dtypes(dtype)))


class Kernel(NamedTuple):
    """`init(position, logdensity_fn) -> state` and `step(rng_key, state,
    logdensity_fn, parameters) -> (state, Stats)`: pure, one chain, vmappable."""

    init: Callable[[PyTree, LogDensityFn], Any]
    step: Callable[[PRNGKeyArray, Any, LogDensityFn, Parameters], tuple[Any, Stats]]


def _no_positive_infinity(logdensity_fn: LogDensityFn) -> Callable[[PyTree], Array]:
    """`logdensity_fn` with `+inf` as NaN. A log density of `+inf` is a singularity
    (or an overflow), never a point of infinite probability that a sampler should move
    to: BlackJAX would accept it (its energy is `-inf`) and the chain would stay there
    (draws of 1e37, `lp = +inf`). As NaN, BlackJAX rejects it as a divergence."""

    def guarded(position: PyTree) -> Array:
        lp = logdensity_fn(position)
        return jnp.where(lp == jnp.inf, jnp.nan, lp)

    return guarded


def nuts(config: Config) -> Kernel:
    """BlackJAX's NUTS (`blackjax.nuts.init`, `blackjax.nuts.build_kernel`; Hoffman &
    Gelman 2014, with the multinomial sampling of Betancourt 2017) with Stan's extra
    U-turn checks across merged subtrees (`_nuts`, as Stan and nutpie), capped at
    `config.max_tree_depth` trajectory doublings. A proposal whose log density is
    `+inf` is rejected and counted as a divergence (`_no_positive_infinity`)."""
    kernel = _nuts.build_kernel()

    def init(position: PyTree, logdensity_fn: LogDensityFn) -> Any:
        return blackjax.nuts.init(position, logdensity_fn)

    def step(
        rng_key: PRNGKeyArray, state: Any, logdensity_fn: LogDensityFn, parameters: Parameters
    ) -> tuple[Any, Stats]:
        new_state, info = kernel(
            rng_key,
            state,
            _no_positive_infinity(logdensity_fn),
            parameters.step_size,
            parameters.inverse_mass_matrix,
            max_num_doublings=config.max_tree_depth,
        )
        return new_state, _stats(
            diverging=info.is_divergent,
            acceptance_rate=info.acceptance_rate,
            step_size=parameters.step_size,
            tree_depth=info.num_trajectory_expansions,
            n_steps=info.num_integration_steps,
            energy=info.energy,
            lp=new_state.logdensity,
        )

    return Kernel(init, step)
