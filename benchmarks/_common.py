"""What every benchmark shares: the issue's data, statistics over repeats, results files."""

from __future__ import annotations

import importlib
import json
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
MODELS = ("rat_tumors", "eight_schools_noncentered", "logistic_regression", "gp", "hierarchical")
# the end-to-end suite's samplers (`endtoend.SAMPLERS`), named here so that `--models`
# can choose among them before JAX is imported
ENDTOEND_SAMPLERS = (
    "logdensity threaded",
    "logdensity threaded fisher_diag",
    "logdensity vectorized",
    "logdensity sequential",
    "logdensity parallel",
    "numpyro vectorized",
    "numpyro sequential",
    "blackjax hand-rolled",
)


def split_models(
    models: Sequence[str] | None, samplers: Sequence[str]
) -> tuple[list[str], list[str]]:
    """`--models` of a suite that also takes sampler names: `(model names, sampler
    names)`, each empty where none was given (the suite's default then)."""
    given = list(models or ())
    return [m for m in given if m not in samplers], [m for m in given if m in samplers]


def data() -> dict[str, dict[str, Any]]:
    """The benchmark models' data at the sizes of issue #7 (float64 NumPy arrays)."""
    return {
        "rat_tumors": {},
        "eight_schools_noncentered": {},
        "logistic_regression": logistic_data(100_000),
        "gp": gp_data(),
        "hierarchical": {},  # the zoo's 10,000 groups: 10,003 parameters
    }


def logistic_data(n: int, d: int = 50) -> dict[str, np.ndarray]:
    """`n` rows x `d` standardised features and Bernoulli outcomes (seed 0)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)) / np.sqrt(d)
    logits = x @ rng.normal(size=d)
    return {"x": x, "y": (rng.uniform(size=n) < 1 / (1 + np.exp(-logits))) * 1.0}


def gp_data(n: int = 200) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(0.0, 10.0, n))
    return {"x": x, "y": np.sin(x) + 0.3 * rng.normal(size=n)}


def installed_backends() -> list[str]:
    """Zoo backends whose library is installed; "jax" (hand-written) always."""
    out = ["jax"]
    for backend, module in (("numpyro", "numpyro"), ("pytensor", "pytensor"), ("equinox", "parax")):
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        out.append(backend)
    return out


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Min and median over repeats (and the repeats themselves)."""
    return {
        "min": float(min(values)),
        "median": float(statistics.median(values)),
        "values": [float(v) for v in values],
    }


def machine() -> dict[str, Any]:
    import jax

    return {
        "cpu": platform.processor() or platform.machine(),
        "devices": str(jax.devices()),
        "versions": {
            m: importlib.import_module(m).__version__
            for m in ("jax", "blackjax", "numpyro", "arviz")
        },
    }


def write(stem: str, result: dict[str, Any], table: str) -> None:
    """`results/<stem>.json` and `results/<stem>.md`; prints the table."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (RESULTS / f"{stem}.md").write_text(table)
    print(table, flush=True)


def fmt(x: float) -> str:
    return f"{x:.3g}"
