"""The warmup's adaptation: `init`/`update`/`parameters`/`final`, one chain, pure, so
that the loop steps it chunk by chunk and a new metric is a new piece, not an edit of
`sample`."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation import window_adaptation as _window_adaptation
from blackjax.adaptation.step_size import find_reasonable_step_size
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PRNGKeyArray

from ._kernel import LogDensityFn, Parameters, Stats
from ._settings import Config, host_schedule, low_rank_schedule

__all__ = ["Adaptation", "adaptation", "nutpie_diag", "staged", "window"]


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

    init: Callable[[PRNGKeyArray, Any, LogDensityFn], Any]
    update: Callable[[Any, Array, Any, Stats], Any]
    parameters: Callable[[Any], Parameters]
    final: Callable[[Any], Any]
    schedule: Callable[[int], np.ndarray]


def initial_step_size(
    rng_key: PRNGKeyArray,
    kernel_state: Any,
    logdensity_fn: LogDensityFn,
    inverse_mass_matrix: Any = None,
) -> Array:
    """Stan's and NumPyro's start for dual averaging: from 1, double or halve the step
    size of one leapfrog step (at `inverse_mass_matrix`, default unit) until its
    acceptance rate crosses 0.65 (Hoffman & Gelman 2014, Alg. 4;
    `blackjax.adaptation.step_size.find_reasonable_step_size`). Without it, a chain
    that starts far out in a concentrated posterior spends its first warmup steps at
    the maximum tree depth."""
    kernel = blackjax.hmc.build_kernel()
    ones = jnp.ones_like(ravel_pytree(kernel_state.position)[0])
    imm = ones if inverse_mass_matrix is None else inverse_mass_matrix

    def kernel_generator(step_size: Array) -> Callable:
        return lambda k, s: kernel(k, s, logdensity_fn, step_size, imm, num_integration_steps=1)

    one = jnp.asarray(1.0, ones.dtype)
    return find_reasonable_step_size(rng_key, kernel_generator, kernel_state, one)


@functools.cache
def stan_schedule(num_warmup: int) -> np.ndarray:
    """Stan's warmup windows (`window_adaptation.build_schedule`), `(num_warmup, 2)`,
    read-only (`host_schedule`)."""
    return host_schedule(_window_adaptation.build_schedule, num_warmup)


def window(config: Config) -> Adaptation:
    """Stan's window adaptation (Stan Reference Manual §15.2): dual averaging of the
    step size towards `config.target_acceptance_rate` in every window, a diagonal (or,
    with `config.metric == "dense"`, dense) inverse mass matrix estimated from the draws
    of doubling slow windows.

    Built on `blackjax.adaptation.window_adaptation.base`, BlackJAX's released
    (init, update, final) triple, the piece that can be stepped chunk by chunk where
    `window_adaptation(...).run` is one opaque scan. It is marked deprecated in 1.7 but
    kept "at its released API for downstream code".
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        base_init, base_update, base_final = _window_adaptation.base(
            is_mass_matrix_diagonal=config.metric != "dense",
            target_acceptance_rate=config.target_acceptance_rate,
        )

    def init(rng_key: PRNGKeyArray, kernel_state: Any, logdensity_fn: LogDensityFn) -> Any:
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

    return Adaptation(init, update, parameters, final, stan_schedule)


def staged(config: Config) -> Adaptation:
    """The low-rank metric on BlackJAX's staged-adaptation engine
    (`blackjax.adaptation.staged_adaptation`, the engine under
    `window_adaptation_low_rank`), stepped one warmup step at a time: the
    Fisher-divergence-minimising low-rank-modified metric
    `diag(σ)(I + U(Λ - I)Uᵀ)diag(σ)` of Seyboldt et al. 2026 (Algorithm 1), as
    nutpie adapts it: σ seeded from the first gradient (`gradient_based_init`),
    nutpie's growing windows (`build_growing_window_schedule`: 30% early windows of
    10 draws, windows from 80 growing 1.5×, a final 15% step-size-only phase), its
    partial-forget buffer (`buffer_policy="accumulating"`), the metric recomputed at
    each window end and 10 draws after its last recompute (nuts-rs's
    `mass_matrix_update_freq = 10`; beyond 1,000 dimensions only at each window's
    end; `config.recompute_every`),
    regularisation γ = 1e-5 and eigenvalues in [1/2, 2] masked to 1 (nutpie's
    `LowRankSettings`). nutpie keeps every eigenvalue outside the cutoff; BlackJAX
    needs a static rank, `config.max_rank`. Dual averaging of the step size restarts
    at the first window end only, and runs on through the others (nuts-rs's
    `GlobalStrategy`); BlackJAX's engine restarts it at every window end, which left
    the step size to an average over the final 150 draws: 14% below nutpie's, with
    an acceptance rate of 0.87 against the 0.8 target and 1.6x fewer ESS per
    gradient (logistic regression, measured).

    The schedule's second column: 0 inside a window, 1 at a window end after which
    dual averaging runs on, 2 at one that restarts it (at the window's average step
    size, BlackJAX's `slow_final`).
    """
    from blackjax.adaptation.metric_recipes import (
        _build_fisher_low_rank_accumulating_core,
        seed_low_rank_sigma_from_grad,
    )
    from blackjax.adaptation.staged_adaptation import _make_engine
    from blackjax.adaptation.step_size import dual_averaging_adaptation

    core = _build_fisher_low_rank_accumulating_core(
        buffer_size=config.buffer_size,
        max_rank=config.max_rank,
        gamma=1e-5,
        cutoff=2.0,
        recompute_every=config.recompute_every,
    )
    core = core._replace(update=_moved_draws_only(core.update))
    engine_init, engine_update, engine_final = _make_engine(
        core, target_acceptance_rate=config.target_acceptance_rate
    )

    def init(rng_key: PRNGKeyArray, kernel_state: Any, logdensity_fn: LogDensityFn) -> Any:
        metric = core.init(ravel_pytree(kernel_state.position)[0].size)
        # nutpie's start: M = diag(|first gradient|)
        metric = seed_low_rank_sigma_from_grad(metric, kernel_state.logdensity_grad)
        imm = metric.inverse_mass_matrix
        step_size = initial_step_size(rng_key, kernel_state, logdensity_fn, imm)
        state = engine_init(kernel_state.position, step_size)
        return state._replace(imm_state=metric, inverse_mass_matrix=imm)

    da_update = dual_averaging_adaptation(config.target_acceptance_rate)[1]

    def update(state: Any, stage: Array, kernel_state: Any, stats: Stats) -> Any:
        new = engine_update(
            state,
            (stage[0], stage[1] > 0),
            kernel_state.position,
            kernel_state.logdensity_grad,
            stats.acceptance_rate,
        )
        # a window end of stage 1: the new metric, and the step size's dual averaging
        # as if no window had ended (the engine's own update of it, not its restart)
        ss_state = da_update(state.ss_state, stats.acceptance_rate)
        runs_on = new._replace(ss_state=ss_state, step_size=jnp.exp(ss_state.log_step_size))
        return jax.lax.cond(stage[1] == 1, lambda: runs_on, lambda: new)

    def parameters(state: Any) -> Parameters:
        return Parameters(state.step_size, state.inverse_mass_matrix)

    def final(state: Any) -> Any:
        step_size, imm = engine_final(state)
        like = jax.tree.map(
            lambda new, old: jnp.asarray(new, old.dtype), imm, state.inverse_mass_matrix
        )
        return state._replace(
            step_size=jnp.asarray(step_size, jnp.result_type(state.step_size)),
            inverse_mass_matrix=like,
        )

    return Adaptation(init, update, parameters, final, nutpie_schedule)


def nutpie_schedule(num_warmup: int) -> np.ndarray:
    """nutpie's windows (`low_rank_schedule`), dual averaging restarted at the first
    window end only (2; the others 1)."""
    schedule = low_rank_schedule(num_warmup).copy()
    ends = np.flatnonzero(schedule[:, 1])
    if ends.size:
        schedule[ends[0], 1] = 2
    return schedule


def _moved_draws_only(update: Callable[..., Any]) -> Callable[..., Any]:
    """The low-rank core's `update`, skipped for a draw where the chain did not move.

    nuts-rs (`DrawGradCollector::register_draw`, behind nutpie's low-rank metric)
    keeps a draw for the metric only if NUTS picked another point of the trajectory
    than its start (`index_in_trajectory != 0`). BlackJAX's accumulating core keeps
    every draw, so a chain whose early steps are rejected fills its buffer with copies:
    the draws' variance in some coordinates is zero, their scale is clipped to 1e-20,
    and the chain never moves there again (measured on rat tumors: 1 chain in 4, per
    seed, froze two `logit_theta` coordinates for its first 350 warmup draws, at tree
    depth 10). BlackJAX's NUTS reports no trajectory index, so "not moved" is "the
    position equals the last one in the buffer" (for a divergent transition nuts-rs
    also drops draws within 4 steps of the start; not reproduced)."""

    def moved_only(state: Any, position: Any, grad: Any) -> Any:
        flat = ravel_pytree(position)[0]
        size = state.draws_buffer.shape[0]
        last = state.draws_buffer[(state.buffer_idx - 1) % size]
        moved = (state.buffer_idx == 0) | jnp.any(flat != last)
        return jax.lax.cond(moved, lambda s: update(s, position, grad), lambda s: s, state)

    return moved_only


class NutpieDiagState(NamedTuple):
    """The state of nutpie's diagonal adaptation for one chain (`nutpie_diag`)."""

    step_size: Array
    inverse_mass_matrix: Array
    ss_state: Any  # BlackJAX's `DualAveragingAdaptationState`
    foreground: Any  # BlackJAX's `_FisherMomentBlock`: the draws the metric reads
    background: Any  # the draws since the last switch, the next foreground
    last_lp: Array  # the chain's last log density: a draw that equals it did not move


# nuts-rs's `AdaptOptions` defaults (nutpie 0.16.8): the early windows' share of the
# warmup, switching every 10 draws, then every 80; the final step-size-only share
EARLY_WINDOW, EARLY_SWITCH, SWITCH, STEP_SIZE_WINDOW = 0.3, 10, 80, 0.15
# nuts-rs's limits on the gradient-based start (BlackJAX's estimator clips the adapted
# diagonal to the same)
_LIMITS = (1e-20, 1e20)


def nutpie_diag_schedule(num_warmup: int) -> np.ndarray:
    """nutpie's windows for its diagonal metric, `(num_warmup, 2)` int32: column 0 the
    background draws after which the estimators switch (10 in the first 30% of the
    warmup, then 80; 0 where no switch may happen because fewer draws are left before
    the final window than the switch needs), column 1 whether the metric adapts (1)
    or only the step size (0, the final 15%). nuts-rs's `GlobalStrategy::adapt`."""
    draw = np.arange(num_warmup)
    final_window = num_warmup - int(STEP_SIZE_WINDOW * num_warmup)
    switch = np.where(draw < int(EARLY_WINDOW * num_warmup), EARLY_SWITCH, SWITCH)
    late = switch + draw > final_window
    adapting = draw < final_window
    return np.stack([np.where(adapting & ~late, switch, 0), adapting], axis=1).astype(np.int32)


def nutpie_diag(config: Config) -> Adaptation:
    """nutpie's default diagonal metric and its windows (nuts-rs's `GlobalStrategy`
    with the diagonal `mass_matrix::adapt::Strategy`, nutpie 0.16.8's defaults):

    - the inverse mass matrix starts at `1 / |∇ log p|` of the chain's start
      (`1` where that is not finite), the step size from Stan's search at that metric;
    - it is the Fisher diagonal `sqrt(var(x) / var(∇ log p))` (BlackJAX's
      `fisher_score_diagonal_from_moments` over its Welford moment blocks) of a
      *foreground* estimator, recomputed after every warmup draw once it holds 3;
    - a *background* estimator takes the same draws and replaces the foreground once it
      holds 10 draws (in the first 30% of the warmup) or 80 (after), unless fewer draws
      are left before the final window than that;
    - a draw where the chain did not move (its log density equals the last one) enters
      neither, as in nuts-rs (`DrawGradCollector`);
    - the step size follows dual averaging towards `config.target_acceptance_rate`
      throughout, restarted at the current step size when the metric first changes
      (nuts-rs also re-runs its step-size search there) and not at the window switches;
      the final 15% adapts the step size only, and the adapted step size is dual
      averaging's average iterate.

    Against Stan's windows (`window`): no 75-draw start at the identity metric, and a
    metric that follows the chain from its third draw, so that a high-dimensional
    posterior of many scales leaves the deep trees of the first draws early.
    """
    from blackjax.adaptation.metric_buffers import _fisher_block_init, _fisher_block_update_one
    from blackjax.adaptation.metric_estimators import fisher_score_diagonal_from_moments
    from blackjax.adaptation.step_size import dual_averaging_adaptation

    da_init, da_update, _ = dual_averaging_adaptation(config.target_acceptance_rate)

    def init(rng_key: PRNGKeyArray, kernel_state: Any, logdensity_fn: LogDensityFn) -> Any:
        x = ravel_pytree(kernel_state.position)[0]
        g = ravel_pytree(kernel_state.logdensity_grad)[0]
        seed = 1.0 / jnp.abs(g)
        imm = jnp.where(jnp.isfinite(seed), jnp.clip(seed, *_LIMITS), 1.0).astype(x.dtype)
        step_size = initial_step_size(rng_key, kernel_state, logdensity_fn, imm)
        block = _fisher_block_update_one(_fisher_block_init(x.size), x, g)
        return NutpieDiagState(
            step_size,
            imm,
            da_init(step_size),
            block,
            block,
            jnp.asarray(kernel_state.logdensity),
        )

    def update(state: Any, stage: Array, kernel_state: Any, stats: Stats) -> Any:
        x = ravel_pytree(kernel_state.position)[0]
        g = ravel_pytree(kernel_state.logdensity_grad)[0]
        lp = jnp.asarray(kernel_state.logdensity, state.last_lp.dtype)
        adapting = stage[1] == 1
        good = adapting & (lp != state.last_lp) & jnp.all(jnp.isfinite(g))

        def take(block: Any) -> Any:
            return jax.lax.cond(good, lambda: _fisher_block_update_one(block, x, g), lambda: block)

        foreground, background = take(state.foreground), take(state.background)
        switch = adapting & (stage[0] > 0) & (background.count >= stage[0])
        foreground, background = jax.lax.cond(
            switch,
            lambda: (background, _fisher_block_init(x.size)),
            lambda: (foreground, background),
        )
        ready = adapting & (foreground.count >= 3)
        denominator = jnp.maximum(foreground.count - 1.0, 1.0)
        estimate = fisher_score_diagonal_from_moments(
            foreground.m2_x / denominator, foreground.m2_g / denominator
        )
        imm = jnp.where(ready, estimate.astype(x.dtype), state.inverse_mass_matrix)
        # the metric leaves its gradient-based start: a foreground, once it holds 3
        # draws, never holds fewer (a switch brings at least 10)
        first = ready & (state.foreground.count < 3)
        ss_state = jax.lax.cond(
            first,
            lambda: da_init(state.step_size),
            lambda: da_update(state.ss_state, stats.acceptance_rate),
        )
        return NutpieDiagState(
            jnp.exp(ss_state.log_step_size).astype(state.step_size.dtype),
            imm,
            ss_state,
            foreground,
            background,
            lp,
        )

    def parameters(state: Any) -> Parameters:
        return Parameters(state.step_size, state.inverse_mass_matrix)

    def final(state: Any) -> Any:
        step_size = jnp.exp(state.ss_state.log_step_size_avg)
        return state._replace(step_size=jnp.asarray(step_size, state.step_size.dtype))

    return Adaptation(init, update, parameters, final, nutpie_diag_schedule)


def adaptation(config: Config) -> Adaptation:
    """The adaptation of `config.metric`: Stan's window adaptation for `"diag"` and
    `"dense"` (`window`), nutpie's diagonal for `"fisher_diag"` (`nutpie_diag`), and
    nutpie's low-rank metric on BlackJAX's staged engine for `"low_rank"` (`staged`)."""
    if config.metric == "fisher_diag":
        return nutpie_diag(config)
    return window(config) if config.metric in ("diag", "dense") else staged(config)
