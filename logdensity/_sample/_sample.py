"""`sample`: settings, starts, one phase function run twice, InferenceData."""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from jaxtyping import PRNGKeyArray, PyTree

from .._cache import ensure_compilation_cache
from .._inference_data import (
    adaptation_group,
    diagnose,
    flat_labels,
    import_arviz_in_background,
    to_inference_data,
)
from .._model import as_model
from .._protocol import LogDensity
from .._sharding import (
    CHAIN,
    barrier,
    chain_mesh,
    data_mesh,
    is_main_process,
    quiet_elsewhere,
    to_host,
)
from ._adaptation import adaptation
from ._host import Draws, Progress, StoredDraws, run_phase
from ._programs import end_warmup, precompile_chunk, state_shapes
from ._settings import ChainMethod, Init, Metric, Settings, check_rng_key, default_chain_method
from ._starts import start_chains
from ._state import SamplerState, continued, sampler_state_group
from ._warnings import DrawsSavedError, SamplingWarning, save_draws

if TYPE_CHECKING:
    import arviz as az
    import xarray as xr

    from ._store import Store

__all__ = ["SamplingWarning", "resume", "sample"]


@quiet_elsewhere
def sample(
    logdensity: LogDensity,
    rng_key: PRNGKeyArray | None,
    *,
    num_chains: int = 4,
    num_warmup: int | None = None,
    num_samples: int = 1000,
    chain_method: ChainMethod | None = None,
    initial_positions: PyTree | None = None,
    init: Init = "jitter",
    progress_bar: bool = True,
    metric: Metric | None = None,
    max_rank: int | None = None,
    dense_mass: bool | None = None,
    target_acceptance_rate: float = 0.8,
    max_tree_depth: int = 10,
    init_jitter: float = 2.0,
    max_init_tries: int = 20,
    chunk_size: int | None = None,
    save_warmup: bool = False,
    initial_state: az.InferenceData | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> az.InferenceData:
    """Sample a `LogDensity` with NUTS after Stan's window adaptation, chain by chain.

    Every chain runs BlackJAX's window adaptation (Stan's schedule: a fast step-size
    window, doubling slow windows that estimate the inverse mass matrix, a final fast
    window; Hoffman & Gelman 2014, Stan Reference Manual §15.2) for `num_warmup`
    steps, then BlackJAX's NUTS (with Stan's extra U-turn checks across merged
    subtrees, stan-dev/stan#2800) with its own adapted step size and inverse mass matrix
    for `num_samples` draws. Steps run in compiled chunks of `chunk_size` (one
    `lax.scan` each); between chunks the draws move to host memory and the progress bar
    moves. Each compiled function is traced once per model structure and settings.

    Chain `c`'s randomness is `fold_in(split(rng_key)[c], step)`, so the same `rng_key`
    gives the same draws whatever the `chunk_size`, and the same starts and random
    streams whatever the `chain_method`. The methods' programs are compiled apart and
    round differently in the last bit; NUTS amplifies that over many steps (a warmup is
    enough, in float32), so across methods the draws agree exactly only over a short
    run from the same state, and otherwise in distribution.

    **Arguments:**

    - `logdensity`: any `LogDensity` (e.g. from `logdensity.from_jax`).
    - `rng_key`: a JAX PRNG key (`jax.random.key(0)` or `jax.random.PRNGKey(0)`). With
      `initial_state`, `None` continues each chain's own stream, so that a run of `n`
      draws continued by `m` draws makes the draws of one run of `n + m`; a key gives
      the chains fresh streams, `split(rng_key)[c]`.
    - `num_chains`, `num_warmup`, `num_samples`: chains, warmup steps per chain
      (default 1000; 0, the only value allowed, when continuing), draws kept per chain.
      A new run with `num_warmup=0` adapts nothing (step size 1.0, identity metric)
      and warns (`SamplingWarning`) before the first step.
    - `chain_method`: `"threaded"` (one chain's program, run for every chain in host
      threads, one per core at a time, as nutpie runs its chains: no lockstep, every
      core; on one device of one process, the draws of `"sequential"`),
      `"vectorized"` (`jax.vmap`: one program, chains in lockstep,
      each step waits for the longest trajectory), `"sequential"` (`lax.map`: one
      program, one chain after the other; no lockstep), or `"parallel"` (chains sharded
      across `jax.devices()`, every process's, with `jax.shard_map`, vectorized within
      a device; needs `num_chains` divisible by the device count). For a model whose
      data [`shard_data`][logdensity.shard_data] split over a mesh, `"parallel"` puts
      the chains on that mesh's `"chain"` axis (chains × data; `num_chains` divisible
      by its size), as the vectorized program split by jit's partitioner, so in
      lockstep: per-group `shard_map` loops deadlock XLA's CPU collectives when the
      groups' trajectories differ in length. Under `jax.distributed` every process
      runs `sample` and returns the same `InferenceData`; only process 0 shows the
      progress bar, warns and writes the checkpoint (on a path every process sees).
      Default (`None`): `"threaded"` on CPU for one process's run of at most 4 chains
      per core whose data are not split over a mesh, else `"vectorized"`; the method
      used is in `idata.attrs["chain_method"]`. `"threaded"` is refused (`ValueError`)
      for data split over a mesh and under `jax.distributed`.
    - `initial_positions`: unconstrained starting points with a leading `num_chains`
      axis on every leaf. Default: `initial_position + uniform(-init_jitter,
      init_jitter)` per coordinate (Stan's default is uniform(-2, 2)), redrawn up to
      `max_init_tries` times while the log density or its gradient is not finite.
    - `init`: where the chains start when `initial_positions` is not given, each from
      its own jittered start: `"jitter"` there (Stan's start); `"map"`, moved to the
      mode of the unconstrained density (Jacobians included) by L-BFGS (`optax.lbfgs`,
      as `find_map(jacobian=True)`); `"pathfinder"`, one draw from the chain's own
      single-path Pathfinder approximation (Zhang et al. 2022,
      `blackjax.vi.pathfinder`). A chain whose optimisation ends non-finite starts
      jittered, with a `SamplingWarning` naming it.
    - `progress_bar`: show a tqdm bar (phase, draws, divergences, step size).
    - `metric`: the inverse mass matrix the warmup adapts (every one a BlackJAX
      estimator): `"diag"`, Stan's diagonal of the draws' variances in doubling
      windows; `"dense"`, Stan's dense covariance; `"low_rank"`, nutpie's
      low-rank-modified Fisher metric (Seyboldt et al. 2026: a diagonal σ and the
      eigenvectors of `cov(x) # cov(∇ log p)⁻¹` whose eigenvalues lie outside [1/2, 2],
      on nutpie's growing windows, from the first gradient); `"fisher_diag"`,
      nutpie's default diagonal: the Fisher diagonal `sqrt(var(x) / var(∇ log p))`,
      from `1 / |∇ log p|` at the start and re-estimated after every warmup draw over
      nutpie's switching windows (no identity-metric start: the fastest warmup for a
      high-dimensional posterior of many scales). Default `"diag"`; when continuing,
      the earlier run's (another value is refused).
    - `max_rank`: for `"low_rank"`, the most eigenvectors kept (each leapfrog step
      costs O(dim · max_rank)); default every direction up to dim 64, 16 beyond.
    - `dense_mass`: deprecated; `dense_mass=True` is `metric="dense"`.
    - `target_acceptance_rate`: the dual-averaging target (Stan: 0.8), in (0, 1).
    - `max_tree_depth`: NUTS's maximum number of trajectory doublings (Stan: 10).
    - `chunk_size`: steps per compiled chunk (memory: `chunk_size` draws per chain on
      device, and on the host while they move); at most the longer phase's length.
      Default: 100, or fewer where a chunk of every chain's draws would exceed 8 MiB
      (26 for 4 chains of the 10,003-parameter hierarchical model in float64), so that the peak
      stays near the size of the returned draws. Threaded chains of a large model call
      the chunk with fewer real steps while their trees are deep (at most 64 MiB over the
      position's bytes of leapfrog steps a call: XLA's CPU runtime holds memory per
      leapfrog step of two programs run at once until they return); the draws are the
      same.
    - `save_warmup`: also return the warmup draws (`warmup_posterior`,
      `warmup_sample_stats`).
    - `initial_state`: an `InferenceData` returned by `sample` (or read back with
      `arviz.from_netcdf`/`from_zarr`): continue its chains from their last state with
      its adapted step sizes and metric, without warmup. The new draws come back on
      their own, numbered on from the earlier ones (`draw` continues), ready to join
      with `arviz.concat(idata, more, dim="draw")`. With the same `chain_method`,
      `max_tree_depth` and chunk length, the compiled chunk is reused.
    - `checkpoint`: a directory (it must not exist) to stream the run to: a zarr store
      in ArviZ's layout holding each chunk's draws and sample stats and the sampler
      state after it. The draws are not held in memory (one chunk at a time) and the
      returned `InferenceData` reads them from the store lazily. After a crash, a
      kill or Ctrl-C, `logdensity.resume(checkpoint, model)` finishes the run.

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
    - `sampler_state`: what continues the run (`initial_state=`): each chain's last
      unconstrained `position` and `logdensity_grad` `(chain, unconstrained)`,
      `logdensity`, its `step` count and `rng_key` data; absent if warmup was
      interrupted;
    - attrs: backend, library versions, `warmup_time` and `sampling_time` (seconds, wall
      clock, compilation included), `interrupted` (`""`, or the phase a Ctrl-C stopped:
      `"warmup"`, `"sampling"` or `"diagnostics"`).

    A chain whose warmup collapses (its step size under 1/1000 of the chains' lower
    median, or under 1e-10, at a chunk end in the first half of warmup) is restarted
    from a healthy chain's state, or a fresh start when none is healthy, with a
    `SamplingWarning` naming it.

    A `KeyboardInterrupt` stops at the current chunk and returns the draws completed so
    far, with a `SamplingWarning` (one during the closing diagnostics returns every
    draw, undiagnosed). At the end, one `SamplingWarning` lists what
    `logdensity.diagnose` finds: divergences, stuck chains, R-hat > 1.01 and bulk/tail
    ESS under 100 per chain (computed by ArviZ), naming the worst variables.

    **Raises:**

    - `ValueError` for an unknown `chain_method`; an `initial_state` that cannot be
      continued (no `sampler_state`, another `metric`, `num_warmup > 0`); counts
      that are not integers or not positive (`num_warmup` may be 0);
      `max_tree_depth < 1`; `target_acceptance_rate` outside (0, 1); a negative
      `init_jitter`; `num_chains` not divisible by the device count with
      `"parallel"`; `initial_positions` of the wrong structure or shape (naming the
      leaf); or a start whose log density or gradient is not finite (naming the chain
      and the leaves). All before the first step.
    - `FileExistsError` if `checkpoint` exists.
    - `logdensity.DrawsSavedError` if building the `InferenceData` fails after
      sampling: the raw draws are in its `.draws` and saved to the `.npz` file its
      `.path` (and message) names. A Ctrl-C there saves them too (the warning names the
      file) and re-raises. A failure in the closing diagnostics is a `SamplingWarning`,
      and every draw is returned.
    - `TypeError` if `logdensity` does not satisfy the `LogDensity` protocol, or
      `rng_key` is not one JAX PRNG key (an integer seed, say).

    The compiled programs are kept in JAX's persistent compilation cache (by default
    `~/.cache/logdensity/jax`, at most 2 GiB; `LOGDENSITY_COMPILATION_CACHE=off` turns
    it off, `=<dir>` moves it; a cache dir set in JAX's config is kept): a new process
    sampling a model of the same structure loads them instead of compiling.
    """
    ensure_compilation_cache()
    model = as_model(logdensity)
    if dense_mass is not None:
        warnings.warn(
            "dense_mass is deprecated: use metric='dense' (or 'diag').",
            DeprecationWarning,
            stacklevel=3,
        )
        if dense_mass and metric not in (None, "diag", "dense"):
            raise ValueError(f"dense_mass=True contradicts metric={metric!r}; give metric only.")
        metric = "dense" if dense_mass else metric
    sharded = data_mesh(model) is not None
    if chain_method is None:
        chains = num_chains
        if initial_state is not None and "sampler_state" in initial_state.groups():
            chains = initial_state["sampler_state"].sizes["chain"]
        chain_method = default_chain_method(chains, sharded)
    if chain_method == "threaded" and (sharded or jax.process_count() > 1):
        where = "over a device mesh" if sharded else "over several processes"
        raise ValueError(
            "chain_method='threaded' runs each chain's own program on this process's "
            f"default device, and this run is spread {where}: use chain_method='parallel' "
            "(chains over the devices) or 'vectorized'."
        )
    dim = sum(int(np.size(x)) for x in jax.tree.leaves(model.initial_position))
    checked: dict[str, Any] = dict(
        dim=dim,
        chain_devices=chain_mesh(model).shape[CHAIN] if chain_method == "parallel" else None,
        draw_bytes=_draw_bytes(model),
        num_samples=num_samples,
        chain_method=chain_method,
        max_rank=max_rank,
        target_acceptance_rate=target_acceptance_rate,
        max_tree_depth=max_tree_depth,
        init_jitter=init_jitter,
        max_init_tries=max_init_tries,
        chunk_size=chunk_size,
        progress_bar=progress_bar,
        save_warmup=save_warmup,
        init=init,
    )
    if initial_state is None:
        if rng_key is None:
            raise ValueError("rng_key is needed to start a run (None only with initial_state).")
        check_rng_key(rng_key)
        settings = Settings.checked(
            num_chains=num_chains,
            num_warmup=1000 if num_warmup is None else num_warmup,
            metric="diag" if metric is None else metric,
            **checked,
        )
        if settings.num_warmup == 0:
            warnings.warn(
                "num_warmup=0: nothing is adapted, so NUTS samples at the initial step size "
                "(1.0) and the identity metric; unless the posterior is close to a standard "
                "normal on the unconstrained space, expect divergences and stuck chains. "
                "To continue an adapted run, pass initial_state= instead.",
                SamplingWarning,
                stacklevel=3,
            )

        def meanwhile(types: SamplerState) -> None:
            # the chunk compiles in a worker thread while the start compiles and runs
            precompile_chunk(model, settings.config, types, settings.chunk_size)
            # ArviZ (for the InferenceData) imports while XLA compiles the two
            import_arviz_in_background()

        # the warmup's schedule now, before the start's and the chunk's compilation
        # (BlackJAX builds it on the device: `host_schedule`)
        adaptation(settings.config).schedule(settings.num_warmup)
        state = start_chains(model, settings, rng_key, initial_positions, then=meanwhile)
        first_draw, earlier = 0, None
    else:
        if rng_key is not None:
            check_rng_key(rng_key)
        settings, state, first_draw = _continuation(
            model, rng_key, initial_state, num_warmup, metric, initial_positions, checked
        )
        earlier = initial_state
    run = {
        "chain_method": settings.config.chain_method,
        "metric": settings.config.metric,
        "num_warmup": settings.num_warmup,
        "first_draw": first_draw,
    }
    # a continued run is past its warmup: it starts sampling at its adapted parameters
    phase = "warmup" if initial_state is None else "sampling"
    if checkpoint is None:
        return _run(model, settings, state, run, store=None, resumed=(phase, 0), earlier=earlier)
    from ._store import Store  # zarr is imported when a run is stored, not before

    store = Store.create(checkpoint, model, settings, run)
    if initial_state is not None:
        store.put("adaptation", initial_state["adaptation"])
    store.save(state, phase, 0, {}, {})
    return _run(model, settings, state, run, store=store, resumed=(phase, 0))


@quiet_elsewhere
def resume(
    path: str | os.PathLike, logdensity: LogDensity, *, progress_bar: bool = True
) -> az.InferenceData:
    """Continue a checkpointed run (`sample(..., checkpoint=path)`) at its last
    completed chunk, after a crash, `kill -9`, pre-emption or Ctrl-C, and return the
    whole run.

    The draws are those the uninterrupted run makes with the same `rng_key` (each
    chain steps with `fold_in(its key, step index)`, and the state is restored exactly);
    the settings are the stored ones. Draws past the last commit (a chunk torn by the
    kill) are cut off and drawn again. A finished run is returned as it is.

    **Arguments:**

    - `path`: the checkpoint directory given to `sample`.
    - `logdensity`: the model the run was sampling, rebuilt in this process (with the
      same structure: position leaves, their shapes and dtypes, variables).
    - `progress_bar`: show the progress bar for the remaining steps.

    **Returns:** the whole run's `arviz.InferenceData`, as `sample` returns it, backed
    lazily by the store (values are read from disk when used).

    **Raises:** `FileNotFoundError` if `path` holds no checkpoint; `ValueError` if the
    model's structure differs from the store's, listing the differences.
    """
    from ._store import Store

    ensure_compilation_cache()
    model = as_model(logdensity)
    store = Store.open(path)
    store.check(model)
    settings = store.settings(progress_bar=progress_bar)
    commit, run = store.commit, store.run
    if commit["phase"] == "done":
        idata = store.inference_data(_attrs(run, commit["timings"], ""))
        _warn_on_diagnostics(idata)
        return idata
    template = state_shapes(model, settings.config, settings.num_chains, None)
    state = store.load_state(template)
    store.truncate()
    barrier("logdensity: checkpoint read")  # before process 0 writes to it again
    return _run(
        model, settings, state, run, store=store, resumed=(commit["phase"], commit["steps"])
    )


def _continuation(
    model: LogDensity,
    rng_key: PRNGKeyArray | None,
    initial_state: az.InferenceData,
    num_warmup: int | None,
    metric: str | None,
    initial_positions: PyTree | None,
    checked: dict[str, Any],
) -> tuple[Settings, SamplerState, int]:
    """The settings and state that continue `initial_state`'s run, and its next draw's
    index. **Raises:** `ValueError` for what cannot continue it."""
    groups = initial_state.groups()
    if "sampler_state" not in groups or "adaptation" not in groups:
        raise ValueError(
            "initial_state has no sampler_state and adaptation groups: it is not a "
            "logdensity.sample result, or its warmup was interrupted (resume a "
            "checkpointed run with logdensity.resume instead)."
        )
    if num_warmup not in (None, 0):
        raise ValueError(f"a continued run does not warm up again; got num_warmup={num_warmup}.")
    if initial_positions is not None:
        raise ValueError("give initial_positions or initial_state, not both.")
    group = initial_state["sampler_state"]
    stored = dict(group.attrs)
    if metric not in (None, stored["metric"]):
        raise ValueError(
            f"initial_state was adapted with metric={stored['metric']!r}; got metric={metric!r}."
        )
    settings = Settings.checked(
        num_chains=group.sizes["chain"], num_warmup=0, metric=stored["metric"], **checked
    )
    config = dataclasses.replace(
        settings.config,
        **{k: type(getattr(settings.config, k))(stored[k]) for k in _ADAPTED},
    )
    settings = dataclasses.replace(settings, config=config)
    template = state_shapes(model, config, settings.num_chains, None)
    state = continued(model, template, group, initial_state["adaptation"])
    if rng_key is not None:  # fresh randomness, from the given key
        state = state._replace(rng_key=jax.random.split(rng_key, settings.num_chains))
    return settings, state, int(stored["num_draws"])


# the settings an adapted state's structure depends on: a continued run keeps them
_ADAPTED = ("metric", "max_rank", "buffer_size", "recompute_every", "target_acceptance_rate")


def _attrs(run: dict[str, Any], timings: dict[str, float], interrupted: str) -> dict[str, Any]:
    keep = ("chain_method", "metric", "num_warmup")
    return {k: run[k] for k in keep} | dict(timings) | {"interrupted": interrupted}


def _run(
    model: LogDensity,
    settings: Settings,
    state: SamplerState,
    run: dict[str, Any],
    *,
    store: Store | None,
    resumed: tuple[str, int] = ("warmup", 0),
    earlier: az.InferenceData | None = None,
) -> az.InferenceData:
    """Warmup then sampling from `state` (from `resumed`, a stored phase and its
    completed steps), the draws to host memory or to `store`; the InferenceData, its
    draws joined after those of `earlier` (the run continued in memory)."""
    config = settings.config
    first_phase, done = resumed
    first_draw = int(run["first_draw"])
    timings = {"warmup_time": 0.0, "sampling_time": 0.0}
    if store is not None:
        timings |= store.commit["timings"]
    warmup, sampling = _phases(model, settings, store, resumed, first_draw, timings, state)
    initial = done if first_phase == "warmup" else settings.num_warmup + done
    progress = Progress(
        settings.num_warmup,
        settings.num_samples,
        settings.num_chains,
        enabled=settings.progress_bar and is_main_process(),
        initial=initial,
    )
    adapted: SamplerState | None = state if first_phase == "sampling" else None
    phases = [("warmup", warmup), ("sampling", sampling)]
    interrupted = ""
    try:
        for phase, draws in phases[1:] if first_phase == "sampling" else phases:
            began = time.perf_counter()
            state = run_phase(
                model, settings, state, phase, draws, progress, done if phase == first_phase else 0
            )
            if phase == "warmup":
                final = end_warmup(config, state.adaptation)
                adapted = sampling.state = state = state._replace(adaptation=final)
                if store is not None:
                    store.put("adaptation", _adaptation(model, settings, adapted))
                    store.save(state, "sampling", 0, warmup.counts, timings)  # type: ignore[attr-defined]
            timings[f"{phase}_time"] += time.perf_counter() - began
    except KeyboardInterrupt:
        interrupted = "sampling" if adapted is not None else "warmup"
        warnings.warn(
            f"Interrupted during {interrupted}: returning the {sampling.num_draws} draws "
            f"per chain completed so far (and {warmup.num_draws} warmup steps)"
            + ("" if store is None else f"; resume with logdensity.resume({str(store.path)!r})")
            + ".",
            SamplingWarning,
            stacklevel=4,
        )
    finally:
        progress.close()
    attrs = _attrs(run, timings, interrupted)
    extra = {}
    if adapted is not None:
        labels = flat_labels(model)
        keep = {k: getattr(config, k) for k in _ADAPTED}
        num_draws = first_draw + sampling.num_draws
        extra["sampler_state"] = sampler_state_group(
            model, sampling.state, labels, keep | {"num_draws": num_draws}
        )
    if store is not None:
        for name, ds in extra.items():
            store.put(name, ds)
        store.finish(timings, interrupted)
        idata = store.inference_data(attrs)
    else:
        posterior = sampling.joined()
        warmup_draws = warmup.joined() if settings.save_warmup else None
        try:
            idata = to_inference_data(
                model,
                posterior=posterior,
                warmup=warmup_draws,
                adaptation=None if adapted is None else _adapted(settings, adapted),
                num_chains=settings.num_chains,
                attrs=attrs,
                first_draw=first_draw,
                extra=extra,
            )
            if earlier is not None:
                import xarray as xr

                for group in ("posterior", "sample_stats"):
                    joined = xr.concat([earlier[group], idata[group]], dim="draw")
                    idata[group] = joined.assign_attrs(idata[group].attrs)
        except BaseException as e:
            raw = {"posterior": posterior[0], "sample_stats": posterior[1]}
            if warmup_draws is not None:
                raw |= {"warmup_posterior": warmup_draws[0], "warmup_sample_stats": warmup_draws[1]}
            path = save_draws(raw)
            if isinstance(e, KeyboardInterrupt):
                warnings.warn(
                    f"Interrupted while the InferenceData was built: the raw draws are "
                    f"saved in {path} (np.load, keys 'posterior/<name>').",
                    SamplingWarning,
                    stacklevel=4,
                )
                raise
            raise DrawsSavedError(
                f"building the InferenceData failed ({type(e).__name__}: {e}); the "
                f"{sampling.num_draws} draws per chain are in this error's .draws and "
                f"saved in {path} (np.load, keys 'posterior/<name>').",
                raw,
                path,
            ) from e
    if not interrupted:
        _warn_on_diagnostics(idata)
    return idata


def _phases(
    model: LogDensity,
    settings: Settings,
    store: Store | None,
    resumed: tuple[str, int],
    first_draw: int,
    timings: dict[str, float],
    state: SamplerState,
) -> tuple[Draws, Draws]:
    """The two phases' draws: host buffers, or streams to `store`."""
    if store is None:
        return (
            Draws(settings.num_warmup, keep_draws=settings.save_warmup, state=state),
            Draws(settings.num_samples, state=state),
        )
    counts = dict(store.commit["draws"])
    first_phase, done = resumed

    def chunk_groups(draws: dict, stats: dict) -> tuple[xr.Dataset, xr.Dataset]:
        idata = to_inference_data(
            model,
            posterior=(draws, stats),
            warmup=None,
            adaptation=None,
            num_chains=settings.num_chains,
            attrs={},
        )
        return idata["posterior"], idata["sample_stats"]

    common: dict[str, Any] = dict(
        counts=counts, chunk_groups=chunk_groups, timings=timings, state=state
    )
    warmup = StoredDraws(
        store,
        ("warmup_posterior", "warmup_sample_stats") if settings.save_warmup else None,
        settings.num_warmup,
        done=done if first_phase == "warmup" else settings.num_warmup,
        first_draw=0,
        phase="warmup",
        **common,
    )
    sampling = StoredDraws(
        store,
        ("posterior", "sample_stats"),
        settings.num_samples,
        done=done if first_phase == "sampling" else 0,
        first_draw=first_draw,
        phase="sampling",
        **common,
    )
    return warmup, sampling


def _warn_on_diagnostics(idata: az.InferenceData) -> None:
    """One `SamplingWarning` listing `diagnose`'s problems, if any. A Ctrl-C while
    ArviZ computes R-hat and ESS (minutes on a large run) keeps every draw: the run is
    returned undiagnosed, `attrs["interrupted"] == "diagnostics"`."""
    try:
        problems = diagnose(idata)
    except KeyboardInterrupt:
        idata.attrs["interrupted"] = "diagnostics"
        message = "Interrupted during diagnostics: returning every draw, undiagnosed."
        warnings.warn(message, SamplingWarning, stacklevel=5)
        return
    except Exception as e:  # never lose the draws to a diagnostic
        message = (
            f"The closing diagnostics failed ({type(e).__name__}: {e}); returning every "
            "draw, undiagnosed."
        )
        warnings.warn(message, SamplingWarning, stacklevel=5)
        return
    if problems:
        message = "Sampling diagnostics: " + "; ".join(problems) + "."
        warnings.warn(message, SamplingWarning, stacklevel=5)


def _adaptation(model: LogDensity, settings: Settings, state: SamplerState) -> xr.Dataset:
    return adaptation_group(model, _adapted(settings, state), settings.num_chains)


def _draw_bytes(model: LogDensity) -> int:
    """Bytes of one chain's draw: its constrained values and its sample stats."""
    values = jax.eval_shape(model.constrain, model.initial_position)
    value_bytes = sum(v.size * np.dtype(v.dtype).itemsize for v in jax.tree.leaves(values))
    return int(value_bytes) + 8 * 7


def _adapted(settings: Settings, state: SamplerState) -> dict[str, Any]:
    """The adapted parameters of every chain, as host arrays: `step_size` and
    `inverse_mass_matrix`, or the low-rank metric's `sigma`, `U` and `lam`."""
    step_size, imm = to_host(jax.vmap(adaptation(settings.config).parameters)(state.adaptation))
    if isinstance(imm, tuple):  # blackjax.mcmc.metrics.LowRankInverseMassMatrix
        return {"step_size": np.asarray(step_size)} | {
            k: np.asarray(v)
            for k, v in imm._asdict().items()  # type: ignore[attr-defined]
        }
    return {"step_size": np.asarray(step_size), "inverse_mass_matrix": np.asarray(imm)}
