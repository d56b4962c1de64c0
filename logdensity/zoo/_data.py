"""The zoo's datasets, each stored once, as float64 NumPy arrays."""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np

__all__ = ["DATASETS", "data"]


def _rat_tumors() -> dict[str, np.ndarray]:
    """BDA3 Table 5.1 (Tarone 1982): tumors `y[j]` in `n[j]` rats, 71 experiments."""
    raw = json.loads(files("logdensity").joinpath("data/rat_tumors.json").read_text())
    return {"y": np.asarray(raw["y"], np.float64), "n": np.asarray(raw["n"], np.float64)}


def _eight_schools() -> dict[str, np.ndarray]:
    """Rubin (1981): estimated effects `y` and their standard errors `sigma`."""
    return {
        "y": np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]),
        "sigma": np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]),
    }


def _linear_regression() -> dict[str, np.ndarray]:
    """`x` = linspace(-2, 2, 50), `y = 2.5 x + 1 + 0.5 N(0, 1)` (`default_rng(0)`)."""
    x = np.linspace(-2.0, 2.0, 50)
    return {"x": x, "y": 2.5 * x + 1.0 + 0.5 * np.random.default_rng(0).normal(size=50)}


def _logistic_regression() -> dict[str, np.ndarray]:
    """200 rows of 3 standard-normal features, `logit = X (1, -2, 0.5) + 0.3`."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    logits = x @ np.array([1.0, -2.0, 0.5]) + 0.3
    return {"x": x, "y": (rng.uniform(size=200) < 1 / (1 + np.exp(-logits))).astype(float)}


def _gp() -> dict[str, np.ndarray]:
    """30 points `x ~ Uniform(0, 5)` sorted, `y = sin(2x) + 0.2 N(0, 1)` (`default_rng(0)`)."""
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0.0, 5.0, 30))
    return {"x": x, "y": np.sin(2 * x) + 0.2 * rng.normal(size=30)}


def _hierarchical() -> dict[str, np.ndarray]:
    """10,000 groups of 5 observations, `theta_j ~ N(1, 0.5)`, `y ~ N(theta_j, 1)`."""
    rng = np.random.default_rng(0)
    theta = 1.0 + 0.5 * rng.normal(size=10_000)
    return {"y": theta[:, None] + rng.normal(size=(10_000, 5))}


DATASETS = {
    "rat_tumors": _rat_tumors,
    "eight_schools_noncentered": _eight_schools,
    "eight_schools_centered": _eight_schools,
    "linear_regression": _linear_regression,
    "logistic_regression": _logistic_regression,
    "gp": _gp,
    "hierarchical": _hierarchical,
}


def data(model: str) -> dict[str, np.ndarray]:
    """The default data of `model` as float64 NumPy arrays (`{"y": ..., ...}`).

    **Raises:** `KeyError` for an unknown model name.
    """
    if model not in DATASETS:
        raise KeyError(f"no model {model!r} in the zoo; models: {tuple(DATASETS)}")
    return DATASETS[model]()
