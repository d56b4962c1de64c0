"""The zoo in plain JAX: hand-written log densities with hand-written log-Jacobians."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from jax.nn import log_sigmoid
from jax.scipy.stats import norm

from .. import examples
from .._model import Model
from ..adapters._jax import from_jax

SCHOOL = {"school": np.arange(8)}


def half_cauchy_logpdf(x: Any, scale: float) -> Any:
    """`log HalfCauchy(x | scale)` for x ≥ 0: `log(2 / (π scale)) - log(1 + (x / scale)²)`."""
    return jnp.log(2.0 / (jnp.pi * scale)) - jnp.log1p((x / scale) ** 2)


def _float(d: dict[str, Any]) -> dict[str, Any]:
    dtype = jnp.zeros(()).dtype
    return {k: jnp.asarray(v, dtype) for k, v in d.items()}


def rat_tumors(y: Any, n: Any) -> Model:
    return examples.rat_tumors_jax(y.astype(int), n.astype(int))


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


def gp(x: Any, y: Any) -> Model:
    return examples.gp_jax(x, y)


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
