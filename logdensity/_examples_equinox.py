"""Example models as Equinox modules whose leaves carry their priors (parax).

Imported only by the `logdensity.examples` builders that need it, so that
`import logdensity` does not import Equinox or parax.
"""

from __future__ import annotations

from typing import Any

import distreqx.distributions as dd
import equinox as eqx
import jax.numpy as jnp
import parax as prx
from jax.scipy.special import betaln
from jaxtyping import Array, Float, Scalar
from parax import distributions as pd
from parax.constraints import Interval, Positive


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
    ([`gp_log_marginal_likelihood`][logdensity.examples.gp_log_marginal_likelihood])."""
    from .examples import gp_log_marginal_likelihood

    return gp_log_marginal_likelihood(model.lengthscale, model.amplitude, model.noise, x, y)
