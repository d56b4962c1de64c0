"""A model zoo: the same models written in every backend, for the cross-backend proof
(`logdensity.testing.assert_equivalent`, posterior agreement) and the benchmarks.

```python
from logdensity import zoo

model = zoo.build("eight_schools_noncentered", "equinox")   # a LogDensity
zoo.MODELS            # model names
zoo.BACKENDS          # "jax", "numpyro", "pytensor", "equinox" (every model)
zoo.build("rat_tumors", "pymc")                   # PyMC too, for rat tumors
zoo.data("gp")        # the default data, float64 NumPy arrays
zoo.rat_tumors_quadrature()                       # an independent reference
```

The zoo is laid out by what it holds: `_data` (every dataset, stored once),
`_references` (log densities the backends share and references independent of MCMC),
and one module per backend (`_jax`, `_numpyro`, `_pytensor`, `_equinox`, `_pymc`).
Every backend's builder takes the data by name (`build(model, backend, **data)`), and
the models' data forms agree where their adapters allow: `replace_data` takes
`{"x": ..., "y": ...}` for the linear regression in every backend.

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
sigma)`; the GP's hyperparameters `lengthscale, amplitude ~ LogNormal(0, 1)`,
`noise ~ LogNormal(-1, 1)`, `y ~ N(0, K + noise² I)` with the squared-exponential kernel.

Rat tumors (BDA3 §5.3; Tarone 1982): `theta[j] ~ Beta(alpha, beta)`,
`y[j] ~ Binomial(n[j], theta[j])`, `p(alpha, beta) ∝ (alpha + beta)^(-5/2)`. With this
hyperprior the marginal posterior of `s = alpha + beta` has a tail proportional to
`s^(-1/2) ds`, so `E[alpha]` and `E[beta]` are infinite (the tail carries very little
mass, so MCMC never sees it): compare `log(alpha / beta)`, `log(alpha + beta)` and
`theta`, whose moments are finite ([`rat_tumors_quadrature`][logdensity.zoo.rat_tumors_quadrature]).
"""

from __future__ import annotations

import importlib
from typing import Any

from .._model import Model
from ._data import data as data
from ._references import (
    gp_log_marginal_likelihood as gp_log_marginal_likelihood,
    rat_tumors_quadrature as rat_tumors_quadrature,
)

__all__ = [
    "BACKENDS",
    "MODELS",
    "build",
    "data",
    "gp_log_marginal_likelihood",
    "rat_tumors_quadrature",
]

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
# backends that hold some of the models only
_PARTIAL = {"pymc": ("rat_tumors",)}


def build(model: str, backend: str, **data_: Any) -> Model:
    """`model` written in `backend`, as a `LogDensity` (float32 or float64 as JAX's
    `jax_enable_x64` says). Keyword arguments replace the default data arrays (same
    names as [`data`][logdensity.zoo.data] returns).

    **Raises:** `KeyError` for an unknown model or backend (or a model the backend does
    not hold); `ImportError` naming the extra to install when the backend is missing.
    """
    if backend not in BACKENDS and backend not in _PARTIAL:
        raise KeyError(f"no backend {backend!r} in the zoo; backends: {BACKENDS}, {_PARTIAL}")
    if backend in _PARTIAL and model not in _PARTIAL[backend]:
        raise KeyError(f"no model {model!r} in the zoo's {backend!r}: it has {_PARTIAL[backend]}")
    values = data(model) | data_
    module = importlib.import_module(f"{__name__}._{backend}")
    return getattr(module, model)(**values)
