"""The zoo as NumPyro models."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from .._model import Model
from ..adapters._helpers import default_float
from ..adapters._numpyro import from_numpyro
from ._references import GP_PRIORS

SCHOOL = {"school": np.arange(8)}


def _f(x: Any) -> Any:
    return np.asarray(x, default_float())


def rat_tumors_model(y: Any, n: Any) -> None:
    """The rat-tumor model as a NumPyro model function.

    The improper hyperprior `(alpha + beta)^(-5/2)` is an `ImproperUniform` on the
    positive reals plus a `numpyro.factor`; `theta` lives in the plate `experiment`.
    """
    alpha = numpyro.sample("alpha", dist.ImproperUniform(constraints.positive, (), ()))
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.positive, (), ()))
    numpyro.factor("hyperprior", -2.5 * jnp.log(alpha + beta))
    with numpyro.plate("experiment", len(y)):
        theta = numpyro.sample("theta", dist.Beta(alpha, beta))
        numpyro.sample("y", dist.Binomial(n, probs=theta), obs=y)


def rat_tumors(y: Any, n: Any) -> Model:
    """Its unconstrained space is the plain-JAX version's (NumPyro's `biject_to` maps
    the positive reals by `exp` and the unit interval by `sigmoid`), so the two log
    densities differ by a constant."""
    return from_numpyro(rat_tumors_model, np.asarray(y).astype(int), np.asarray(n).astype(int))


def eight_schools_noncentered_model(y: Any, sigma: Any) -> None:
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", len(sigma)):
        theta_trans = numpyro.sample("theta_trans", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_trans)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def eight_schools_noncentered(y: Any, sigma: Any) -> Model:
    return from_numpyro(eight_schools_noncentered_model, _f(y), _f(sigma), coords=SCHOOL)


def eight_schools_centered_model(y: Any, sigma: Any) -> None:
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", len(sigma)):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def eight_schools_centered(y: Any, sigma: Any) -> Model:
    return from_numpyro(eight_schools_centered_model, _f(y), _f(sigma), coords=SCHOOL)


def linear_regression_model(x: Any, y: Any) -> None:
    weight = numpyro.sample("weight", dist.Normal(0.0, 5.0))
    bias = numpyro.sample("bias", dist.Normal(0.0, 2.0))
    noise = numpyro.sample("noise", dist.LogNormal(-1.0, 1.0))
    with numpyro.plate("point", len(x)):
        numpyro.sample("y", dist.Normal(weight * x + bias, noise), obs=y)


def linear_regression(x: Any, y: Any) -> Model:
    return from_numpyro(linear_regression_model, _f(x), _f(y))


def logistic_regression_model(x: Any, y: Any) -> None:
    with numpyro.plate("feature", x.shape[1]):
        weights = numpyro.sample("weights", dist.Normal(0.0, 1.0))
    bias = numpyro.sample("bias", dist.Normal(0.0, 2.0))
    with numpyro.plate("row", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=x @ weights + bias), obs=y)


def logistic_regression(x: Any, y: Any) -> Model:
    return from_numpyro(logistic_regression_model, _f(x), _f(y))


def gp_model(x: Any, y: Any) -> None:
    """The GP as a NumPyro model (`MultivariateNormal` with the kernel covariance)."""
    values = {
        name: numpyro.sample(name, dist.LogNormal(loc, scale))
        for name, (loc, scale) in GP_PRIORS.items()
    }
    sq = (x[:, None] - x[None, :]) ** 2
    cov = values["amplitude"] ** 2 * jnp.exp(-0.5 * sq / values["lengthscale"] ** 2)
    cov = cov + values["noise"] ** 2 * jnp.eye(x.shape[0], dtype=cov.dtype)
    numpyro.sample("y", dist.MultivariateNormal(jnp.zeros_like(y), covariance_matrix=cov), obs=y)


def gp(x: Any, y: Any) -> Model:
    return from_numpyro(gp_model, _f(x), _f(y))


def hierarchical_model(y: Any) -> None:
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.LogNormal(0.0, 1.0))
    sigma = numpyro.sample("sigma", dist.LogNormal(0.0, 1.0))
    with numpyro.plate("group", y.shape[0]):
        theta_trans = numpyro.sample("theta_trans", dist.Normal(0.0, 1.0))
        theta = mu + tau * theta_trans
        with numpyro.plate("observation", y.shape[1], dim=-2):
            numpyro.sample("y", dist.Normal(theta, sigma), obs=y.T)


def hierarchical(y: Any) -> Model:
    return from_numpyro(hierarchical_model, _f(y))
