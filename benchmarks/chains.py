"""Chain methods on CPU: `"threaded"` (the default there) against `"vectorized"`, on
every zoo model and posteriordb's diamonds, with the diagonal and the low-rank metric.

Each (model, metric, method) runs in a fresh process (`python -m benchmarks.chains
...`), JAX's persistent compilation cache off, so that the first `sample` call pays
tracing and XLA compilation as a user's first run does; the same process then samples
again with another key (`warm`: the programs compiled, what a second run in a notebook
pays). 4 chains x (1000 warmup + 1000 draws), float64, plain-JAX models (the zoo's
`"jax"` backend; diamonds from `tests/posteriordb_models.py`). Reported per run: wall
seconds of the call, min bulk ESS (`arviz.ess`, every scalar), ESS/s, and the leapfrog
steps that the chains' programs executed per draw: for vectorized chains each step is
as long as the longest trajectory among them (`lockstep`), for threaded ones each
chain's own. The methods alternate within a model, and the ratios are threaded /
vectorized from one run. The machine has 2 cores: threaded chains run 2 at a time.
The hierarchical model (10,003 parameters) runs 4 x (500 + 500) with the diagonal
only (its low-rank warmup takes minutes; see `metrics`), and diamonds with the low-rank
metric only (with the diagonal, ~400 s a run).

    python -m benchmarks chains [--quick] [--models NAME ... | diag | low_rank]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from ._common import fmt, machine

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("vectorized", "threaded")
MODELS = ("eight_schools_noncentered", "rat_tumors", "linear_regression",
          "logistic_regression", "gp", "diamonds-diamonds", "hierarchical")  # fmt: skip
HEAVY = {"hierarchical": 500}  # draws (and warmup steps) per chain, diagonal metric only
# diamonds with the diagonal metric: ~400 s a run (997 steps per draw; the metrics suite
# has it), so the low-rank metric only
METRICS = {"hierarchical": ("diag",), "diamonds-diamonds": ("low_rank",)}


def _build(name: str) -> Any:
    from logdensity import zoo

    if name in zoo.MODELS:
        return zoo.build(name, "jax")
    sys.path.insert(0, str(ROOT))
    from tests.posteriordb_models import POSTERIORS, load

    return POSTERIORS[name]["jax"](load(name)[0])


def _child(name: str, metric: str, method: str, draws: int) -> dict[str, Any]:
    """Two runs in this fresh process (cold, then warm); prints their measures."""
    import arviz as az
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import logdensity as ld

    model = _build(name)
    out: dict[str, Any] = {}
    for run, seed in (("cold", 0), ("warm", 1)):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = ld.sample(
                model,
                jax.random.key(seed),
                num_warmup=draws,
                num_samples=draws,
                metric=metric,
                chain_method=method,
                progress_bar=False,
                save_warmup=True,
            )
        wall = time.perf_counter() - start
        bulk = az.ess(idata.posterior, method="bulk")
        ess = min(float(bulk[v].min()) for v in bulk.data_vars)
        steps = np.concatenate(
            [idata.warmup_sample_stats["n_steps"].values, idata.sample_stats["n_steps"].values],
            axis=1,
        )  # (chain, step)
        executed = steps.max(axis=0).sum() if method == "vectorized" else steps.sum(axis=1).max()
        out[run] = {
            "wall_s": wall,
            "min_ess_bulk": ess,
            "ess_per_s": ess / wall,
            # per chain: a vectorized program runs every chain the longest trajectory
            "executed_steps_per_draw": float(executed) / (2 * draws),
            "own_steps_per_draw": float(steps.sum(axis=1).mean()) / (2 * draws),
            "chain_method": idata.attrs["chain_method"],
        }
    return out


def _process(name: str, metric: str, method: str, draws: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.chains", name, metric, method, str(draws)]
    env = os.environ | {"XLA_FLAGS": "", "LOGDENSITY_COMPILATION_CACHE": "off"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"{method} on {name} ({metric}) failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def run(quick: bool, models: list[str] | None = None) -> dict[str, Any]:
    draws = 300 if quick else 1000
    metrics = {"diag", "low_rank"} & set(models or ())  # `--models low_rank`: those rows
    models = [m for m in models or () if m not in metrics]
    names = [m for m in MODELS if not models or m in models]
    if quick and not models:
        names = ["eight_schools_noncentered", "diamonds-diamonds"]
    rows = []
    for name in names:
        n = min(draws, HEAVY.get(name, draws))
        for metric in METRICS.get(name, ("diag", "low_rank")):
            if metrics and metric not in metrics:
                continue
            per = {method: _process(name, metric, method, n) for method in METHODS}
            rows.append({"model": name, "metric": metric, "draws": n, "runs": per})
            print(json.dumps(rows[-1]), flush=True)  # a stopped sweep keeps its rows
            t, v = per["threaded"], per["vectorized"]
            print(
                f"{name} {metric}: ESS/s threaded/vectorized cold "
                f"{t['cold']['ess_per_s'] / v['cold']['ess_per_s']:.2f}x, warm "
                f"{t['warm']['ess_per_s'] / v['warm']['ess_per_s']:.2f}x",
                flush=True,
            )
    return {"mode": "quick" if quick else "full", "machine": machine(), "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Chain methods ({result['mode']} mode; 4 chains, float64, one fresh process per "
        "model, metric and method, compilation cache off; `cold` is the process's first "
        "`sample` call, tracing and compilation included, `warm` its second; steps are "
        "leapfrog steps per draw, warmup included: those the chains' programs executed "
        "(vectorized: the longest trajectory's) and each chain's own).",
        "",
        "| model | metric | method | cold s | warm s | min bulk ESS (warm) | ESS/s cold "
        "| ESS/s warm | steps executed / own | ESS/s vs vectorized, cold / warm |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        v = r["runs"]["vectorized"]
        for method in METHODS:
            o = r["runs"][method]
            c, w = o["cold"], o["warm"]
            ratio = (
                f"{c['ess_per_s'] / v['cold']['ess_per_s']:.2f}x / "
                f"{w['ess_per_s'] / v['warm']['ess_per_s']:.2f}x"
            )
            lines.append(
                f"| {r['model']} | {r['metric']} | {method} | {c['wall_s']:.2f} | "
                f"{w['wall_s']:.2f} | {w['min_ess_bulk']:.0f} | {fmt(c['ess_per_s'])} | "
                f"{fmt(w['ess_per_s'])} | {w['executed_steps_per_draw']:.1f} / "
                f"{w['own_steps_per_draw']:.1f} | {ratio} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    name, metric, method, draws = sys.argv[1:5]
    print(json.dumps(_child(name, metric, method, int(draws))))
