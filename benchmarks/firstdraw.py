"""Fixed costs in fresh processes: time to first draw and end-to-end ESS/s, each run a
new Python process (imports, model building, tracing and compilation all paid, as a
user pays them), on eight schools (non-centered) and rat tumors.

Samplers, float64, 4 chains:

- `logdensity, cold`: `from_numpyro` + `logdensity.sample`, its persistent
  compilation cache pointed at a new empty directory;
- `logdensity, warm`: the same with the cache filled by an earlier process (a user's
  second run of the same model);
- `numpyro`: NumPyro's `MCMC(NUTS(model))` (JAX's persistent cache off, its default);
- `nutpie jax`, `nutpie numba`: the PyMC version through
  `nutpie.compile_pymc_model(backend=...)` + `nutpie.sample` (numba's disk cache warm
  after the untimed first round, as for a user's second run).

Measures: `first draw`, the wall time of a process that samples 1 warmup step and 1
draw (the parent's clock: interpreter start to exit); `end to end`, the wall time of a
process running the default 1000 warmup + 1000 draws, and its min bulk ESS
(`arviz.ess`) over every scalar; ESS/s = ESS / that wall time. Method: one untimed round
first, then `repeats` rounds, samplers interleaved within a round; medians and the
ratios of medians to NumPyro's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._common import fmt, machine

SAMPLERS = ("logdensity, cold", "logdensity, warm", "numpyro", "nutpie jax", "nutpie numba")
MODELS = ("eight_schools_noncentered", "rat_tumors")
ROOT = Path(__file__).resolve().parent.parent


def _child(sampler: str, name: str, warmup: int, draws: int) -> dict[str, float]:
    """One run in this (fresh) process; prints `{"ess": ...}`."""
    import jax

    jax.config.update("jax_enable_x64", True)
    warnings.simplefilter("ignore")
    key = jax.random.key(0)
    if sampler.startswith("logdensity"):
        import logdensity as ld
        from logdensity import zoo

        chunk = max(1, min(100, warmup, draws))
        idata = ld.sample(
            zoo.build(name, "numpyro"),
            key,
            num_warmup=warmup,
            num_samples=draws,
            chunk_size=chunk,
            progress_bar=False,
        )
    elif sampler == "numpyro":
        import arviz as az
        from numpyro.infer import MCMC, NUTS

        from logdensity import zoo
        from logdensity.zoo import _numpyro as zn

        data = zoo.build(name, "numpyro").data
        mcmc = MCMC(
            NUTS(getattr(zn, f"{name}_model")),
            num_warmup=warmup,
            num_samples=draws,
            num_chains=4,
            chain_method="vectorized",
            progress_bar=False,
        )
        mcmc.run(key, **data)
        idata = az.from_numpyro(mcmc)
    else:
        import nutpie

        from .nutpie import _pymc_model

        backend = sampler.split()[1]
        kwargs = {"gradient_backend": "jax"} if backend == "jax" else {}
        compiled = nutpie.compile_pymc_model(_pymc_model(name), backend=backend, **kwargs)
        idata = nutpie.sample(
            compiled, draws=draws, tune=warmup, chains=4, seed=0, progress_bar=False
        )
    if draws < 4:
        return {"ess": float("nan")}
    import arviz as az

    ess = az.ess(idata.posterior, method="bulk")
    return {"ess": float(min(float(ess[v].min()) for v in ess.data_vars))}


def _process(sampler: str, name: str, warmup: int, draws: int, cache: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "benchmarks.firstdraw", sampler, name, str(warmup), str(draws)]
    env = os.environ | {"XLA_FLAGS": "", "LOGDENSITY_COMPILATION_CACHE": str(cache)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"{sampler} on {name} failed:\n{out.stderr[-3000:]}")
    return {"wall": wall, **json.loads(out.stdout.strip().splitlines()[-1])}


def run(quick: bool, models: list[str] | None = None) -> dict[str, Any]:
    import importlib.util

    names = [m for m in MODELS if not models or m in models]
    samplers = [s for s in SAMPLERS if "nutpie" not in s or importlib.util.find_spec("nutpie")]
    repeats = 1 if quick else 2
    warmup, draws = (200, 200) if quick else (1000, 1000)
    scratch = Path(tempfile.mkdtemp(prefix="logdensity-firstdraw-"))
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for name in names:
        warm = scratch / f"warm-{name}"
        per = results[name] = {s: {"first": [], "wall": [], "ess": []} for s in samplers}
        for round_ in range(repeats + 1):  # round 0 untimed: it fills the warm caches
            for sampler in samplers:
                cold = scratch / f"cold-{name}-{sampler.split(',')[0]}-{round_}"
                cache = warm if sampler == "logdensity, warm" else cold
                if sampler == "numpyro":
                    cache = Path("off")
                first = _process(sampler, name, 1, 1, cache)
                cold = cold.with_name(cold.name + "-e2e")
                cache = warm if sampler == "logdensity, warm" else cold
                if sampler == "numpyro":
                    cache = Path("off")
                e2e = _process(sampler, name, warmup, draws, cache)
                if round_:
                    per[sampler]["first"].append(first["wall"])
                    per[sampler]["wall"].append(e2e["wall"])
                    per[sampler]["ess"].append(e2e["ess"])
                    print(
                        f"  {name} {sampler}: first draw {first['wall']:.1f} s, "
                        f"end to end {e2e['wall']:.1f} s, ESS {e2e['ess']:.0f}",
                        flush=True,
                    )
    return {
        "mode": "quick" if quick else "full",
        "repeats": repeats,
        "machine": machine(),
        "settings": {"num_warmup": warmup, "num_samples": draws, "num_chains": 4},
        "results": results,
    }


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        f"Fixed costs in fresh processes ({result['mode']} mode, {result['repeats']} "
        f"interleaved rounds after an untimed one; 4 chains x ({s['num_warmup']} + "
        f"{s['num_samples']}), float64; medians, ratio to NumPyro's `MCMC` in brackets).",
        "",
        "| model | sampler | first draw s | end to end s | min bulk ESS | ESS/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, per in result["results"].items():
        ref = per["numpyro"]
        ref_first = float(np.median(ref["first"]))
        ref_rate = float(np.median(np.divide(ref["ess"], ref["wall"])))
        for sampler, m in per.items():
            first = float(np.median(m["first"]))
            rate = float(np.median(np.divide(m["ess"], m["wall"])))
            lines.append(
                f"| {name} | {sampler} | {fmt(first)} ({first / ref_first:.2f}x) "
                f"| {fmt(float(np.median(m['wall'])))} | {float(np.median(m['ess'])):.0f} "
                f"| {fmt(rate)} ({rate / ref_rate:.2f}x) |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sampler, name, warmup, draws = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(_child(sampler, name, warmup, draws)))
