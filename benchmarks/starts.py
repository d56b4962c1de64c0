"""Where the chains start: `sample(init=...)`'s `"jitter"` (Stan's), `"map"` and
`"pathfinder"`, on posteriordb's arma11 (whose moving-average recursion overflows at
|theta| > 1) and diamonds (26 strongly correlated coefficients), plain JAX, float64,
4 chains, the same seeds for every start, inits interleaved seed by seed.

Reported per init, over the seeds:
- **frozen chains**: chains `diagnose` calls stuck (adapted step size under 1/1000 of the
  chains' median, or a log density that never changes), summed over the seeds;
- **warmup steps to the typical set**: per chain, the first warmup step whose log
  density reaches the 1% quantile of that run's sampling-phase log density (every
  chain's); the median over the seeds of the slowest live chain (frozen chains left out).
  A mode's log density is above the typical set's, so "map" scores 0 by construction;
- seconds per run (compilation included) and divergences after warmup;
- for the default start, per seed: the chains `sample` restarted because their warmup
  collapsed, the smallest adapted step size and the largest R-hat.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from ._common import fmt, machine

INITS = ("jitter", "map", "pathfinder")
POSTERIORS = {"arma11": 12, "diamonds-diamonds": 3}  # name -> seeds
DRAWS = {"arma11": (1000, 1000), "diamonds-diamonds": (1000, 300)}


def _model(name: str) -> Any:
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from tests import posteriordb_models as pdb

    if name == "arma11":
        return pdb.arma11_jax(pdb.load_arma())
    return pdb.POSTERIORS[name]["jax"](pdb.load(name)[0])


def _run(model: Any, init: str, seed: int, warmup: int, draws: int) -> dict[str, Any]:
    import jax
    import numpy as np

    import logdensity as ld

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", ld.SamplingWarning)
        idata = ld.sample(model, jax.random.key(seed), init=init, num_warmup=warmup,
                          num_samples=draws, save_warmup=True, progress_bar=False)  # fmt: skip
    seconds = time.perf_counter() - start
    stuck = list(idata.sample_stats.attrs.get("stuck_chains", []))
    lp_warm = idata.warmup_sample_stats["lp"].values
    lp = idata.sample_stats["lp"].values
    floor = np.quantile(lp, 0.01)
    reached = [
        int(np.argmax(lp_warm[c] >= floor)) if np.any(lp_warm[c] >= floor) else warmup
        for c in range(lp.shape[0])
        if c not in stuck
    ]
    import arviz as az

    return {
        "restarts": sum(str(w.message).count("restarted from") for w in record),
        "min_step_size": float(idata.adaptation["step_size"].min()),
        "max_rhat": float(az.rhat(idata).to_array().max()),
        "frozen": len(stuck),
        "steps_to_typical": max(reached) if reached else warmup,
        "seconds": seconds,
        "divergences": int(idata.sample_stats["diverging"].sum()),
    }


def run(quick: bool, models: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": machine(), "inits": INITS, "posteriors": {}}
    for name, seeds in POSTERIORS.items():
        if models and name not in models and name.split("-")[0] not in models:
            continue
        model = _model(name)
        warmup, draws = DRAWS[name]
        if quick:
            seeds = min(seeds, 2)
        runs: dict[str, list[dict[str, Any]]] = {i: [] for i in INITS}
        for seed in range(seeds):
            for init in INITS:
                r = _run(model, init, seed, warmup, draws)
                runs[init].append(r)
                print(name, init, seed, r, flush=True)
        out["posteriors"][name] = {"seeds": seeds, "warmup": warmup, "draws": draws, "runs": runs}
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| posterior | init | seeds | frozen chains | warmup steps to typical set (median) "
        "| seconds per run (median) | divergences |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, p in result["posteriors"].items():
        for init in result["inits"]:
            rs = p["runs"][init]
            lines.append(
                f"| {name} | {init} | {p['seeds']} | {sum(r['frozen'] for r in rs)} of "
                f"{4 * len(rs)} | {statistics.median(r['steps_to_typical'] for r in rs):.0f} "
                f"| {fmt(statistics.median(r['seconds'] for r in rs))} "
                f"| {sum(r['divergences'] for r in rs)} |"
            )
    for name, p in result["posteriors"].items():
        rs = p["runs"]["jitter"]
        if "restarts" not in rs[0]:
            continue
        lines += [
            "",
            f'{name}, `init="jitter"` (the default), per seed: chains restarted after a '
            "collapsed warmup, the smallest adapted step size, the largest R-hat.",
            "",
            "| seed | restarts | min step size | max R-hat | frozen chains | divergences |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {i} | {r['restarts']} | {r['min_step_size']:.3g} | {r['max_rhat']:.4f} "
            f"| {r['frozen']} | {r['divergences']} |"
            for i, r in enumerate(rs)
        ]
    return "\n".join(lines) + "\n"
