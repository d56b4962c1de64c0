"""The zoo as hand-built PyTensor graphs on unconstrained inputs (log-Jacobians written
out), compiled by `from_pytensor`; the data are constants of the graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt

from .._model import Model
from ..adapters._pytensor import from_pytensor
from ._references import GP_PRIORS, log_binom

SCHOOL = {"school": np.arange(8)}
LOG_2PI = float(np.log(2 * np.pi))


def normal_logpdf(x: Any, loc: Any, scale: Any) -> Any:
    return -0.5 * ((x - loc) / scale) ** 2 - pt.log(scale) - 0.5 * LOG_2PI


def half_cauchy_logpdf(x: Any, scale: float) -> Any:
    return np.log(2.0 / (np.pi * scale)) - pt.log1p((x / scale) ** 2)


def rat_tumors(y: Any, n: Any) -> Model:
    """The seed tutorial's graph: inputs `log_a`, `log_b`, `logit_theta[J]` (the
    plain-JAX version's position, so the two log densities differ by a constant at the
    same positions), hand-written log-Jacobians, deterministics `alpha`, `beta`,
    `theta`. The data are constants of the compiled graph."""
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
        + pt.sum(y * log_theta + (n - y) * log1m_theta + np.asarray(log_binom(y, n)))
    )
    return from_pytensor(
        logp,
        [log_a, log_b, z],
        deterministics={"alpha": alpha, "beta": beta, "theta": pt.sigmoid(z)},
        dims={"theta": ("experiment",), "logit_theta": ("experiment",)},
        coords={"experiment": np.arange(len(y))},
    )


def eight_schools_noncentered(y: Any, sigma: Any) -> Model:
    mu, log_tau = pt.dscalar("mu"), pt.dscalar("log_tau")
    theta_trans = pt.dvector("theta_trans", shape=(len(y),))
    tau = pt.exp(log_tau)
    theta = mu + tau * theta_trans
    logp = (
        normal_logpdf(mu, 0.0, 5.0)
        + half_cauchy_logpdf(tau, 5.0)
        + log_tau
        + pt.sum(normal_logpdf(theta_trans, 0.0, 1.0))
        + pt.sum(normal_logpdf(np.asarray(y), theta, np.asarray(sigma)))
    )
    return from_pytensor(
        logp,
        [mu, log_tau, theta_trans],
        deterministics={"tau": tau, "theta": theta},
        dims={"theta": ("school",), "theta_trans": ("school",)},
        coords=SCHOOL,
    )


def eight_schools_centered(y: Any, sigma: Any) -> Model:
    mu, log_tau = pt.dscalar("mu"), pt.dscalar("log_tau")
    theta = pt.dvector("theta", shape=(len(y),))
    tau = pt.exp(log_tau)
    logp = (
        normal_logpdf(mu, 0.0, 5.0)
        + half_cauchy_logpdf(tau, 5.0)
        + log_tau
        + pt.sum(normal_logpdf(theta, mu, tau))
        + pt.sum(normal_logpdf(np.asarray(y), theta, np.asarray(sigma)))
    )
    return from_pytensor(
        logp,
        [mu, log_tau, theta],
        deterministics={"tau": tau},
        dims={"theta": ("school",)},
        coords=SCHOOL,
    )


def linear_regression(x: Any, y: Any) -> Model:
    """`x`, `y` are data inputs (traced, not constants): `replace_data({"x": ..., "y": ...})`
    refits new data without recompiling (what simulation-based calibration needs)."""
    weight, bias, log_noise = pt.dscalar("weight"), pt.dscalar("bias"), pt.dscalar("log_noise")
    x_in, y_in = pt.dvector("x", shape=np.shape(x)), pt.dvector("y", shape=np.shape(y))
    noise = pt.exp(log_noise)
    logp = (
        normal_logpdf(weight, 0.0, 5.0)
        + normal_logpdf(bias, 0.0, 2.0)
        + normal_logpdf(log_noise, -1.0, 1.0)  # LogNormal(-1, 1) times the Jacobian
        + pt.sum(normal_logpdf(y_in, weight * x_in + bias, noise))
    )
    return from_pytensor(
        logp,
        [weight, bias, log_noise],
        deterministics={"noise": noise},
        data={x_in: np.asarray(x), y_in: np.asarray(y)},
    )


def logistic_regression(x: Any, y: Any) -> Model:
    """`x`, `y` are data inputs (traced): 100,000 x 50 rows stay out of the compiled
    program (as constants they would be embedded in it)."""
    weights = pt.dvector("weights", shape=(x.shape[1],))
    bias = pt.dscalar("bias")
    x_in, y_in = pt.dmatrix("x", shape=np.shape(x)), pt.dvector("y", shape=np.shape(y))
    logits = pt.dot(x_in, weights) + bias
    logp = (
        pt.sum(normal_logpdf(weights, 0.0, 1.0))
        + normal_logpdf(bias, 0.0, 2.0)
        + pt.sum(-y_in * pt.softplus(-logits) - (1 - y_in) * pt.softplus(logits))
    )
    return from_pytensor(
        logp,
        [weights, bias],
        data={x_in: np.asarray(x), y_in: np.asarray(y)},
        dims={"weights": ("feature",)},
    )


def gp(x: Any, y: Any) -> Model:
    """The exact GP: Cholesky of `K + noise² I`, triangular solve, as in
    `logdensity.zoo.gp_log_marginal_likelihood`."""
    x, y = np.asarray(x), np.asarray(y)
    names = ("lengthscale", "amplitude", "noise")
    logs = {n: pt.dscalar(f"log_{n}") for n in names}
    values = {n: pt.exp(v) for n, v in logs.items()}
    sq = (x[:, None] - x[None, :]) ** 2
    cov = values["amplitude"] ** 2 * pt.exp(-0.5 * sq / values["lengthscale"] ** 2)
    cov = cov + values["noise"] ** 2 * np.eye(len(x))
    chol = pt.linalg.cholesky(cov)
    alpha = pt.linalg.solve_triangular(chol, y, lower=True)
    log_ml = -0.5 * pt.sum(alpha**2) - pt.sum(pt.log(pt.diag(chol))) - 0.5 * len(x) * LOG_2PI
    prior = sum(
        normal_logpdf(logs[n], loc, scale)  # LogNormal times the Jacobian exp(u)
        for n, (loc, scale) in GP_PRIORS.items()
    )
    return from_pytensor(prior + log_ml, [logs[n] for n in names], deterministics=values)


def hierarchical(y: Any) -> Model:
    """`y` is a data input (traced)."""
    mu, log_tau, log_sigma = pt.dscalar("mu"), pt.dscalar("log_tau"), pt.dscalar("log_sigma")
    theta_trans = pt.dvector("theta_trans", shape=(y.shape[0],))
    y_in = pt.dmatrix("y", shape=np.shape(y))
    tau, sigma = pt.exp(log_tau), pt.exp(log_sigma)
    theta = mu + tau * theta_trans
    logp = (
        normal_logpdf(mu, 0.0, 5.0)
        + normal_logpdf(log_tau, 0.0, 1.0)  # LogNormal(0, 1) times the Jacobian
        + normal_logpdf(log_sigma, 0.0, 1.0)
        + pt.sum(normal_logpdf(theta_trans, 0.0, 1.0))
        + pt.sum(normal_logpdf(y_in, theta[:, None], sigma))
    )
    return from_pytensor(
        logp,
        [mu, log_tau, log_sigma, theta_trans],
        deterministics={"tau": tau, "sigma": sigma},
        data={y_in: np.asarray(y)},
        dims={"theta_trans": ("group",)},
    )
