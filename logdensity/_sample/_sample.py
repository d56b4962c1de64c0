"""`sample`: settings, starts, one phase function run twice, InferenceData."""

from __future__ import annotations

import time
import warnings
from typing import Any

import arviz as az
import jax
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import PRNGKeyArray, PyTree

from .._inference_data import diagnose, to_inference_data
from .._model import as_model
from .._protocol import LogDensity
from ._adaptation import adaptation
from ._host import Draws, Progress, run_phase
from ._settings import ChainMethod, Metric, Settings
from ._starts import start_chains
from ._state import SamplerState

__all__ = ["SamplingWarning", "sample"]


class SamplingWarning(UserWarning):
    """Sampling finished but its diagnostics say the draws may not be trustworthy:
    divergences, R-hat above 1.01, bulk or tail ESS below 400, or an interrupted run."""


def sample(
    logdensity: LogDensity,
    rng_key: PRNGKeyArray,
    *,
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    chain_method: ChainMethod = "vectorized",
    initial_positions: PyTree | None = None,
    progress_bar: bool = True,
    metric: Metric = "diag",
    max_rank: int | None = None,
    dense_mass: bool | None = None,
    target_acceptance_rate: float = 0.8,
    max_tree_depth: int = 10,
    init_jitter: float = 2.0,
    max_init_tries: int = 20,
    chunk_size: int = 100,
    save_warmup: bool = False,
) -> az.InferenceData:
    """Sample a `LogDensity` with NUTS after Stan's window adaptation, chain by chain.

    Every chain runs BlackJAX's window adaptation (Stan's schedule: a fast step-size
    window, doubling slow windows that estimate the inverse mass matrix, a final fast
    window; Hoffman & Gelman 2014, Stan Reference Manual §15.2) for `num_warmup`
    steps, then `blackjax.nuts` with its own adapted step size and inverse mass matrix
    for `num_samples` draws. Steps run in compiled chunks of `chunk_size` (one
    `lax.scan` each); between chunks the draws move to host memory and the progress bar
    moves. Each compiled function is traced once per model structure and settings.

    Chain `c`'s randomness is `fold_in(split(rng_key)[c], step)`, so the same `rng_key`
    gives the same draws whatever the `chain_method` and `chunk_size`.

    **Arguments:**

    - `logdensity`: any `LogDensity` (e.g. from `logdensity.from_jax`).
    - `rng_key`: a JAX PRNG key (`jax.random.key(0)` or `jax.random.PRNGKey(0)`).
    - `num_chains`, `num_warmup`, `num_samples`: chains, warmup steps per chain, draws
      kept per chain.
    - `chain_method`: `"vectorized"` (`jax.vmap`: one program, chains in lockstep,
      each step waits for the longest trajectory), `"sequential"` (`lax.map`: one
      program, one chain after the other; no lockstep), or `"parallel"` (chains sharded
      across `jax.devices()` with `jax.shard_map`, vectorized within a device; needs
      `num_chains` divisible by the device count).
    - `initial_positions`: unconstrained starting points with a leading `num_chains`
      axis on every leaf. Default: `initial_position + uniform(-init_jitter,
      init_jitter)` per coordinate (Stan's default is uniform(-2, 2)), redrawn up to
      `max_init_tries` times while the log density or its gradient is not finite.
    - `progress_bar`: show a tqdm bar (phase, draws, divergences, step size).
    - `metric`: the inverse mass matrix the warmup adapts (every one a BlackJAX
      estimator): `"diag"`, Stan's diagonal of the draws' variances in doubling
      windows; `"dense"`, Stan's dense covariance; `"low_rank"`, nutpie's
      low-rank-modified Fisher metric (Seyboldt et al. 2026: a diagonal σ and the
      eigenvectors of `cov(x) # cov(∇ log p)⁻¹` whose eigenvalues lie outside [1/2, 2],
      on nutpie's growing windows, from the first gradient); `"fisher_diag"`, the
      Fisher diagonal `var(x) / var(∇ log p)` (nutpie's default diagonal).
    - `max_rank`: for `"low_rank"`, the most eigenvectors kept (each leapfrog step
      costs O(dim · max_rank)); default every direction up to dim 64, 16 beyond.
    - `dense_mass`: deprecated; `dense_mass=True` is `metric="dense"`.
    - `target_acceptance_rate`: the dual-averaging target (Stan: 0.8), in (0, 1).
    - `max_tree_depth`: NUTS's maximum number of trajectory doublings (Stan: 10).
    - `chunk_size`: steps per compiled chunk (memory on device: `chunk_size` draws per
      chain); at most the longer phase's length.
    - `save_warmup`: also return the warmup draws (`warmup_posterior`,
      `warmup_sample_stats`).

    **Returns:** an `arviz.InferenceData` with
    - `posterior`: every value of `logdensity.constrain` (latents in their constrained
      space and deterministics), shape `(chain, draw, *shape)`, with the model's dims and
      coords;
    - `sample_stats`: `diverging` (bool), `acceptance_rate`, `step_size`, `tree_depth`
      (trajectory doublings), `n_steps` (leapfrog steps), `energy`, and `lp` (the log
      density on the unconstrained space, Jacobians included), each `(chain, draw)`;
    - `adaptation`: the adapted `step_size` `(chain,)` and the metric over the
      flattened position: `inverse_mass_matrix` `(chain, dim)` (`"diag"`,
      `"fisher_diag"`) or `(chain, dim, dim)` (`"dense"`); for `"low_rank"` its
      factors `sigma` `(chain, dim)`, `U` `(chain, dim, rank)` and `lam`
      `(chain, rank)` (`M⁻¹ = diag(σ)(I + U(diag(λ) - I)Uᵀ)diag(σ)`);
    - attrs: backend, library versions, `warmup_time` and `sampling_time` (seconds, wall
      clock, compilation included), `interrupted`.

    A `KeyboardInterrupt` stops at the current chunk and returns the draws completed so
    far, with a `SamplingWarning`. At the end, a `SamplingWarning` lists divergences,
    R-hat > 1.01 and bulk/tail ESS < 400 (computed by ArviZ).

    **Raises:**

    - `ValueError` for an unknown `chain_method`; counts that are not integers or not
      positive (`num_warmup` may be 0); `max_tree_depth < 1`; `target_acceptance_rate`
      outside (0, 1); a negative `init_jitter`; `num_chains` not divisible by the
      device count with `"parallel"`; `initial_positions` of the wrong structure or
      shape (naming the leaf); or a start whose log density or gradient is not finite
      (naming the chain and the leaves). All before the first step.
    - `TypeError` if `logdensity` does not satisfy the `LogDensity` protocol.
    """
    model = as_model(logdensity)
    if dense_mass is not None:
        warnings.warn(
            "dense_mass is deprecated: use metric='dense' (or 'diag').",
            DeprecationWarning,
            stacklevel=2,
        )
        if dense_mass and metric not in ("diag", "dense"):
            raise ValueError(f"dense_mass=True contradicts metric={metric!r}; give metric only.")
        metric = "dense" if dense_mass else metric
    settings = Settings.checked(
        dim=int(ravel_pytree(model.initial_position)[0].size),
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_samples=num_samples,
        chain_method=chain_method,
        metric=metric,
        max_rank=max_rank,
        target_acceptance_rate=target_acceptance_rate,
        max_tree_depth=max_tree_depth,
        init_jitter=init_jitter,
        max_init_tries=max_init_tries,
        chunk_size=chunk_size,
        progress_bar=progress_bar,
        save_warmup=save_warmup,
    )
    state = start_chains(model, settings, rng_key, initial_positions)
    warmup = Draws(settings.num_warmup, keep_draws=settings.save_warmup)
    sampling = Draws(settings.num_samples)
    progress = Progress(
        settings.num_warmup, settings.num_samples, settings.num_chains, enabled=progress_bar
    )
    timings = {"warmup_time": 0.0, "sampling_time": 0.0}
    adapted: SamplerState | None = None
    interrupted = ""
    try:
        for phase, draws in (("warmup", warmup), ("sampling", sampling)):
            began = time.perf_counter()
            state = run_phase(model, settings, state, phase, draws, progress)
            if phase == "warmup":
                final = jax.vmap(adaptation(settings.config).final)(state.adaptation)
                adapted = state = state._replace(adaptation=final)
            timings[f"{phase}_time"] = time.perf_counter() - began
    except KeyboardInterrupt:
        interrupted = "sampling" if adapted is not None else "warmup"
        warnings.warn(
            f"Interrupted during {interrupted}: returning the {sampling.num_draws} draws "
            f"per chain completed so far (and {warmup.num_draws} warmup steps).",
            SamplingWarning,
            stacklevel=2,
        )
    finally:
        progress.close()
    idata = to_inference_data(
        model,
        posterior=sampling.joined(),
        warmup=warmup.joined() if settings.save_warmup else None,
        adaptation=None if adapted is None else _adapted(settings, adapted),
        num_chains=settings.num_chains,
        attrs={"chain_method": chain_method, "metric": metric, "num_warmup": num_warmup, **timings}
        | {"interrupted": interrupted},
    )
    problems = [] if interrupted else diagnose(idata)
    if problems:
        message = "Sampling diagnostics: " + "; ".join(problems) + "."
        warnings.warn(message, SamplingWarning, stacklevel=2)
    return idata


def _adapted(settings: Settings, state: SamplerState) -> dict[str, Any]:
    """The adapted parameters of every chain, as host arrays: `step_size` and
    `inverse_mass_matrix`, or the low-rank metric's `sigma`, `U` and `lam`."""
    step_size, imm = jax.vmap(adaptation(settings.config).parameters)(state.adaptation)
    if isinstance(imm, tuple):  # blackjax.mcmc.metrics.LowRankInverseMassMatrix
        return {"step_size": np.asarray(step_size)} | {
            k: np.asarray(v) for k, v in imm._asdict().items()
        }
    return {"step_size": np.asarray(step_size), "inverse_mass_matrix": np.asarray(imm)}
