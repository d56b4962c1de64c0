"""The zoo in plain JAX: hand-written log densities with hand-written log-Jacobians."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.nn import log_sigmoid
from jax.scipy.special import betaln
from jax.scipy.stats import norm
from jaxtyping import Array, Scalar

from .._model import Model
from ..adapters._helpers import default_float
from ..adapters._jax import from_jax
from ._references import GP_PRIORS, gp_log_marginal_likelihood, half_cauchy_logpdf, log_binom

SCHOOL = {"school": np.arange(8)}


def _float(d: dict[str, Any]) -> dict[str, Any]:
    dtype = default_float()
    return {k: jnp.asarray(v, dtype) for k, v in d.items()}


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


def rat_tumors(y: Any, n: Any) -> Model:
    """The rat-tumor model with hand-written log-Jacobians.

    Position: `{"log_a": (), "log_b": (), "logit_theta": (J,)}`. The log density is the
    full log joint (binomial coefficients included, computed once as data) plus the
    log-Jacobians of `exp` and `sigmoid`. `constrain` returns `alpha`, `beta` and
    `theta` (dim `experiment`)."""
    y, n = np.asarray(y), np.asarray(n)
    dtype = default_float()
    return from_jax(
        _rat_tumors_logdensity,
        {
            "log_a": jnp.zeros((), dtype),
            "log_b": jnp.zeros((), dtype),
            "logit_theta": jnp.zeros(len(y), dtype),
        },
        constrain=_rat_tumors_constrain,
        unconstrain=_rat_tumors_unconstrain,
        # log C(n, y) is constant in the parameters: computed once, here
        data=_float({"y": y, "n": n, "log_binom": log_binom(y, n)}),
        dims={"theta": ("experiment",)},
        coords={"experiment": np.arange(len(y))},
    )


def _noncentered_logdensity(p: dict[str, Any], d: dict[str, Any]) -> Any:
    tau = jnp.exp(p["log_tau"])
    theta = p["mu"] + tau * p["theta_trans"]
    return (
        norm.logpdf(p["mu"], 0.0, 5.0)
        + half_cauchy_logpdf(tau, 5.0)
        + p["log_tau"]  # log|d tau / d log_tau|
        + jnp.sum(norm.logpdf(p["theta_trans"]))
        + jnp.sum(norm.logpdf(d["y"], theta, d["sigma"]))
    )


def _noncentered_constrain(p: dict[str, Any], d: Any) -> dict[str, Any]:
    tau = jnp.exp(p["log_tau"])
    return {
        "mu": p["mu"],
        "tau": tau,
        "theta_trans": p["theta_trans"],
        "theta": p["mu"] + tau * p["theta_trans"],
    }


def _noncentered_unconstrain(v: dict[str, Any], d: Any) -> dict[str, Any]:
    return {"mu": v["mu"], "log_tau": jnp.log(v["tau"]), "theta_trans": v["theta_trans"]}


def eight_schools_noncentered(y: Any, sigma: Any) -> Model:
    zero = jnp.zeros(())
    return from_jax(
        _noncentered_logdensity,
        {"mu": zero, "log_tau": zero, "theta_trans": jnp.zeros(len(y))},
        constrain=_noncentered_constrain,
        unconstrain=_noncentered_unconstrain,
        data=_float({"y": y, "sigma": sigma}),
        dims={"theta": ("school",), "theta_trans": ("school",)},
        coords=SCHOOL,
        deterministics=("theta",),
    )


def _centered_logdensity(p: dict[str, Any], d: dict[str, Any]) -> Any:
    tau = jnp.exp(p["log_tau"])
    return (
        norm.logpdf(p["mu"], 0.0, 5.0)
        + half_cauchy_logpdf(tau, 5.0)
        + p["log_tau"]
        + jnp.sum(norm.logpdf(p["theta"], p["mu"], tau))
        + jnp.sum(norm.logpdf(d["y"], p["theta"], d["sigma"]))
    )


def _centered_constrain(p: dict[str, Any], d: Any) -> dict[str, Any]:
    return {"mu": p["mu"], "tau": jnp.exp(p["log_tau"]), "theta": p["theta"]}


def _centered_unconstrain(v: dict[str, Any], d: Any) -> dict[str, Any]:
    return {"mu": v["mu"], "log_tau": jnp.log(v["tau"]), "theta": v["theta"]}


def eight_schools_centered(y: Any, sigma: Any) -> Model:
    zero = jnp.zeros(())
    return from_jax(
        _centered_logdensity,
        {"mu": zero, "log_tau": zero, "theta": jnp.zeros(len(y))},
        constrain=_centered_constrain,
        unconstrain=_centered_unconstrain,
        data=_float({"y": y, "sigma": sigma}),
        dims={"theta": ("school",)},
        coords=SCHOOL,
    )


def _linear_logdensity(p: dict[str, Any], d: dict[str, Any]) -> Any:
    noise = jnp.exp(p["log_noise"])
    return (
        norm.logpdf(p["weight"], 0.0, 5.0)
        + norm.logpdf(p["bias"], 0.0, 2.0)
        # LogNormal(-1, 1) density of exp(u) times the Jacobian exp(u): Normal(u | -1, 1)
        + norm.logpdf(p["log_noise"], -1.0, 1.0)
        + jnp.sum(norm.logpdf(d["y"], p["weight"] * d["x"] + p["bias"], noise))
    )


def _linear_constrain(p: dict[str, Any], d: Any) -> dict[str, Any]:
    return {"weight": p["weight"], "bias": p["bias"], "noise": jnp.exp(p["log_noise"])}


def _linear_unconstrain(v: dict[str, Any], d: Any) -> dict[str, Any]:
    return {"weight": v["weight"], "bias": v["bias"], "log_noise": jnp.log(v["noise"])}


def linear_regression(x: Any, y: Any) -> Model:
    zero = jnp.zeros(())
    return from_jax(
        _linear_logdensity,
        {"weight": zero, "bias": zero, "log_noise": zero},
        constrain=_linear_constrain,
        unconstrain=_linear_unconstrain,
        data=_float({"x": x, "y": y}),
    )


def logistic_logdensity(p: dict[str, Any], d: dict[str, Any]) -> Any:
    """`N(weights | 0, 1) N(bias | 0, 2) Π Bernoulli(y | sigmoid(X weights + bias))`
    (all unconstrained: no Jacobian)."""
    logits = d["x"] @ p["weights"] + p["bias"]
    return (
        jnp.sum(norm.logpdf(p["weights"]))
        + norm.logpdf(p["bias"], 0.0, 2.0)
        + jnp.sum(d["y"] * log_sigmoid(logits) + (1 - d["y"]) * log_sigmoid(-logits))
    )


def logistic_regression(x: Any, y: Any) -> Model:
    return from_jax(
        logistic_logdensity,
        {"weights": jnp.zeros(x.shape[1]), "bias": jnp.zeros(())},
        data=_float({"x": x, "y": y}),
        dims={"weights": ("feature",)},
    )


def _gp_logdensity(position: dict[str, Array], data: dict[str, Array]) -> Scalar:
    total = jnp.zeros(())
    values = {}
    for name, (loc, scale) in GP_PRIORS.items():
        log_value = position[f"log_{name}"]
        values[name] = jnp.exp(log_value)
        # LogNormal density of exp(u) times the Jacobian exp(u): Normal(u | loc, scale)
        total += jax.scipy.stats.norm.logpdf(log_value, loc, scale)
    return total + gp_log_marginal_likelihood(**values, x=data["x"], y=data["y"])


def gp(x: Any, y: Any) -> Model:
    """The GP on `log_lengthscale`, `log_amplitude`, `log_noise` (hand-written
    Jacobians), reporting the three on their own scale."""
    names = tuple(GP_PRIORS)
    return from_jax(
        _gp_logdensity,
        {f"log_{n}": jnp.zeros((), default_float()) for n in names},
        constrain=lambda p, d: {n: jnp.exp(p[f"log_{n}"]) for n in names},
        unconstrain=lambda v, d: {f"log_{n}": jnp.log(jnp.asarray(v[n])) for n in names},
        data=_float({"x": x, "y": y}),
    )


def _hierarchical_logdensity(p: dict[str, Any], d: dict[str, Any]) -> Any:
    tau, sigma = jnp.exp(p["log_tau"]), jnp.exp(p["log_sigma"])
    theta = p["mu"] + tau * p["theta_trans"]
    return (
        norm.logpdf(p["mu"], 0.0, 5.0)
        # LogNormal(0, 1) densities times their Jacobians: Normal(u | 0, 1)
        + norm.logpdf(p["log_tau"])
        + norm.logpdf(p["log_sigma"])
        + jnp.sum(norm.logpdf(p["theta_trans"]))
        + jnp.sum(norm.logpdf(d["y"], theta[:, None], sigma))
    )


def _hierarchical_constrain(p: dict[str, Any], d: Any) -> dict[str, Any]:
    return {
        "mu": p["mu"],
        "tau": jnp.exp(p["log_tau"]),
        "sigma": jnp.exp(p["log_sigma"]),
        "theta_trans": p["theta_trans"],
    }


def _hierarchical_unconstrain(v: dict[str, Any], d: Any) -> dict[str, Any]:
    return {
        "mu": v["mu"],
        "log_tau": jnp.log(v["tau"]),
        "log_sigma": jnp.log(v["sigma"]),
        "theta_trans": v["theta_trans"],
    }


def hierarchical(y: Any) -> Model:
    zero = jnp.zeros(())
    return from_jax(
        _hierarchical_logdensity,
        {"mu": zero, "log_tau": zero, "log_sigma": zero, "theta_trans": jnp.zeros(y.shape[0])},
        constrain=_hierarchical_constrain,
        unconstrain=_hierarchical_unconstrain,
        data=_float({"y": y}),
        dims={"theta_trans": ("group",)},
    )
