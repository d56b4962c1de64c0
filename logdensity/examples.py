"""Example models and data shipped with logdensity, with independent references.

The rat-tumor model (BDA3 §5.3; Tarone 1982): tumor counts `y[j]` out of `n[j]` rats in
71 experiments,

    theta[j] ~ Beta(alpha, beta),   y[j] ~ Binomial(n[j], theta[j]),
    p(alpha, beta) ∝ (alpha + beta)^(-5/2).

Every backend's version samples the 73 unconstrained parameters `log_a`, `log_b`,
`logit_theta[71]` and reports `alpha`, `beta`, `theta` on the constrained scale.

Note on moments: with this hyperprior the marginal posterior of `s = alpha + beta` has
a tail proportional to `s^(-1/2) ds`, so `E[alpha]` and `E[beta]` are infinite (the
tail carries very little mass, so MCMC never sees it). Compare `log(alpha / beta)`,
`log(alpha + beta)` and `theta`, whose moments are finite.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betaln, gammaln
from jaxtyping import Array, Int, Scalar
from scipy import special

from ._model import Model
from .adapters._jax import from_jax

__all__ = [
    "rat_tumors_data",
    "rat_tumors_jax",
    "rat_tumors_numpyro",
    "rat_tumors_numpyro_model",
    "rat_tumors_quadrature",
]


def rat_tumors_data() -> dict[str, np.ndarray]:
    """The rat-tumor data (BDA3 Table 5.1): `{"y": int64[71], "n": int64[71]}`."""
    raw = json.loads(files("logdensity").joinpath("data/rat_tumors.json").read_text())
    return {"y": np.asarray(raw["y"], np.int64), "n": np.asarray(raw["n"], np.int64)}


def _data_or_default(y: Any, n: Any) -> tuple[Any, Any]:
    if y is None or n is None:
        default = rat_tumors_data()
        return default["y"], default["n"]
    return y, n


def _rat_tumors_logdensity(position: dict[str, Array], data: dict[str, Array]) -> Scalar:
    log_a, log_b, z = position["log_a"], position["log_b"], position["logit_theta"]
    y, n = data["y"], data["n"]
    alpha, beta = jnp.exp(log_a), jnp.exp(log_b)
    log_theta, log1m_theta = -jax.nn.softplus(-z), -jax.nn.softplus(z)
    hyperprior = -2.5 * jnp.log(alpha + beta) + log_a + log_b  # + log|d(a,b)/d(log a, log b)|
    prior = jnp.sum((alpha - 1) * log_theta + (beta - 1) * log1m_theta - betaln(alpha, beta))
    jacobian = jnp.sum(log_theta + log1m_theta)  # log|d theta / d logit(theta)|
    likelihood = jnp.sum(y * log_theta + (n - y) * log1m_theta + data["log_binom"])
    return hyperprior + prior + jacobian + likelihood


def _rat_tumors_constrain(position: dict[str, Array], data: Any) -> dict[str, Array]:
    del data
    return {
        "alpha": jnp.exp(position["log_a"]),
        "beta": jnp.exp(position["log_b"]),
        "theta": jax.nn.sigmoid(position["logit_theta"]),
    }


def _rat_tumors_unconstrain(values: dict[str, Any], data: Any) -> dict[str, Array]:
    del data
    theta = jnp.asarray(values["theta"])
    return {
        "log_a": jnp.log(jnp.asarray(values["alpha"])),
        "log_b": jnp.log(jnp.asarray(values["beta"])),
        "logit_theta": jnp.log(theta) - jnp.log1p(-theta),
    }


def rat_tumors_jax(y: Int[Any, " J"] | None = None, n: Int[Any, " J"] | None = None) -> Model:
    """The rat-tumor model as a plain-JAX `Model` (hand-written log-Jacobians).

    Position: `{"log_a": (), "log_b": (), "logit_theta": (J,)}` (unconstrained, float
    of the default JAX dtype). The log density is the full log joint (binomial
    coefficients included) plus the log-Jacobians of `exp` and `sigmoid`. `constrain`
    returns `alpha`, `beta` and `theta` (dim `experiment`). The data (`y`, `n`,
    default: [`rat_tumors_data`][logdensity.examples.rat_tumors_data]) are traced.
    """
    y, n = _data_or_default(y, n)
    y, n = np.asarray(y), np.asarray(n)
    dtype = jnp.zeros(()).dtype
    data = {
        "y": jnp.asarray(y, dtype),
        "n": jnp.asarray(n, dtype),
        # constant in the parameters: computed once, here, not at every evaluation
        "log_binom": jnp.asarray(gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0), dtype),
    }
    return from_jax(
        _rat_tumors_logdensity,
        {
            "log_a": jnp.zeros((), dtype),
            "log_b": jnp.zeros((), dtype),
            "logit_theta": jnp.zeros(len(y), dtype),
        },
        constrain=_rat_tumors_constrain,
        unconstrain=_rat_tumors_unconstrain,
        data=data,
        dims={"theta": ("experiment",)},
        coords={"experiment": np.arange(len(y))},
    )


def rat_tumors_numpyro_model(y: Any, n: Any) -> None:
    """The rat-tumor model as a NumPyro model function.

    The improper hyperprior `(alpha + beta)^(-5/2)` is an `ImproperUniform` on the
    positive reals plus a `numpyro.factor`; `theta` lives in the plate `experiment`.
    """
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    alpha = numpyro.sample("alpha", dist.ImproperUniform(constraints.positive, (), ()))
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.positive, (), ()))
    numpyro.factor("hyperprior", -2.5 * jnp.log(alpha + beta))
    with numpyro.plate("experiment", len(y)):
        theta = numpyro.sample("theta", dist.Beta(alpha, beta))
        numpyro.sample("y", dist.Binomial(n, probs=theta), obs=y)


def rat_tumors_numpyro(y: Int[Any, " J"] | None = None, n: Int[Any, " J"] | None = None) -> Model:
    """The rat-tumor model through [`from_numpyro`][logdensity.from_numpyro].

    Its unconstrained space is the plain-JAX version's (NumPyro's `biject_to` maps the
    positive reals by `exp` and the unit interval by `sigmoid`), so the two log
    densities differ by a constant.
    """
    from .adapters._numpyro import from_numpyro

    y, n = _data_or_default(y, n)
    return from_numpyro(rat_tumors_numpyro_model, np.asarray(y), np.asarray(n))


def rat_tumors_quadrature(
    y: Int[Any, " J"] | None = None,
    n: Int[Any, " J"] | None = None,
    *,
    grid_size: int = 600,
) -> dict[str, Any]:
    """Posterior moments of the rat-tumor model by quadrature, independent of MCMC.

    Integrates the closed-form marginal (BDA3 eq. 5.8)

        p(alpha, beta | y) ∝ p(alpha, beta) ∏_j B(alpha + y_j, beta + n_j - y_j) / B(alpha, beta)

    on a `grid_size`² grid over `u = log(alpha/beta)` in [-4, 0] and
    `v = log(alpha + beta)` in [-2, 14] (the Jacobian `alpha * beta` included), then
    `theta_j | alpha, beta, y ~ Beta(alpha + y_j, beta + n_j - y_j)` exactly.

    **Returns:** `{"mean_u", "sd_u", "mean_v", "sd_v"}` (floats) and `"mean_theta"`,
    `"sd_theta"` (float64 `[J]`), for `u = log(alpha/beta)` and
    `v = log(alpha + beta)`.
    """
    y, n = _data_or_default(y, n)
    y, n = np.asarray(y, float), np.asarray(n, float)
    u = np.linspace(-4.0, 0.0, grid_size)
    v = np.linspace(-2.0, 14.0, grid_size)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    s = np.exp(vv)
    a = s * special.expit(uu)
    b = s - a
    logpost = -2.5 * np.log(s) + np.log(a) + np.log(b)
    for yj, nj in zip(y, n, strict=True):
        logpost += special.betaln(a + yj, b + nj - yj) - special.betaln(a, b)
    w = np.exp(logpost - logpost.max())
    w /= w.sum()

    def moments(x: np.ndarray) -> tuple[float, float]:
        m = float(np.sum(w * x))
        return m, float(np.sqrt(np.sum(w * (x - m) ** 2)))

    mean_u, sd_u = moments(uu)
    mean_v, sd_v = moments(vv)
    mean_theta, sd_theta = [], []
    for yj, nj in zip(y, n, strict=True):
        a1, b1 = a + yj, b + nj - yj
        m1 = a1 / (a1 + b1)
        m2 = m1 * (a1 + 1) / (a1 + b1 + 1)
        mt = float(np.sum(w * m1))
        mean_theta.append(mt)
        sd_theta.append(np.sqrt(float(np.sum(w * m2)) - mt**2))
    return {
        "mean_u": mean_u,
        "sd_u": sd_u,
        "mean_v": mean_v,
        "sd_v": sd_v,
        "mean_theta": np.asarray(mean_theta),
        "sd_theta": np.asarray(sd_theta),
    }
