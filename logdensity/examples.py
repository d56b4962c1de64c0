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
from .adapters._backends import require
from .adapters._jax import from_jax

__all__ = [
    "gp_data",
    "gp_equinox",
    "gp_jax",
    "gp_log_marginal_likelihood",
    "gp_numpyro",
    "gp_numpyro_model",
    "linear_regression_data",
    "linear_regression_equinox",
    "rat_tumors_data",
    "rat_tumors_equinox",
    "rat_tumors_jax",
    "rat_tumors_numpyro",
    "rat_tumors_numpyro_model",
    "rat_tumors_pymc",
    "rat_tumors_pytensor",
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
        "log_binom": jnp.asarray(_log_binom(y, n), dtype),
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


def rat_tumors_pytensor(y: Int[Any, " J"] | None = None, n: Int[Any, " J"] | None = None) -> Model:
    """The rat-tumor model as a PyTensor graph through
    [`from_pytensor`][logdensity.from_pytensor] (the seed tutorial).

    Inputs `log_a`, `log_b`, `logit_theta[J]` (the plain-JAX version's position, so the
    two log densities differ by a constant at the same positions), hand-written
    log-Jacobians, deterministics `alpha`, `beta`, `theta`. The data are constants of
    the compiled graph.
    """
    require("pytensor", "pytensor")
    import pytensor.tensor as pt

    from .adapters._pytensor import from_pytensor

    y, n = _data_or_default(y, n)
    y, n = np.asarray(y, float), np.asarray(n, float)
    log_a, log_b = pt.scalar("log_a"), pt.scalar("log_b")
    z = pt.vector("logit_theta", shape=(len(y),))
    alpha, beta = pt.exp(log_a), pt.exp(log_b)
    log_theta, log1m_theta = -pt.softplus(-z), -pt.softplus(z)
    betaln = pt.gammaln(alpha) + pt.gammaln(beta) - pt.gammaln(alpha + beta)
    logp = (
        -2.5 * pt.log(alpha + beta)
        + log_a  # log|d alpha / d log_a|
        + log_b
        + pt.sum((alpha - 1) * log_theta + (beta - 1) * log1m_theta - betaln)
        + pt.sum(log_theta + log1m_theta)  # log|d theta / d logit_theta|
        + pt.sum(y * log_theta + (n - y) * log1m_theta + np.asarray(_log_binom(y, n)))
    )
    return from_pytensor(
        logp,
        [log_a, log_b, z],
        deterministics={"alpha": alpha, "beta": beta, "theta": pt.sigmoid(z)},
        dims={"theta": ("experiment",), "logit_theta": ("experiment",)},
        coords={"experiment": np.arange(len(y))},
    )


def rat_tumors_pymc(y: Int[Any, " J"] | None = None, n: Int[Any, " J"] | None = None) -> Model:
    """The rat-tumor model as a PyMC model through [`from_pymc`][logdensity.from_pymc]:
    `HalfFlat` `alpha`, `beta` with a `Potential` for `(alpha + beta)^(-5/2)`, `theta`
    (dim `experiment`) `Beta`, `y` `Binomial`; PyMC's log and logodds transforms."""
    pm = require("pymc", "pymc")
    from .adapters._pymc import from_pymc

    y, n = _data_or_default(y, n)
    with pm.Model(coords={"experiment": np.arange(len(y))}) as model:
        alpha = pm.HalfFlat("alpha")
        beta = pm.HalfFlat("beta")
        pm.Potential("hyperprior", -2.5 * pm.math.log(alpha + beta))
        theta = pm.Beta("theta", alpha, beta, dims="experiment")
        pm.Binomial("y", n=np.asarray(n), p=theta, observed=np.asarray(y), dims="experiment")
    return from_pymc(model)


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


def _log_binom(y: np.ndarray, n: np.ndarray) -> Array:
    return gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)


def rat_tumors_equinox(y: Int[Any, " J"] | None = None, n: Int[Any, " J"] | None = None) -> Model:
    """The rat-tumor model through [`from_equinox`][logdensity.from_equinox].

    The module holds `alpha`, `beta` (`parax.Constrained` on the positive reals) and
    `theta` (on the unit interval), with flat priors on their supports; the likelihood
    adds the hierarchical prior. parax's bijectors (softplus for positive values, a
    scaled sigmoid for the interval) differ from the plain-JAX version's, so the two
    agree after mapping through the named constrained values, not coordinate by
    coordinate.
    """
    from ._examples_equinox import RatTumors, rat_tumors_log_likelihood
    from .adapters._equinox import from_equinox

    y, n = _data_or_default(y, n)
    y, n = np.asarray(y), np.asarray(n)
    dtype = jnp.zeros(()).dtype
    return from_equinox(
        RatTumors(len(y), dtype),
        rat_tumors_log_likelihood,
        jnp.asarray(y, dtype),
        jnp.asarray(n, dtype),
        jnp.asarray(_log_binom(y, n), dtype),
        dims={"theta": ("experiment",)},
        coords={"experiment": np.arange(len(y))},
    )


def linear_regression_data(
    num_points: int = 50, seed: int = 0, weight: float = 2.5, bias: float = 1.0, noise: float = 0.5
) -> dict[str, np.ndarray]:
    """`x` = linspace(-2, 2, num_points), `y = weight * x + bias + noise * N(0, 1)`
    (float64 NumPy arrays; numpy `default_rng(seed)`)."""
    x = np.linspace(-2.0, 2.0, num_points)
    y = weight * x + bias + noise * np.random.default_rng(seed).normal(size=num_points)
    return {"x": x, "y": y}


def linear_regression_equinox(x: Any, y: Any) -> Model:
    """`BayesianLinearModel` (`weight ~ N(0, 5)`, `bias ~ N(0, 2)`,
    `noise ~ LogNormal(-1, 1)`, priors on the leaves) through `from_equinox`, on
    data of the default JAX dtype."""
    from ._examples_equinox import BayesianLinearModel, linear_log_likelihood
    from .adapters._equinox import from_equinox

    dtype = jnp.zeros(()).dtype
    return from_equinox(
        BayesianLinearModel(dtype),
        linear_log_likelihood,
        jnp.asarray(x, dtype),
        jnp.asarray(y, dtype),
    )


# --- exact Gaussian-process regression with hyperpriors -----------------------------------
# lengthscale ~ LogNormal(0, 1), amplitude ~ LogNormal(0, 1), noise ~ LogNormal(-1, 1),
# y ~ MultivariateNormal(0, K + noise² I), K = amplitude² exp(-(x - x')² / (2 lengthscale²)).
_GP_PRIORS = {"lengthscale": (0.0, 1.0), "amplitude": (0.0, 1.0), "noise": (-1.0, 1.0)}


def gp_data(num_points: int = 30, seed: int = 0) -> dict[str, np.ndarray]:
    """`x ~ Uniform(0, 5)` sorted, `y = sin(2x) + 0.2 N(0, 1)` (float64, `default_rng(seed)`)."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0.0, 5.0, num_points))
    return {"x": x, "y": np.sin(2 * x) + 0.2 * rng.normal(size=num_points)}


def gp_log_marginal_likelihood(
    lengthscale: Any, amplitude: Any, noise: Any, x: Any, y: Any
) -> Scalar:
    """`log N(y | 0, K + noise² I)` for the squared-exponential kernel, through a
    Cholesky factor: `-½ yᵀ(K + σ²I)⁻¹y - ½ log|K + σ²I| - N/2 log 2π`.

    `jnp.linalg.cholesky` returns NaN for a matrix that is not numerically positive
    definite, so the result is NaN there (NUTS rejects the point) instead of raising.
    """
    sq = (x[:, None] - x[None, :]) ** 2
    cov = amplitude**2 * jnp.exp(-0.5 * sq / lengthscale**2)
    cov = cov + noise**2 * jnp.eye(x.shape[0], dtype=cov.dtype)
    chol = jnp.linalg.cholesky(cov)
    white = jax.scipy.linalg.solve_triangular(chol, y, lower=True)
    return (
        -0.5 * jnp.sum(white**2)
        - jnp.sum(jnp.log(jnp.diag(chol)))
        - 0.5 * x.shape[0] * jnp.log(2 * jnp.pi)
    )


def _gp_logdensity(position: dict[str, Array], data: dict[str, Array]) -> Scalar:
    total = jnp.zeros(())
    values = {}
    for name, (loc, scale) in _GP_PRIORS.items():
        log_value = position[f"log_{name}"]
        values[name] = jnp.exp(log_value)
        # LogNormal density of exp(u) times the Jacobian exp(u): Normal(u | loc, scale)
        total += jax.scipy.stats.norm.logpdf(log_value, loc, scale)
    return total + gp_log_marginal_likelihood(**values, x=data["x"], y=data["y"])


def gp_jax(x: Any, y: Any) -> Model:
    """The GP as a plain-JAX `Model` on `log_lengthscale`, `log_amplitude`,
    `log_noise` (hand-written Jacobians), reporting the three on their own scale."""
    dtype = jnp.zeros(()).dtype
    names = tuple(_GP_PRIORS)
    return from_jax(
        _gp_logdensity,
        {f"log_{n}": jnp.zeros((), dtype) for n in names},
        constrain=lambda p, d: {n: jnp.exp(p[f"log_{n}"]) for n in names},
        unconstrain=lambda v, d: {f"log_{n}": jnp.log(jnp.asarray(v[n])) for n in names},
        data={"x": jnp.asarray(x, dtype), "y": jnp.asarray(y, dtype)},
    )


def gp_numpyro_model(x: Any, y: Any) -> None:
    """The GP as a NumPyro model (`MultivariateNormal` with the kernel covariance)."""
    import numpyro
    import numpyro.distributions as dist

    values = {
        name: numpyro.sample(name, dist.LogNormal(loc, scale))
        for name, (loc, scale) in _GP_PRIORS.items()
    }
    sq = (x[:, None] - x[None, :]) ** 2
    cov = values["amplitude"] ** 2 * jnp.exp(-0.5 * sq / values["lengthscale"] ** 2)
    cov = cov + values["noise"] ** 2 * jnp.eye(x.shape[0], dtype=cov.dtype)
    numpyro.sample("y", dist.MultivariateNormal(jnp.zeros_like(y), covariance_matrix=cov), obs=y)


def gp_numpyro(x: Any, y: Any) -> Model:
    """The GP through [`from_numpyro`][logdensity.from_numpyro]."""
    from .adapters._numpyro import from_numpyro

    dtype = jnp.zeros(()).dtype
    return from_numpyro(gp_numpyro_model, np.asarray(x, dtype), np.asarray(y, dtype))


def gp_equinox(x: Any, y: Any) -> Model:
    """The GP as an Equinox module (`RBFGP`, priors on the leaves) through
    [`from_equinox`][logdensity.from_equinox]; parax's raw space for each `LogNormal`
    prior is its Gaussian copula."""
    from ._examples_equinox import RBFGP, gp_log_likelihood
    from .adapters._equinox import from_equinox

    dtype = jnp.zeros(()).dtype
    return from_equinox(
        RBFGP(dtype), gp_log_likelihood, jnp.asarray(x, dtype), jnp.asarray(y, dtype)
    )
