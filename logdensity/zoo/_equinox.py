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
from jax.scipy.stats import norm
from jaxtyping import Array, Float, Scalar
from parax import distributions as pd
from parax.constraints import Positive

from .. import examples
from .._model import Model
from ..adapters._equinox import from_equinox
from ._jax import half_cauchy_logpdf

SCHOOL = {"school": np.arange(8)}


def _dtype() -> Any:
    return jnp.zeros(()).dtype


def rat_tumors(y: Any, n: Any) -> Model:
    return examples.rat_tumors_equinox(y.astype(int), n.astype(int))


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


def _noncentered_theta(model: EightSchoolsNonCentered, *data: Any) -> dict[str, Array]:
    return {"theta": model.theta}


def eight_schools_noncentered(y: Any, sigma: Any) -> Model:
    dtype = _dtype()
    return from_equinox(
        EightSchoolsNonCentered(len(y), dtype),
        noncentered_log_likelihood,
        jnp.asarray(y, dtype),
        jnp.asarray(sigma, dtype),
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
        jnp.asarray(y, dtype),
        jnp.asarray(sigma, dtype),
        dims={"theta": ("school",)},
        coords=SCHOOL,
    )


def linear_regression(x: Any, y: Any) -> Model:
    return examples.linear_regression_equinox(x, y)


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
        jnp.asarray(x, dtype),
        jnp.asarray(y, dtype),
        dims={"weights": ("feature",)},
    )


def gp(x: Any, y: Any) -> Model:
    return examples.gp_equinox(x, y)


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
        jnp.asarray(y, dtype),
        dims={"theta_trans": ("group",)},
    )
