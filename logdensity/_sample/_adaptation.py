"""The warmup's adaptation: `init`/`update`/`parameters`/`final`, one chain, pure, so
that the loop steps it chunk by chunk and a new metric is a new piece, not an edit of
`sample`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import blackjax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation import window_adaptation as _window_adaptation
from blackjax.adaptation.step_size import find_reasonable_step_size
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PRNGKeyArray

from .._protocol import LogDensity
from ._kernel import Parameters, Stats
from ._settings import Config

__all__ = ["Adaptation", "window"]


class Adaptation(NamedTuple):
    """How the warmup tunes the kernel's parameters, for one chain.

    - `init(rng_key, kernel_state, logdensity_fn) -> state`: the adaptation's state
      at the chain's start (a first step size included);
    - `update(state, stage, kernel_state, stats) -> state` after each warmup step,
      `stage` the step's row of `schedule`;
    - `parameters(state) -> Parameters` for the next step;
    - `final(state) -> state` at the end of warmup: the state whose `parameters` are
      the adapted ones, kept for every sampling step (and for continuing a run);
    - `schedule(num_warmup) -> int32 array (num_warmup, 2)`, on the host.
    """

    init: Callable[[PRNGKeyArray, Any, LogDensity], Any]
    update: Callable[[Any, Array, Any, Stats], Any]
    parameters: Callable[[Any], Parameters]
    final: Callable[[Any], Any]
    schedule: Callable[[int], np.ndarray]


def initial_step_size(rng_key: PRNGKeyArray, kernel_state: Any, logdensity_fn: LogDensity) -> Array:
    """Stan's and NumPyro's start for dual averaging: from 1, double or halve the step
    size of one leapfrog step (unit mass) until its acceptance rate crosses 0.65
    (Hoffman & Gelman 2014, Alg. 4; `blackjax.adaptation.step_size.
    find_reasonable_step_size`). Without it, a chain that starts far out in a
    concentrated posterior spends its first warmup steps at the maximum tree depth."""
    kernel = blackjax.hmc.build_kernel()
    ones = jnp.ones_like(ravel_pytree(kernel_state.position)[0])

    def kernel_generator(step_size: Array) -> Callable:
        return lambda k, s: kernel(k, s, logdensity_fn, step_size, ones, num_integration_steps=1)

    one = jnp.asarray(1.0, ones.dtype)
    return find_reasonable_step_size(rng_key, kernel_generator, kernel_state, one)


def window(config: Config) -> Adaptation:
    """Stan's window adaptation (Stan Reference Manual §15.2): dual averaging of the
    step size towards `config.target_acceptance_rate` in every window, a diagonal (or,
    with `config.dense_mass`, dense) inverse mass matrix estimated from the draws of
    doubling slow windows.

    Built on `blackjax.adaptation.window_adaptation.base`, BlackJAX's released
    (init, update, final) triple, the piece that can be stepped chunk by chunk where
    `window_adaptation(...).run` is one opaque scan. It is marked deprecated in 1.7 but
    kept "at its released API for downstream code".
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        base_init, base_update, base_final = _window_adaptation.base(
            is_mass_matrix_diagonal=not config.dense_mass,
            target_acceptance_rate=config.target_acceptance_rate,
        )

    def init(rng_key: PRNGKeyArray, kernel_state: Any, logdensity_fn: LogDensity) -> Any:
        step_size = initial_step_size(rng_key, kernel_state, logdensity_fn)
        return base_init(kernel_state.position, step_size)

    def update(state: Any, stage: Array, kernel_state: Any, stats: Stats) -> Any:
        return base_update(
            state, (stage[0], stage[1]), kernel_state.position, stats.acceptance_rate
        )

    def parameters(state: Any) -> Parameters:
        return Parameters(state.step_size, state.inverse_mass_matrix)

    def final(state: Any) -> Any:
        step_size, imm = base_final(state)
        # the adapted values, with the types the chunk was compiled for (no retrace)
        return state._replace(
            step_size=jnp.asarray(step_size, state.step_size.dtype),
            inverse_mass_matrix=jnp.asarray(imm, state.inverse_mass_matrix.dtype),
        )

    def schedule(num_warmup: int) -> np.ndarray:
        if num_warmup == 0:
            return np.zeros((0, 2), np.int32)
        return np.asarray(_window_adaptation.build_schedule(num_warmup)).astype(np.int32)

    return Adaptation(init, update, parameters, final, schedule)
