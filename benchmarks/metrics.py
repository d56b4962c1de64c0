"""Which metric should be the default: every metric of `logdensity.sample` on every zoo
model (plain JAX) and every posteriordb fixture, 4 chains x (1000 + 1000), float64,
the same seeds, metrics interleaved model by model.

Reported per run: leapfrog steps per draw, min bulk and tail ESS over every scalar of
the posterior, ESS per 1000 gradients (sampling phase), wall time (compilation
included: the same programs compile for every metric but the adaptation) and
divergences.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

from ._common import fmt, machine

METRICS = ("diag", "fisher_diag", "low_rank")
ZOO = ("rat_tumors", "eight_schools_noncentered", "linear_regression", "logistic_regression",
       "gp", "hierarchical")  # fmt: skip
# the hierarchical model's (10,003 parameters) low-rank warmup recomputes SVDs of
# 470 x 10,003 buffers at every window's end (10 minutes on 2 cores; `nutpie` measures it)
SKIP = {("hierarchical", "low_rank")}
POSTERIORDB = ("arK-arK", "garch-garch11", "gp_pois_regr-gp_pois_regr", "kidiq-kidscore_momiq",
               "low_dim_gauss_mix-low_dim_gauss_mix", "sblrc-blr", "diamonds-diamonds")  # fmt: skip
# Stan's adapt_delta where the posteriordb tests raise it
TARGET = {"gp_pois_regr-gp_pois_regr": 0.99, "eight_schools_noncentered": 0.95}


def _models(names: list[str] | None) -> dict[str, Any]:
    from logdensity import zoo

    sys.path.insert(0, str(Path(__file__).parent.parent))
    from tests.posteriordb_models import POSTERIORS, load

    out: dict[str, Any] = {}
    for name in ZOO:
        if not names or name in names:
            out[name] = lambda name=name: zoo.build(name, "jax")
    for name in POSTERIORDB:
        if not names or name in names or name.split("-")[0] in names:
            out[name] = lambda name=name: POSTERIORS[name]["jax"](load(name)[0])
    return out


def _run(build: Any, name: str, metric: str, draws: int) -> dict[str, float]:
    import arviz as az
    import jax

    import logdensity as ld

    model = build()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = ld.sample(
            model,
            jax.random.key(0),
            num_warmup=draws,
            num_samples=draws,
            metric=metric,
            target_acceptance_rate=TARGET.get(name, 0.8),
            progress_bar=False,
        )
    wall = time.perf_counter() - start
    bulk = az.ess(idata.posterior, method="bulk")
    tail = az.ess(idata.posterior, method="tail")
    ess = min(float(bulk[v].min()) for v in bulk.data_vars)
    gradients = float(idata.sample_stats["n_steps"].sum())
    return {
        "wall": wall,
        "steps_per_draw": gradients / (4 * draws),
        "min_ess_bulk": ess,
        "min_ess_tail": min(float(tail[v].min()) for v in tail.data_vars),
        "ess_per_1000_gradients": 1000 * ess / gradients,
        "ess_per_s": ess / wall,
        "divergences": float(idata.sample_stats["diverging"].sum()),
    }


def run(quick: bool, models: list[str] | None = None) -> dict[str, Any]:
    draws = 500 if quick else 1000
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for name, build in _models(models).items():
        rows[name] = {}
        for metric in METRICS:
            if (name, metric) in SKIP:
                continue
            rows[name][metric] = _run(build, name, metric, draws)
            print(name, metric, rows[name][metric], flush=True)
    return {"machine": machine(), "quick": quick, "draws": draws, "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    n = result["draws"]
    lines = [
        f"# Metrics: 4 chains x ({n} + {n}), float64, plain-JAX models, seed 0",
        "",
        "| model | metric | steps/draw | min bulk ESS | min tail ESS | ESS per 1000 grads "
        "| wall s | ESS/s | div | ESS/grad vs diag | ESS/s vs diag |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, metrics in result["rows"].items():
        ref = metrics["diag"]
        for metric, m in metrics.items():
            lines.append(
                f"| {name} | {metric} | {fmt(m['steps_per_draw'])} | {m['min_ess_bulk']:.0f} | "
                f"{m['min_ess_tail']:.0f} | {fmt(m['ess_per_1000_gradients'])} | "
                f"{fmt(m['wall'])} | {fmt(m['ess_per_s'])} | {m['divergences']:.0f} | "
                f"{m['ess_per_1000_gradients'] / ref['ess_per_1000_gradients']:.2f}x | "
                f"{m['ess_per_s'] / ref['ess_per_s']:.2f}x |"
            )
    return "\n".join(lines) + "\n"
