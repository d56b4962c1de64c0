"""A model zoo: the same models written in every backend, for the cross-backend proof
(`logdensity.testing.assert_equivalent`, posterior agreement) and the benchmarks.

```python
from logdensity import zoo

model = zoo.build("eight_schools_noncentered", "equinox")   # a LogDensity
zoo.MODELS            # model names
zoo.BACKENDS          # "jax", "numpyro", "pytensor", "equinox"
```

Every model has the same named values in every backend (latents in their own,
constrained space, plus deterministics); the unconstrained positions differ where the
backends pick different bijectors (parax's softplus where NumPyro uses exp), which
`assert_equivalent` accounts for.

| model | values (model space) | data |
|---|---|---|
| `rat_tumors` | `alpha`, `beta` > 0, `theta[71]` in (0, 1) | BDA3 Table 5.1 |
| `eight_schools_noncentered` | `mu`, `tau` > 0, `theta_trans[8]`; `theta` | Rubin (1981) |
| `eight_schools_centered` | `mu`, `tau` > 0, `theta[8]` | Rubin (1981) |
| `linear_regression` | `weight`, `bias`, `noise` > 0 | 50 simulated points |
| `logistic_regression` | `weights[3]`, `bias` | 200 simulated rows |
| `gp` | `lengthscale`, `amplitude`, `noise` > 0 | 30 simulated points |
| `hierarchical` | `mu`, `tau`, `sigma` > 0, `theta_trans[J]` | J = 10,000 groups x 5 |

Priors: eight schools `mu ~ N(0, 5)`, `tau ~ HalfCauchy(5)` (posteriordb's
`eight_schools_*`), `theta_trans ~ N(0, 1)` with `theta = mu + tau·theta_trans`, or
`theta ~ N(mu, tau)`, and `y ~ N(theta, sigma)`;
linear regression `weight ~ N(0, 5)`, `bias ~ N(0, 2)`, `noise ~ LogNormal(-1, 1)`;
logistic regression `weights ~ N(0, 1)`, `bias ~ N(0, 2)`, `y ~ Bernoulli(logit = X w + b)`;
the hierarchical normal model (≥ 10,000 parameters, for the benchmarks) `mu ~ N(0, 5)`,
`tau, sigma ~ LogNormal(0, 1)`, `theta_trans ~ N(0, 1)`, `y[j, i] ~ N(mu + tau·theta_trans[j],
sigma)`; the GP's hyperparameters `LogNormal` (see `logdensity.examples.gp_jax`); rat tumors as
in `logdensity.examples`.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .._model import Model

__all__ = ["BACKENDS", "MODELS", "build", "data"]

BACKENDS = ("jax", "numpyro", "pytensor", "equinox")
MODELS = (
    "rat_tumors",
    "eight_schools_noncentered",
    "eight_schools_centered",
    "linear_regression",
    "logistic_regression",
    "gp",
    "hierarchical",
)


def data(model: str) -> dict[str, np.ndarray]:
    """The default data of `model` as float64 NumPy arrays (`{"y": ..., ...}`).

    **Raises:** `KeyError` for an unknown model name.
    """
    from .. import examples

    if model == "rat_tumors":
        return {k: v.astype(np.float64) for k, v in examples.rat_tumors_data().items()}
    if model.startswith("eight_schools"):
        return {
            "y": np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]),
            "sigma": np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]),
        }
    if model == "linear_regression":
        return examples.linear_regression_data()
    if model == "logistic_regression":
        rng = np.random.default_rng(0)
        x = rng.normal(size=(200, 3))
        logits = x @ np.array([1.0, -2.0, 0.5]) + 0.3
        return {"x": x, "y": (rng.uniform(size=200) < 1 / (1 + np.exp(-logits))).astype(float)}
    if model == "gp":
        return examples.gp_data()
    if model == "hierarchical":
        rng = np.random.default_rng(0)
        theta = 1.0 + 0.5 * rng.normal(size=10_000)
        return {"y": theta[:, None] + rng.normal(size=(10_000, 5))}
    raise KeyError(f"no model {model!r} in the zoo; models: {MODELS}")


def build(model: str, backend: str, **data_: Any) -> Model:
    """`model` written in `backend`, as a `LogDensity` (float32 or float64 as JAX's
    `jax_enable_x64` says). Keyword arguments replace the default data arrays (same
    names as [`data`][logdensity.zoo.data] returns).

    **Raises:** `KeyError` for an unknown model or backend; `ImportError` naming the
    extra to install when the backend is missing.
    """
    if backend not in BACKENDS:
        raise KeyError(f"no backend {backend!r} in the zoo; backends: {BACKENDS}")
    values = data(model) | data_
    module = importlib.import_module(f"{__name__}._{backend}")
    return getattr(module, model)(**values)
