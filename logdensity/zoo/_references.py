"""What the zoo's backends share besides data: log densities written once (half-Cauchy,
the GP's marginal likelihood, the binomial coefficients) and independent references
(the rat-tumor posterior by quadrature)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln
from jaxtyping import Array, Scalar
from scipy import special

from ._data import data

__all__ = [
    "GP_PRIORS",
    "gp_log_marginal_likelihood",
    "half_cauchy_logpdf",
    "log_binom",
    "rat_tumors_quadrature",
]

# lengthscale ~ LogNormal(0, 1), amplitude ~ LogNormal(0, 1), noise ~ LogNormal(-1, 1),
# y ~ MultivariateNormal(0, K + noise² I), K = amplitude² exp(-(x - x')² / (2 lengthscale²)).
GP_PRIORS = {"lengthscale": (0.0, 1.0), "amplitude": (0.0, 1.0), "noise": (-1.0, 1.0)}


def half_cauchy_logpdf(x: Any, scale: float) -> Any:
    """`log HalfCauchy(x | scale)` for x ≥ 0: `log(2 / (π scale)) - log(1 + (x / scale)²)`."""
    return jnp.log(2.0 / (jnp.pi * scale)) - jnp.log1p((x / scale) ** 2)


def log_binom(y: Any, n: Any) -> Array:
    """`log C(n, y)`, elementwise."""
    return gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)


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


def rat_tumors_quadrature(
    y: Any | None = None, n: Any | None = None, *, grid_size: int = 600
) -> dict[str, Any]:
    """Posterior moments of the rat-tumor model by quadrature, independent of MCMC.

    Integrates the closed-form marginal (BDA3 eq. 5.8)

        p(alpha, beta | y) ∝ p(alpha, beta) ∏_j B(alpha + y_j, beta + n_j - y_j) / B(alpha, beta)

    on a `grid_size`² grid over `u = log(alpha/beta)` in [-4, 0] and
    `v = log(alpha + beta)` in [-2, 14] (the Jacobian `alpha * beta` included), then
    `theta_j | alpha, beta, y ~ Beta(alpha + y_j, beta + n_j - y_j)` exactly. Default
    data: the zoo's (BDA3 Table 5.1).

    **Returns:** `{"mean_u", "sd_u", "mean_v", "sd_v"}` (floats) and `"mean_theta"`,
    `"sd_theta"` (float64 `[J]`), for `u = log(alpha/beta)` and
    `v = log(alpha + beta)`.
    """
    if y is None or n is None:
        y, n = data("rat_tumors")["y"], data("rat_tumors")["n"]
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
