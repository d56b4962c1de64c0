"""End to end: `logdensity.sample` against NumPyro's `MCMC(NUTS)` and a hand-rolled
BlackJAX loop, on the same NumPyro models and the same data.

Every sampler gets the same NumPyro model: NumPyro's MCMC runs the model function,
`logdensity.sample` and the BlackJAX loop run `logdensity.zoo.build(model, "numpyro")`
(NumPyro's own potential, through our adapter), so what differs is the loop. Each run
starts from cold caches (`jax.clear_caches()`), so wall time includes tracing and
compilation; runs are interleaved across samplers, repeat by repeat.

- `wall_s`: one run of `num_chains` x (`num_warmup` + `num_samples`), end to end (for
  `logdensity.sample` including the model build and its ArviZ diagnostics);
- `diagnostics_s`: for `logdensity.sample`, the time of its diagnostics (rank R-hat,
  bulk and tail ESS over every scalar, `logdensity.diagnose`) timed again after the run:
  the share of `wall_s` that NumPyro's MCMC, which computes none, does not spend;
- `min_ess_bulk`: the smallest bulk ESS (ArviZ, rank-normalised) over every scalar of
  every latent variable, in the constrained space;
- `ess_per_s`: `min_ess_bulk / wall_s`;
- `divergences`: post-warmup divergent transitions, all chains;
- `first_draw_s`: time to first draw, a cold run with 1 warmup step and 1 draw
  (tracing, compilation, initialisation, one transition);
- `lockstep`: for vectorized runs, sum over draws of the longest trajectory among the
  chains / sum of the mean trajectory (leapfrog steps): the work a vmapped NUTS does
  per useful step (1 = no waiting).
"""

from __future__ import annotations

import functools
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import arviz as az
import blackjax
import jax
import numpy as np
from jax.flatten_util import ravel_pytree

import logdensity as ld
from logdensity import zoo

from ._common import ENDTOEND_SAMPLERS, data, fmt, machine, split_models, summary


def numpyro_model(model: str, d: dict[str, Any]) -> tuple[Callable, tuple]:
    """The zoo's NumPyro model function and its arguments."""
    from logdensity.zoo import _numpyro as zn

    d = zoo.data(model) | d
    if model == "rat_tumors":
        return zn.rat_tumors_model, (d["y"].astype(int), d["n"].astype(int))
    if model == "gp":
        return zn.gp_model, (d["x"], d["y"])
    fn = getattr(zn, f"{model}_model")
    args = {
        "eight_schools_noncentered": ("y", "sigma"),
        "logistic_regression": ("x", "y"),
        "hierarchical": ("y",),
    }[model]
    return fn, tuple(np.asarray(d[a]) for a in args)


def latent_names(model: Any) -> list[str]:
    return [k for k, v in model.variables.items() if not v.deterministic]


def min_ess(draws: dict[str, np.ndarray]) -> float:
    """The smallest bulk ESS over every scalar of `draws` (`(chain, draw, ...)` arrays)."""
    ess = az.ess(az.convert_to_dataset({k: np.asarray(v) for k, v in draws.items()}))
    return float(min(np.min(ess[k].values) for k in ess.data_vars))


def lockstep(n_steps: np.ndarray) -> float:
    """`(chain, draw)` leapfrog steps -> work of chains in lockstep per useful step."""
    n_steps = np.asarray(n_steps, float)
    return float(n_steps.max(axis=0).sum() / n_steps.mean(axis=0).sum())


def run_logdensity(
    chain_method: str,
    model: str,
    d: dict[str, Any],
    key: Any,
    warmup: int,
    draws: int,
    chains: int,
    metric: str = "diag",
) -> dict[str, Any]:
    start = time.perf_counter()
    m = zoo.build(model, "numpyro", **d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = ld.sample(
            m,
            key,
            num_chains=chains,
            num_warmup=warmup,
            num_samples=draws,
            chain_method=chain_method,  # type: ignore[arg-type]
            metric=metric,  # type: ignore[arg-type]
            progress_bar=False,
        )
    wall = time.perf_counter() - start
    start = time.perf_counter()
    ld.diagnose(idata)  # the R-hat/ESS share of `wall`, timed again on its own
    diagnostics = time.perf_counter() - start
    post = {k: idata.posterior[k].values for k in latent_names(m)}
    stats = idata.sample_stats
    return {
        "wall_s": wall,
        "diagnostics_s": diagnostics,
        "draws": post,
        "divergences": int(stats.diverging.values.sum()),
        "lockstep": lockstep(stats.n_steps.values),
    }


def run_numpyro(
    chain_method: str, model: str, d: dict[str, Any], key: Any, warmup: int, draws: int, chains: int
) -> dict[str, Any]:
    from numpyro.infer import MCMC, NUTS

    fn, args = numpyro_model(model, d)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mcmc = MCMC(
            NUTS(fn),
            num_warmup=warmup,
            num_samples=draws,
            num_chains=chains,
            chain_method=chain_method,
            progress_bar=False,
        )
        mcmc.run(key, *args, extra_fields=("diverging", "num_steps"))
        samples = jax.device_get(mcmc.get_samples(group_by_chain=True))
    wall = time.perf_counter() - start
    extra = mcmc.get_extra_fields(group_by_chain=True)
    m = zoo.build(model, "numpyro", **d)
    return {
        "wall_s": wall,
        "draws": {k: samples[k] for k in latent_names(m)},
        "divergences": int(np.sum(extra["diverging"])),
        "lockstep": lockstep(extra["num_steps"]),
    }


def run_blackjax(
    chain_method: str, model: str, d: dict[str, Any], key: Any, warmup: int, draws: int, chains: int
) -> dict[str, Any]:
    """The loop a BlackJAX user writes from its docs: `window_adaptation(...).run`
    vmapped over chains, then a `lax.scan` of vmapped `nuts.step`, all draws kept on
    device, constrained at the end."""
    del chain_method
    start = time.perf_counter()
    m = zoo.build(model, "numpyro", **d)
    flat, unravel = ravel_pytree(m.initial_position)
    init_key, key = jax.random.split(key)
    jitter = jax.random.uniform(init_key, (chains, flat.size), flat.dtype, -2.0, 2.0)
    positions = jax.vmap(unravel)(flat + jitter)
    values, div, n_steps = jax.device_get(
        blackjax_loop(m, positions, key, warmup=warmup, draws=draws)
    )
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "draws": {k: np.swapaxes(values[k], 0, 1) for k in latent_names(m)},
        "divergences": int(div.sum()),
        "lockstep": lockstep(np.swapaxes(n_steps, 0, 1)),
    }


@jax.jit(static_argnames=("warmup", "draws"))
def blackjax_loop(m: Any, positions: Any, key: Any, *, warmup: int, draws: int) -> Any:
    """BlackJAX's multi-chain recipe: `(draw, chain, ...)` constrained values,
    divergences and leapfrog steps."""
    chains = jax.tree.leaves(positions)[0].shape[0]
    warmup_key, sample_key = jax.random.split(key)
    adaptation = blackjax.window_adaptation(blackjax.nuts, m)
    (states, params), _ = jax.vmap(lambda k, p: adaptation.run(k, p, num_steps=warmup))(
        jax.random.split(warmup_key, chains), positions
    )

    def one_step(states: Any, key: Any) -> Any:
        def step(k: Any, s: Any, p: Any) -> Any:
            return blackjax.nuts(m, **p).step(k, s)

        states, infos = jax.vmap(step)(jax.random.split(key, chains), states, params)
        return states, (states.position, infos.is_divergent, infos.num_integration_steps)

    _, (pos, div, n_steps) = jax.lax.scan(one_step, states, jax.random.split(sample_key, draws))
    return jax.vmap(jax.vmap(m.constrain))(pos), div, n_steps


SAMPLERS: dict[str, tuple[Callable[..., dict[str, Any]], str]] = {
    "logdensity threaded": (run_logdensity, "threaded"),  # the CPU default
    # nutpie's diagonal adaptation (`metric="fisher_diag"`)
    "logdensity threaded fisher_diag": (
        functools.partial(run_logdensity, metric="fisher_diag"),
        "threaded",
    ),
    "logdensity vectorized": (run_logdensity, "vectorized"),
    "logdensity sequential": (run_logdensity, "sequential"),
    "logdensity parallel": (run_logdensity, "parallel"),
    "numpyro vectorized": (run_numpyro, "vectorized"),
    "numpyro sequential": (run_numpyro, "sequential"),
    "blackjax hand-rolled": (run_blackjax, "vectorized"),
}
REFERENCE = "numpyro vectorized"
assert tuple(SAMPLERS) == ENDTOEND_SAMPLERS


# Full mode: issue #7's 4 x (1000 + 1000) for the two small models. The GP, the
# 10,000-parameter model and the 100,000-row regression take minutes per run on two
# cores, so they get 4 x (500 + 500), one repeat, and the samplers a user would choose
# between (not NumPyro's sequential chains); the ratios still compare equal runs.
_HEAVY = (500, 500, 1, ("numpyro sequential", "logdensity parallel"))
FULL = {
    "rat_tumors": (1000, 1000, 2, None),
    "eight_schools_noncentered": (1000, 1000, 2, None),
    "gp": _HEAVY,
    "hierarchical": _HEAVY,
    "logistic_regression": _HEAVY,
}
QUICK = {"eight_schools_noncentered": (200, 200, 2, None)}
QUICK_SAMPLERS = (
    "logdensity threaded",
    "logdensity vectorized",
    "numpyro vectorized",
    "blackjax hand-rolled",
)


def run(quick: bool, models: list[str] | None = None) -> dict[str, Any]:
    """`models` may also name samplers (`--models hierarchical "logdensity threaded"
    "numpyro vectorized"`): only those run (the reference, NumPyro's vectorized
    chains, always)."""
    plan = QUICK if quick else FULL
    names, chosen = split_models(models, tuple(SAMPLERS))
    models = names or list(plan)
    chains = 4
    all_samplers = dict(SAMPLERS)
    if chosen:
        all_samplers = {k: v for k, v in SAMPLERS.items() if k in chosen or k == REFERENCE}
    if jax.device_count() < 2 or chains % jax.device_count():
        all_samplers.pop("logdensity parallel", None)
    if quick:
        all_samplers = {k: v for k, v in all_samplers.items() if k in QUICK_SAMPLERS}
    rows = []
    # One untimed run per sampler first, so that the process's one-off costs (imports,
    # JAX's first compilations) do not land on whichever sampler happens to run first.
    datasets = data()
    first_model = models[0]
    for fn, method in all_samplers.values():
        fn(method, first_model, datasets[first_model], jax.random.key(99), 1, 1, chains)
    for model in models:
        warmup, draws, repeats, skip = plan.get(model, (1000, 1000, 2, None))
        samplers = {k: v for k, v in all_samplers.items() if k not in (skip or ())}
        d = datasets[model]
        print(f"end to end: {model}", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in samplers}
        first: dict[str, list[float]] = {s: [] for s in samplers}
        for r in range(repeats):
            for name, (fn, method) in samplers.items():  # interleaved
                jax.clear_caches()
                start = time.perf_counter()
                fn(method, model, d, jax.random.key(100 + r), 1, 1, chains)
                first[name].append(time.perf_counter() - start)
                jax.clear_caches()
                out = fn(method, model, d, jax.random.key(r), warmup, draws, chains)
                out["min_ess_bulk"] = min_ess(out.pop("draws"))
                out["ess_per_s"] = out["min_ess_bulk"] / out["wall_s"]
                runs[name].append(out)
                print(
                    f"  {name}: {out['wall_s']:.1f} s, min ESS {out['min_ess_bulk']:.0f}, "
                    f"{out['divergences']} divergences, first draw {first[name][-1]:.1f} s",
                    flush=True,
                )
        ref_ess_s = statistics.median(o["ess_per_s"] for o in runs[REFERENCE])
        ref_first = statistics.median(first[REFERENCE])
        for name, outs in runs.items():
            row: dict[str, Any] = {"model": model, "sampler": name}
            for key in ("wall_s", "min_ess_bulk", "ess_per_s", "divergences", "lockstep"):
                row[key] = summary([o[key] for o in outs])
            if "diagnostics_s" in outs[0]:
                row["diagnostics_s"] = summary([o["diagnostics_s"] for o in outs])
            row["first_draw_s"] = summary(first[name])
            row["ess_per_s"]["ratio_to_numpyro"] = row["ess_per_s"]["median"] / ref_ess_s
            row["first_draw_s"]["ratio_to_numpyro"] = row["first_draw_s"]["median"] / ref_first
            row["settings"] = {"num_warmup": warmup, "num_samples": draws, "repeats": repeats}
            rows.append(row)
    return {
        "mode": "quick" if quick else "full",
        "settings": {"num_chains": chains},
        "machine": machine(),
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"End to end ({result['mode']} mode; {result['settings']['num_chains']} chains; "
        "medians over interleaved cold-cache repeats; ratios to NumPyro's vectorized "
        "`MCMC(NUTS)` from the same run: ESS/s higher is better, first draw lower; in "
        "brackets after a `logdensity.sample` wall time, its share spent on R-hat and ESS "
        "over every scalar, which NumPyro's MCMC does not compute).",
        "",
        "| model (warmup + draws, repeats) | sampler | wall s | min bulk ESS | ESS/s (ratio) "
        "| divergences | first draw s (ratio) | lockstep |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        e, f = r["ess_per_s"], r["first_draw_s"]
        independent = "sequential" in r["sampler"] or "threaded" in r["sampler"]
        lock = "n/a" if independent else f"{r['lockstep']['median']:.2f}"
        st = r["settings"]
        label = f"{r['model']} ({st['num_warmup']} + {st['num_samples']}, {st['repeats']})"
        wall = f"{r['wall_s']['median']:.1f}"
        if "diagnostics_s" in r:
            wall += f" ({r['diagnostics_s']['median']:.1f})"
        lines.append(
            f"| {label} | {r['sampler']} | {wall} "
            f"| {r['min_ess_bulk']['median']:.0f} | {fmt(e['median'])} "
            f"({e['ratio_to_numpyro']:.2f}x) | {r['divergences']['median']:.0f} "
            f"| {f['median']:.2f} ({f['ratio_to_numpyro']:.2f}x) "
            f"| {lock} |"
        )
    return "\n".join(lines) + "\n"
