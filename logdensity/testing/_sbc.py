"""Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788; Modrák et al.
2023, Bayesian Analysis, doi:10.1214/23-BA1404), vectorised over simulations."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree, Scalar
from scipy import stats

from .._model import as_model
from .._protocol import LogDensity
from .._sample._adaptation import adaptation
from .._sample._programs import init_chain, jittered, transition
from .._sample._settings import Config

__all__ = ["SBCResult", "sbc"]


@dataclasses.dataclass(frozen=True)
class SBCResult:
    """What [`sbc`][logdensity.testing.sbc] found.

    - `ranks`: `{quantity: int array (num_simulations,)}`, each the number of the `L`
      thinned posterior draws below the true value (0 … L); one entry per scalar of every
      value (`theta[3]`) and per test quantity.
    - `num_draws`: `L`.
    - `p_values`: `{quantity: p}` of Pearson's χ² test of uniform ranks over
      `num_bins` equal bins.
    - `p_value`: the smallest of them times their number (Bonferroni), at most 1: the
      p-value of "every rank is uniform".
    - `divergences`: `(num_simulations,)` divergent transitions per fit.
    """

    ranks: dict[str, np.ndarray]
    num_draws: int
    p_values: dict[str, float]
    p_value: float
    divergences: np.ndarray

    def worst(self) -> tuple[str, float]:
        """The quantity whose ranks are least uniform, and its p-value."""
        name = min(self.p_values, key=self.p_values.__getitem__)
        return name, self.p_values[name]


def _scalars(values: Mapping[str, Array]) -> dict[str, Array]:
    """`{name: array}` → `{name or name[i, j]: scalar}` (row-major, 0-based indices)."""
    out = {}
    for name, value in values.items():
        value = jnp.asarray(value)
        if value.ndim == 0:
            out[name] = value
            continue
        for index in np.ndindex(value.shape):
            out[f"{name}[{', '.join(map(str, index))}]"] = value[index]
    return out


def _uniformity(ranks: np.ndarray, num_draws: int, num_bins: int) -> float:
    counts = np.bincount(ranks * num_bins // (num_draws + 1), minlength=num_bins)
    return float(stats.chisquare(counts).pvalue)


def sbc(
    model: LogDensity,
    simulate: Callable[[PRNGKeyArray], tuple[Mapping[str, Array], PyTree]],
    rng_key: PRNGKeyArray,
    *,
    num_simulations: int = 200,
    num_draws: int = 99,
    thin: int = 5,
    num_warmup: int = 500,
    test_quantities: Callable[[Mapping[str, Array], PyTree], Mapping[str, Scalar]] | None = None,
    num_bins: int = 10,
    batch_size: int | None = 50,
    target_acceptance_rate: float = 0.8,
    max_tree_depth: int = 10,
    init_jitter: float = 2.0,
) -> SBCResult:
    """Simulation-based calibration of `model` and the sampler together.

    For each of `num_simulations` keys: `simulate(key)` draws the true values from the
    prior and data from the likelihood; the model, with its data replaced
    (`model.replace_data(data)`, no recompilation), is fitted by the loop of
    [`logdensity.sample`][] (its kernel, adaptation and start: a jittered position,
    the step-size search, `num_warmup` steps of Stan's window adaptation, then NUTS at
    the adapted parameters, one chain); `num_draws · thin`
    draws are thinned to `L = num_draws`, and each true scalar's rank among them is
    recorded, as is the rank of each test quantity `test_quantities(values, data)`
    (e.g. the joint log-likelihood, which Modrák et al. 2023 show catches errors the
    marginal ranks miss). If the model's posterior is the one implied by the prior and
    the likelihood that `simulate` uses, every rank is uniform on 0 … L (Talts et al.
    2018, Theorem 1); a wrong Jacobian, prior or likelihood makes some non-uniform.

    Simulations run through `jax.vmap` in batches of `batch_size` (`jax.lax.map`), so
    one compilation covers them all; chains in a batch step in lockstep.

    **Arguments:**

    - `model`: any `LogDensity` with a `replace_data` (every adapter's but
      `from_pymc`'s); its data are replaced per simulation.
    - `simulate`: `simulate(rng_key) -> (values, data)`, pure JAX: `values` a dict of
      the model's named values (constrained space, as `constrain` returns them; only the
      names given are ranked) and `data` in the form `model.replace_data` takes.
    - `num_draws`: `L`; `(L + 1)` must be a multiple of `num_bins`.
    - `thin`: keep every `thin`-th draw (autocorrelated draws make ranks non-uniform
      even for a correct model).
    - `test_quantities`: `f(values, data) -> {name: scalar}`, evaluated at the truth
      and at every kept draw.

    **Returns:** an [`SBCResult`][logdensity.testing.SBCResult].

    - `max_tree_depth`, `target_acceptance_rate`, `init_jitter`: as for `sample`.

    **Raises:** `ValueError` if `num_draws + 1` is not a multiple of `num_bins`, or
    `simulate` names a value the model does not have; `TypeError` if `model` is not a
    `LogDensity` with `replace_data`.
    """
    if (num_draws + 1) % num_bins:
        raise ValueError(f"num_draws + 1 = {num_draws + 1} is not a multiple of {num_bins} bins")
    if not callable(getattr(model, "replace_data", None)):
        raise TypeError(
            f"sbc replaces the model's data per simulation: {type(model).__name__} has no "
            "replace_data."
        )
    as_model(model, "sbc")  # a clear TypeError for an object that is not a LogDensity
    config = Config(
        target_acceptance_rate=float(target_acceptance_rate), max_tree_depth=int(max_tree_depth)
    )
    adapt = adaptation(config)
    schedule = jnp.asarray(adapt.schedule(num_warmup))
    sim_key, fit_key = jax.random.split(rng_key)
    truths, datas = jax.vmap(simulate)(jax.random.split(sim_key, num_simulations))
    unknown = sorted(set(truths) - set(model.variables))
    if unknown:
        raise ValueError(
            f"simulate returns {unknown}, not values of the model {list(model.variables)}"
        )

    def quantities(values: Mapping[str, Array], data: PyTree) -> dict[str, Array]:
        out = _scalars({k: values[k] for k in truths})
        if test_quantities is not None:
            out |= {k: jnp.asarray(v) for k, v in test_quantities(values, data).items()}
        return out

    def fit(args: tuple[PRNGKeyArray, PyTree, PyTree]) -> tuple[dict[str, Array], Array]:
        key, truth, data = args
        m = as_model(model.replace_data(data), "sbc")  # type: ignore[attr-defined]
        init_key, step_key, chain_key = jax.random.split(key, 3)
        state = init_chain(m, config, step_key, jittered(m, init_key, init_jitter))

        def warmup(carry: Any, x: tuple[Array, Array]) -> tuple[Any, None]:
            i, stage = x
            kernel_state, adaptation_state, _ = transition(
                m, config, jax.random.fold_in(chain_key, i), carry[0], carry[1], stage, True
            )
            return (kernel_state, adaptation_state), None

        (kernel_state, adaptation_state), _ = jax.lax.scan(
            warmup, state, (jnp.arange(num_warmup), schedule)
        )
        adapted = adapt.final(adaptation_state)
        no_stage = jnp.zeros(2, jnp.int32)

        def one_draw(kernel_state: Any, j: Array) -> tuple[Any, tuple[PyTree, Array]]:
            def step(carry: tuple[Any, Array], t: Array) -> tuple[Any, None]:
                kernel_state, divergent = carry
                i = num_warmup + j * thin + t
                kernel_state, _, stats = transition(
                    m,
                    config,
                    jax.random.fold_in(chain_key, i),
                    kernel_state,
                    adapted,
                    no_stage,
                    False,
                )
                return (kernel_state, divergent + stats.diverging), None

            (kernel_state, divergent), _ = jax.lax.scan(
                step, (kernel_state, jnp.zeros((), jnp.int32)), jnp.arange(thin)
            )
            return kernel_state, (kernel_state.position, divergent)

        _, (positions, divergent) = jax.lax.scan(one_draw, kernel_state, jnp.arange(num_draws))
        truth_q = quantities(truth, data)
        draws_q = jax.vmap(lambda p: quantities(m.constrain(p), data))(positions)
        ranks = {k: jnp.sum(draws_q[k] < truth_q[k]) for k in truth_q}
        return ranks, jnp.sum(divergent)

    keys = jax.random.split(fit_key, num_simulations)
    ranks, divergences = jax.jit(
        lambda k, t, d: jax.lax.map(fit, (k, t, d), batch_size=batch_size)
    )(keys, truths, datas)
    ranks = {k: np.asarray(v, np.int64) for k, v in ranks.items()}
    p_values = {k: _uniformity(v, num_draws, num_bins) for k, v in ranks.items()}
    return SBCResult(
        ranks=ranks,
        num_draws=num_draws,
        p_values=p_values,
        p_value=min(1.0, min(p_values.values()) * len(p_values)),
        divergences=np.asarray(divergences),
    )
