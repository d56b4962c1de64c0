"""The zoo as Equinox modules whose leaves carry parax priors or constraints. Priors
that parax cannot carry on a leaf (a half-Cauchy; a prior whose parameters are other
leaves) are `parax.Constrained` leaves (flat on the support) with the prior written in
the log-likelihood."""

from __future__ import annotations

from typing import Any

import distreqx.distributions as dd
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import parax as prx
from jax.nn import log_sigmoid
from jax.scipy.special import betaln
from jax.scipy.stats import norm
from jaxtyping import Array, Float, Scalar
from parax import distributions as pd
from parax.constraints import Interval, Positive

from .._model import Model
from ..adapters._equinox import from_equinox
from ..adapters._helpers import default_float
from ._references import gp_log_marginal_likelihood, half_cauchy_logpdf, log_binom

SCHOOL = {"school": np.arange(8)}


def _dtype() -> Any:
    return default_float()


def _as(dtype: Any, **data: Any) -> dict[str, Any]:
    return {k: jnp.asarray(v, dtype) for k, v in data.items()}


class RatTumors(eqx.Module):
    """The rat-tumor model's parameters: `alpha`, `beta` > 0 and `theta` in (0, 1)^J,
    each a `parax.Constrained` with a flat prior on its support. The hierarchical prior
    (`theta ~ Beta(alpha, beta)` and `(alpha + beta)^(-5/2)`) is written in the
    likelihood, since its parameters are other leaves."""

    alpha: Any
    beta: Any
    theta: Any

    def __init__(self, num_experiments: int, dtype: Any = None):
        one = jnp.ones((), dtype)
        self.alpha = prx.Constrained(Positive(dtype=dtype), value=one)
        self.beta = prx.Constrained(Positive(dtype=dtype), value=one)
        self.theta = prx.Constrained(
            Interval(jnp.zeros(num_experiments, dtype), jnp.ones(num_experiments, dtype)),
            value=jnp.full(num_experiments, 0.5, dtype),
        )


def rat_tumors_log_likelihood(
    model: RatTumors,
    y: Float[Array, " J"],
    n: Float[Array, " J"],
    log_binom: Float[Array, " J"],
) -> Scalar:
    """Hyperprior, `Beta(alpha, beta)` prior of `theta` and the binomial likelihood,
    all on the constrained values of the unwrapped `model`."""
    alpha, beta, theta = model.alpha, model.beta, model.theta
    log_theta, log1m_theta = jnp.log(theta), jnp.log1p(-theta)
    hyperprior = -2.5 * jnp.log(alpha + beta)
    prior = jnp.sum((alpha - 1) * log_theta + (beta - 1) * log1m_theta - betaln(alpha, beta))
    likelihood = jnp.sum(y * log_theta + (n - y) * log1m_theta + log_binom)
    return hyperprior + prior + likelihood


def rat_tumors(y: Any, n: Any) -> Model:
    """The module holds `alpha`, `beta` (`parax.Constrained` on the positive reals)
    and `theta` (on the unit interval), with flat priors on their supports; the
    likelihood adds the hierarchical prior. parax's bijectors (softplus, a scaled
    sigmoid) differ from the plain-JAX version's, so the two agree through the named
    constrained values, not coordinate by coordinate."""
    dtype = _dtype()
    return from_equinox(
        RatTumors(len(y), dtype),
        rat_tumors_log_likelihood,
        data=_as(dtype, y=y, n=n, log_binom=log_binom(np.asarray(y), np.asarray(n))),
        dims={"theta": ("experiment",)},
        coords={"experiment": np.arange(len(y))},
    )


class EightSchoolsNonCentered(eqx.Module):
    """`mu ~ N(0, 5)`, `theta_trans ~ N(0, 1)` on the leaves; `tau > 0` constrained,
    its half-Cauchy prior in the likelihood."""

    mu: Any
    tau: Any
    theta_trans: Any

    def __init__(self, num_schools: int, dtype: Any = None):
        zero = jnp.zeros((), dtype)
        self.mu = prx.Random(dd.Normal(zero, zero + 5.0))
        self.tau = prx.Constrained(Positive(dtype=dtype), value=zero + 1.0)
        zeros = jnp.zeros(num_schools, dtype)
        self.theta_trans = prx.Random(dd.Normal(zeros, zeros + 1.0))

    @property
    def theta(self) -> Array:
        return self.mu + self.tau * self.theta_trans


def noncentered_log_likelihood(
    model: EightSchoolsNonCentered, y: Float[Array, " J"], sigma: Float[Array, " J"]
) -> Scalar:
    return half_cauchy_logpdf(model.tau, 5.0) + jnp.sum(norm.logpdf(y, model.theta, sigma))


def _noncentered_theta(model: EightSchoolsNonCentered, **data: Any) -> dict[str, Array]:
    return {"theta": model.theta}


def eight_schools_noncentered(y: Any, sigma: Any) -> Model:
    dtype = _dtype()
    return from_equinox(
        EightSchoolsNonCentered(len(y), dtype),
        noncentered_log_likelihood,
        data=_as(dtype, y=y, sigma=sigma),
        deterministics=_noncentered_theta,
        dims={"theta": ("school",), "theta_trans": ("school",)},
        coords=SCHOOL,
    )


class EightSchoolsCentered(eqx.Module):
    """`mu ~ N(0, 5)` on its leaf; `tau > 0` constrained and `theta` free, their priors
    (`HalfCauchy(5)`, `N(mu, tau)`) in the likelihood."""

    mu: Any
    tau: Any
    theta: Any

    def __init__(self, num_schools: int, dtype: Any = None):
        zero = jnp.zeros((), dtype)
        self.mu = prx.Random(dd.Normal(zero, zero + 5.0))
        self.tau = prx.Constrained(Positive(dtype=dtype), value=zero + 1.0)
        self.theta = jnp.zeros(num_schools, dtype)  # a plain leaf: flat, sampled


def centered_log_likelihood(
    model: EightSchoolsCentered, y: Float[Array, " J"], sigma: Float[Array, " J"]
) -> Scalar:
    prior = half_cauchy_logpdf(model.tau, 5.0) + jnp.sum(
        norm.logpdf(model.theta, model.mu, model.tau)
    )
    return prior + jnp.sum(norm.logpdf(y, model.theta, sigma))


def eight_schools_centered(y: Any, sigma: Any) -> Model:
    dtype = _dtype()
    return from_equinox(
        EightSchoolsCentered(len(y), dtype),
        centered_log_likelihood,
        data=_as(dtype, y=y, sigma=sigma),
        dims={"theta": ("school",)},
        coords=SCHOOL,
        flat_priors=True,  # theta's prior, N(mu, tau), is in the likelihood
    )


class BayesianLinearModel(eqx.Module):
    """`y ~ Normal(weight * x + bias, noise)` with `weight ~ N(0, 5)`, `bias ~ N(0, 2)`
    and `noise ~ LogNormal(-1, 1)` carried by the leaves."""

    weight: Any
    bias: Any
    noise: Any

    def __init__(self, dtype: Any = None):
        zero = jnp.zeros((), dtype)
        self.weight = prx.Random(dd.Normal(zero, zero + 5.0))
        self.bias = prx.Random(dd.Normal(zero, zero + 2.0))
        self.noise = prx.Random(pd.LogNormal(zero - 1.0, zero + 1.0))

    def __call__(self, x: Float[Array, " N"]) -> Float[Array, " N"]:
        return self.weight * x + self.bias


def linear_log_likelihood(
    model: BayesianLinearModel, x: Float[Array, " N"], y: Float[Array, " N"]
) -> Scalar:
    """`sum_i log Normal(y_i | weight * x_i + bias, noise)`."""
    return jnp.sum(dd.Normal(model(x), model.noise * jnp.ones_like(x)).log_prob(y))


def linear_regression(x: Any, y: Any) -> Model:
    """`BayesianLinearModel`, priors on the leaves."""
    dtype = _dtype()
    return from_equinox(
        BayesianLinearModel(dtype), linear_log_likelihood, data=_as(dtype, x=x, y=y)
    )


class LogisticRegression(eqx.Module):
    """`weights ~ N(0, 1)`, `bias ~ N(0, 2)` on the leaves; `logits = x @ weights + bias`."""

    weights: Any
    bias: Any

    def __init__(self, num_features: int, dtype: Any = None):
        zeros, zero = jnp.zeros(num_features, dtype), jnp.zeros((), dtype)
        self.weights = prx.Random(dd.Normal(zeros, zeros + 1.0))
        self.bias = prx.Random(dd.Normal(zero, zero + 2.0))

    def __call__(self, x: Float[Array, "N D"]) -> Float[Array, " N"]:
        return x @ self.weights + self.bias


def logistic_log_likelihood(
    model: LogisticRegression, x: Float[Array, "N D"], y: Float[Array, " N"]
) -> Scalar:
    logits = model(x)
    return jnp.sum(y * log_sigmoid(logits) + (1 - y) * log_sigmoid(-logits))


def logistic_regression(x: Any, y: Any) -> Model:
    dtype = _dtype()
    return from_equinox(
        LogisticRegression(x.shape[1], dtype),
        logistic_log_likelihood,
        data=_as(dtype, x=x, y=y),
        dims={"weights": ("feature",)},
    )


class RBFGP(eqx.Module):
    """An exact GP with the squared-exponential kernel
    `k(x, x') = amplitude² exp(-(x - x')² / (2 lengthscale²))` and Gaussian noise;
    each hyperparameter carries a `LogNormal` prior (log-scale 0, 0 and -1, sd 1)."""

    lengthscale: Any
    amplitude: Any
    noise: Any

    def __init__(self, dtype: Any = None):
        zero = jnp.zeros((), dtype)
        self.lengthscale = prx.Random(pd.LogNormal(zero, zero + 1.0))
        self.amplitude = prx.Random(pd.LogNormal(zero, zero + 1.0))
        self.noise = prx.Random(pd.LogNormal(zero - 1.0, zero + 1.0))


def gp_log_likelihood(model: RBFGP, x: Float[Array, " N"], y: Float[Array, " N"]) -> Scalar:
    """The GP's log marginal likelihood at the unwrapped module's hyperparameters
    ([`gp_log_marginal_likelihood`][logdensity.zoo.gp_log_marginal_likelihood])."""
    return gp_log_marginal_likelihood(model.lengthscale, model.amplitude, model.noise, x, y)


def gp(x: Any, y: Any) -> Model:
    """`RBFGP`, priors on the leaves; parax's raw space for each `LogNormal` prior is
    its Gaussian copula."""
    dtype = _dtype()
    return from_equinox(RBFGP(dtype), gp_log_likelihood, data=_as(dtype, x=x, y=y))


class Hierarchical(eqx.Module):
    """`mu ~ N(0, 5)`, `tau, sigma ~ LogNormal(0, 1)`, `theta_trans ~ N(0, 1)` on the
    leaves (parax's raw space for the LogNormal priors is their Gaussian copula)."""

    mu: Any
    tau: Any
    sigma: Any
    theta_trans: Any

    def __init__(self, num_groups: int, dtype: Any = None):
        zero, zeros = jnp.zeros((), dtype), jnp.zeros(num_groups, dtype)
        self.mu = prx.Random(dd.Normal(zero, zero + 5.0))
        self.tau = prx.Random(pd.LogNormal(zero, zero + 1.0))
        self.sigma = prx.Random(pd.LogNormal(zero, zero + 1.0))
        self.theta_trans = prx.Random(dd.Normal(zeros, zeros + 1.0))


def hierarchical_log_likelihood(model: Hierarchical, y: Float[Array, "J n"]) -> Scalar:
    theta = model.mu + model.tau * model.theta_trans
    return jnp.sum(norm.logpdf(y, theta[:, None], model.sigma))


def hierarchical(y: Any) -> Model:
    dtype = _dtype()
    return from_equinox(
        Hierarchical(y.shape[0], dtype),
        hierarchical_log_likelihood,
        data=_as(dtype, y=y),
        dims={"theta_trans": ("group",)},
    )
