"""Diagnostics: the share of `logdensity.diagnose` in a run of the 10,003-parameter
hierarchical model (NumPyro, 4 vectorized chains × (500 + 500), float64, default
settings), with its screen above 1,024 scalars and without it (every scalar through
ArviZ's rank R-hat and ESS), timed after the run on its draws, in one process.
"""

from __future__ import annotations

import time
from typing import Any

import jax

from ._common import machine

KEYS = ("max_rhat", "min_ess_bulk", "min_ess_tail")


def run(quick: bool, models: list[str] | None = None) -> dict[str, Any]:
    del models
    import logdensity as ld
    from logdensity import _inference_data, zoo

    warmup, draws = (100, 100) if quick else (500, 500)
    model = zoo.build("hierarchical", "numpyro")
    start = time.perf_counter()
    idata = ld.sample(
        model, jax.random.key(0), num_warmup=warmup, num_samples=draws, progress_bar=False
    )
    wall = time.perf_counter() - start
    out: dict[str, Any] = {"wall_s": wall, "num_warmup": warmup, "num_samples": draws}
    screen = _inference_data._SCREEN
    for name, limit in (("screened", screen), ("full", 10**9)):
        _inference_data._SCREEN = limit
        try:
            start = time.perf_counter()
            ld.diagnose(idata)
            out[name] = {"diagnose_s": time.perf_counter() - start}
        finally:
            _inference_data._SCREEN = screen
        out[name] |= {k: float(idata.sample_stats.attrs[k]) for k in KEYS}
    return {"mode": "quick" if quick else "full", "machine": machine(), "result": out}


def markdown(result: dict[str, Any]) -> str:
    r = result["result"]
    lines = [
        f"Diagnostics ({result['mode']} mode): hierarchical model (10,003 parameters), "
        f"NumPyro, 4 vectorized chains x ({r['num_warmup']} + {r['num_samples']}); "
        f"`sample` took {r['wall_s']:.1f} s (its own diagnostics included).",
        "",
        "| diagnose | s | share of the run | max R-hat | min bulk ESS | min tail ESS |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("screened", "full"):
        d = r[name]
        lines.append(
            f"| {name} | {d['diagnose_s']:.2f} | {d['diagnose_s'] / r['wall_s']:.1%} "
            f"| {d['max_rhat']:.4f} | {d['min_ess_bulk']:.0f} | {d['min_ess_tail']:.0f} |"
        )
    return "\n".join(lines) + "\n"
