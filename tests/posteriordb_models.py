"""posteriordb's eight reference posteriors, each written in NumPyro and in plain JAX
(eight schools come from `logdensity.zoo`, in all four backends).

Each builder takes posteriordb's data dict and returns a `LogDensity` whose named values
use posteriordb's parameter names (`beta` for `beta[1]`, ...). Stan's `cauchy(0, s)`,
`normal(0, s)` on a `<lower=0>` parameter are half-Cauchy, half-normal (the truncation
constant does not matter). The plain-JAX versions write every log-Jacobian by hand.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.nn import log_sigmoid
from jax.scipy.special import logsumexp
from jax.scipy.stats import gamma, norm

import logdensity as ld
from logdensity import zoo
from logdensity.zoo._jax import half_cauchy_logpdf

FIXTURES = Path(__file__).parent / "fixtures" / "posteriordb"


def load(name: str) -> tuple[dict, dict]:
    """`(data, reference)` of the posterior `name` (e.g. `"arK-arK"`)."""
    folder = FIXTURES / name
    with zipfile.ZipFile(folder / "data.json.zip") as z:
        data = json.loads(z.read(z.namelist()[0]))
    return data, json.loads((folder / "reference_summary.json").read_text())


def _f(x):
    return jnp.asarray(np.asarray(x, float), jnp.zeros(()).dtype)


def half_normal_logpdf(x, scale):
    return jnp.log(2.0) + norm.logpdf(x, 0.0, scale)


# --- arK: AR(K) -----------------------------------------------------------------------
def _lags(data):
    y, k = np.asarray(data["y"], float), data["K"]
    lags = np.stack([y[k - j : len(y) - j] for j in range(1, k + 1)], axis=1)  # y[t - j]
    return {"y": _f(y[k:]), "lags": _f(lags)}


def ark_numpyro(data):
    import numpyro
    import numpyro.distributions as dist

    def model(y, lags):
        alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
        beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([lags.shape[1]]))
        sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
        numpyro.sample("y", dist.Normal(alpha + lags @ beta, sigma), obs=y)

    return ld.from_numpyro(model, **_lags(data))


def _ark_logdensity(p, d):
    sigma = jnp.exp(p["log_sigma"])
    mu = p["alpha"] + d["lags"] @ p["beta"]
    return (
        norm.logpdf(p["alpha"], 0.0, 10.0)
        + jnp.sum(norm.logpdf(p["beta"], 0.0, 10.0))
        + half_cauchy_logpdf(sigma, 2.5)
        + p["log_sigma"]
        + jnp.sum(norm.logpdf(d["y"], mu, sigma))
    )


def ark_jax(data):
    zero = jnp.zeros(())
    return ld.from_jax(
        _ark_logdensity,
        {"alpha": zero, "beta": jnp.zeros(data["K"]), "log_sigma": zero},
        constrain=lambda p, d: {
            "alpha": p["alpha"],
            "beta": p["beta"],
            "sigma": jnp.exp(p["log_sigma"]),
        },
        data=_lags(data),
    )


# --- garch11: the bound of beta1 moves with alpha1 -----------------------------------
def _garch_sigma(mu, alpha0, alpha1, beta1, y, sigma1):
    def step(sigma_prev, y_prev):
        sigma = jnp.sqrt(alpha0 + alpha1 * (y_prev - mu) ** 2 + beta1 * sigma_prev**2)
        return sigma, sigma

    _, sigmas = jax.lax.scan(step, sigma1, y[:-1])
    return jnp.concatenate([sigma1[None], sigmas])


def garch_numpyro(data):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    def model(y, sigma1):
        mu = numpyro.sample("mu", dist.ImproperUniform(constraints.real, (), ()))
        alpha0 = numpyro.sample("alpha0", dist.ImproperUniform(constraints.positive, (), ()))
        alpha1 = numpyro.sample("alpha1", dist.Uniform(0.0, 1.0))
        # Stan's `real<lower=0, upper=1 - alpha1> beta1` is flat on the interval:
        # Uniform's density 1/(1 - alpha1) is undone by the factor.
        beta1 = numpyro.sample("beta1", dist.Uniform(0.0, 1.0 - alpha1))
        numpyro.factor("beta1_flat", jnp.log1p(-alpha1))
        sigma = _garch_sigma(mu, alpha0, alpha1, beta1, y, sigma1)
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)

    return ld.from_numpyro(model, _f(data["y"]), _f(data["sigma1"]))


def _garch_values(p):
    alpha1 = jax.nn.sigmoid(p["logit_alpha1"])
    return {
        "mu": p["mu"],
        "alpha0": jnp.exp(p["log_alpha0"]),
        "alpha1": alpha1,
        "beta1": (1 - alpha1) * jax.nn.sigmoid(p["logit_beta1"]),
    }


def _garch_logdensity(p, d):
    v = _garch_values(p)
    log_jac = (
        p["log_alpha0"]
        + log_sigmoid(p["logit_alpha1"])
        + log_sigmoid(-p["logit_alpha1"])
        + jnp.log1p(-v["alpha1"])
        + log_sigmoid(p["logit_beta1"])
        + log_sigmoid(-p["logit_beta1"])
    )
    sigma = _garch_sigma(v["mu"], v["alpha0"], v["alpha1"], v["beta1"], d["y"], d["sigma1"])
    return log_jac + jnp.sum(norm.logpdf(d["y"], v["mu"], sigma))


def garch_jax(data):
    zero = jnp.zeros(())
    return ld.from_jax(
        _garch_logdensity,
        {"mu": zero, "log_alpha0": zero, "logit_alpha1": zero, "logit_beta1": zero},
        constrain=lambda p, d: _garch_values(p),
        data={"y": _f(data["y"]), "sigma1": _f(data["sigma1"])},
    )


# --- gp_pois_regr: a latent GP with Poisson counts ------------------------------------
def _gp_f(rho, alpha, f_tilde, x):
    cov = alpha**2 * jnp.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / rho**2)
    cov = cov + 1e-10 * jnp.eye(x.shape[0], dtype=cov.dtype)
    return jnp.linalg.cholesky(cov) @ f_tilde


def gp_pois_numpyro(data):
    import numpyro
    import numpyro.distributions as dist

    def model(x, k):
        rho = numpyro.sample("rho", dist.Gamma(25.0, 4.0))
        alpha = numpyro.sample("alpha", dist.HalfNormal(2.0))
        f_tilde = numpyro.sample("f_tilde", dist.Normal(0.0, 1.0).expand([x.shape[0]]))
        f = numpyro.deterministic("f", _gp_f(rho, alpha, f_tilde, x))
        numpyro.sample("k", dist.Poisson(jnp.exp(f)), obs=k)

    return ld.from_numpyro(model, _f(data["x"]), np.asarray(data["k"]))


def _gp_pois_logdensity(p, d):
    rho, alpha = jnp.exp(p["log_rho"]), jnp.exp(p["log_alpha"])
    f = _gp_f(rho, alpha, p["f_tilde"], d["x"])
    return (
        gamma.logpdf(rho, 25.0, scale=1 / 4.0)
        + half_normal_logpdf(alpha, 2.0)
        + p["log_rho"]
        + p["log_alpha"]
        + jnp.sum(norm.logpdf(p["f_tilde"]))
        + jnp.sum(d["k"] * f - jnp.exp(f) - jax.scipy.special.gammaln(d["k"] + 1))
    )


def gp_pois_jax(data):
    n = data["N"]
    d = {"x": _f(data["x"]), "k": _f(data["k"])}
    return ld.from_jax(
        _gp_pois_logdensity,
        {
            "log_rho": jnp.zeros(()) + np.log(6.0),
            "log_alpha": jnp.zeros(()),
            "f_tilde": jnp.zeros(n),
        },
        constrain=lambda p, d: {
            "rho": jnp.exp(p["log_rho"]),
            "alpha": jnp.exp(p["log_alpha"]),
            "f_tilde": p["f_tilde"],
            "f": _gp_f(jnp.exp(p["log_rho"]), jnp.exp(p["log_alpha"]), p["f_tilde"], d["x"]),
        },
        data=d,
        deterministics=("f",),
    )


# --- kidiq kidscore_momiq: flat prior on the coefficients -----------------------------
def kidiq_numpyro(data):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    def model(mom_iq, kid_score):
        beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), (2,)))
        sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
        numpyro.sample("kid_score", dist.Normal(beta[0] + beta[1] * mom_iq, sigma), obs=kid_score)

    return ld.from_numpyro(model, _f(data["mom_iq"]), _f(data["kid_score"]))


def _kidiq_logdensity(p, d):
    sigma = jnp.exp(p["log_sigma"])
    mean = p["beta"][0] + p["beta"][1] * d["mom_iq"]
    return (
        half_cauchy_logpdf(sigma, 2.5)
        + p["log_sigma"]
        + jnp.sum(norm.logpdf(d["kid_score"], mean, sigma))
    )


def kidiq_jax(data):
    return ld.from_jax(
        _kidiq_logdensity,
        {"beta": jnp.zeros(2), "log_sigma": jnp.zeros(())},
        constrain=lambda p, d: {"beta": p["beta"], "sigma": jnp.exp(p["log_sigma"])},
        data={"mom_iq": _f(data["mom_iq"]), "kid_score": _f(data["kid_score"])},
    )


# --- low_dim_gauss_mix: a two-component mixture with ordered means --------------------
def _mixture_loglik(mu, sigma, theta, y):
    return jnp.sum(
        logsumexp(
            jnp.stack(
                [
                    jnp.log(theta) + norm.logpdf(y, mu[0], sigma[0]),
                    jnp.log1p(-theta) + norm.logpdf(y, mu[1], sigma[1]),
                ]
            ),
            axis=0,
        )
    )


def gauss_mix_numpyro(data):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    def model(y):
        mu = numpyro.sample("mu", dist.ImproperUniform(constraints.ordered_vector, (), (2,)))
        numpyro.factor("mu_prior", jnp.sum(norm.logpdf(mu, 0.0, 2.0)))
        sigma = numpyro.sample("sigma", dist.HalfNormal(2.0).expand([2]))
        theta = numpyro.sample("theta", dist.Beta(5.0, 5.0))
        numpyro.factor("y", _mixture_loglik(mu, sigma, theta, y))

    return ld.from_numpyro(model, _f(data["y"]))


def _gauss_mix_values(p):
    mu = jnp.stack([p["mu_raw"][0], p["mu_raw"][0] + jnp.exp(p["mu_raw"][1])])
    return {"mu": mu, "sigma": jnp.exp(p["log_sigma"]), "theta": jax.nn.sigmoid(p["logit_theta"])}


def _gauss_mix_logdensity(p, d):
    v = _gauss_mix_values(p)
    log_jac = (
        p["mu_raw"][1]
        + jnp.sum(p["log_sigma"])
        + log_sigmoid(p["logit_theta"])
        + log_sigmoid(-p["logit_theta"])
    )
    prior = (
        jnp.sum(norm.logpdf(v["mu"], 0.0, 2.0))
        + jnp.sum(half_normal_logpdf(v["sigma"], 2.0))
        + jax.scipy.stats.beta.logpdf(v["theta"], 5.0, 5.0)
    )
    return log_jac + prior + _mixture_loglik(v["mu"], v["sigma"], v["theta"], d["y"])


def gauss_mix_jax(data):
    return ld.from_jax(
        _gauss_mix_logdensity,
        {"mu_raw": jnp.array([-1.0, 1.0]), "log_sigma": jnp.zeros(2), "logit_theta": jnp.zeros(())},
        constrain=lambda p, d: _gauss_mix_values(p),
        data={"y": _f(data["y"])},
    )


# --- sblrc-blr: Bayesian linear regression --------------------------------------------
def blr_numpyro(data):
    import numpyro
    import numpyro.distributions as dist

    def model(x, y):
        beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([x.shape[1]]))
        sigma = numpyro.sample("sigma", dist.HalfNormal(10.0))
        numpyro.sample("y", dist.Normal(x @ beta, sigma), obs=y)

    return ld.from_numpyro(model, _f(data["X"]), _f(data["y"]))


def _blr_logdensity(p, d):
    sigma = jnp.exp(p["log_sigma"])
    return (
        jnp.sum(norm.logpdf(p["beta"], 0.0, 10.0))
        + half_normal_logpdf(sigma, 10.0)
        + p["log_sigma"]
        + jnp.sum(norm.logpdf(d["y"], d["x"] @ p["beta"], sigma))
    )


def blr_jax(data):
    return ld.from_jax(
        _blr_logdensity,
        {"beta": jnp.zeros(data["D"]), "log_sigma": jnp.zeros(())},
        constrain=lambda p, d: {"beta": p["beta"], "sigma": jnp.exp(p["log_sigma"])},
        data={"x": _f(data["X"]), "y": _f(data["y"])},
    )


# --- diamonds: brms linear regression, 24 correlated predictors ------------------------
def _diamonds_data(data):
    x = np.asarray(data["X"], float)[:, 1:]  # the brms design matrix without its intercept
    return {"xc": _f(x - x.mean(axis=0)), "y": _f(data["Y"])}


def diamonds_numpyro(data):
    import numpyro
    import numpyro.distributions as dist

    def model(xc, y):
        b = numpyro.sample("b", dist.Normal(0.0, 1.0).expand([xc.shape[1]]))
        intercept = numpyro.sample("Intercept", dist.StudentT(3.0, 8.0, 10.0))
        # Stan's student_t_lpdf(sigma | 3, 0, 10) - student_t_lccdf(0 | 3, 0, 10) on sigma > 0
        sigma = numpyro.sample("sigma", dist.HalfCauchy(1.0))
        numpyro.factor(
            "sigma_prior",
            dist.StudentT(3.0, 0.0, 10.0).log_prob(sigma)
            + jnp.log(2.0)
            - dist.HalfCauchy(1.0).log_prob(sigma),
        )
        numpyro.sample("y", dist.Normal(intercept + xc @ b, sigma), obs=y)

    return ld.from_numpyro(model, **_diamonds_data(data))


def _diamonds_logdensity(p, d):
    from jax.scipy.stats import t as student_t

    sigma = jnp.exp(p["log_sigma"])
    return (
        jnp.sum(norm.logpdf(p["b"]))
        + student_t.logpdf(p["Intercept"], 3.0, 8.0, 10.0)
        + student_t.logpdf(sigma, 3.0, 0.0, 10.0)
        + jnp.log(2.0)
        + p["log_sigma"]
        + jnp.sum(norm.logpdf(d["y"], p["Intercept"] + d["xc"] @ p["b"], sigma))
    )


def diamonds_jax(data):
    zero = jnp.zeros(())
    return ld.from_jax(
        _diamonds_logdensity,
        {"b": jnp.zeros(24), "Intercept": zero, "log_sigma": zero},
        constrain=lambda p, d: {
            "b": p["b"],
            "Intercept": p["Intercept"],
            "sigma": jnp.exp(p["log_sigma"]),
        },
        data=_diamonds_data(data),
    )


# --- arma11: ARMA(1, 1), no reference draws (tests/fixtures/arma/README.md) -----------
def load_arma() -> dict:
    """posteriordb's `arma` data: `{"T": 200, "y": [...]}`."""
    return json.loads((FIXTURES.parent / "arma" / "data.json").read_text())


def _arma11_logdensity(p, d):
    y = d["y"]
    sigma = jnp.exp(p["log_sigma"])
    mu, phi, theta = p["mu"], p["phi"], p["theta"]
    err1 = y[0] - (mu + phi * mu)  # Stan's err[0] == 0

    def step(err_prev, ys):
        y_prev, y_t = ys
        err = y_t - (mu + phi * y_prev + theta * err_prev)
        return err, err

    _, errs = jax.lax.scan(step, err1, (y[:-1], y[1:]))
    err = jnp.concatenate([err1[None], errs])
    return (
        norm.logpdf(mu, 0.0, 10.0)
        + norm.logpdf(phi, 0.0, 2.0)
        + norm.logpdf(theta, 0.0, 2.0)
        + half_cauchy_logpdf(sigma, 2.5)
        + p["log_sigma"]
        + jnp.sum(norm.logpdf(err, 0.0, sigma))
    )


def arma11_jax(data):
    """posteriordb's arma11 in plain JAX: the moving-average recursion `err[t] = y[t] -
    mu - phi y[t-1] - theta err[t-1]` is a `lax.scan`; it grows like theta^t, so a start
    with |theta| > 1 overflows to a non-finite or enormous log density."""
    zero = jnp.zeros(())
    return ld.from_jax(
        _arma11_logdensity,
        {"mu": zero, "phi": zero, "theta": zero, "log_sigma": zero},
        constrain=lambda p, d: {
            "mu": p["mu"],
            "phi": p["phi"],
            "theta": p["theta"],
            "sigma": jnp.exp(p["log_sigma"]),
        },
        data={"y": _f(data["y"])},
    )


def _schools(model, backend):
    def build(data):
        y, sigma = np.asarray(data["y"], float), np.asarray(data["sigma"], float)
        return zoo.build(model, backend, y=y, sigma=sigma)

    return build


#: posterior name -> {backend: builder(data) -> LogDensity}
POSTERIORS = {
    "arK-arK": {"numpyro": ark_numpyro, "jax": ark_jax},
    "eight_schools-eight_schools_noncentered": {
        b: _schools("eight_schools_noncentered", b) for b in zoo.BACKENDS
    },
    "eight_schools-eight_schools_centered": {
        b: _schools("eight_schools_centered", b) for b in ("numpyro", "jax")
    },
    "garch-garch11": {"numpyro": garch_numpyro, "jax": garch_jax},
    "gp_pois_regr-gp_pois_regr": {"numpyro": gp_pois_numpyro, "jax": gp_pois_jax},
    "kidiq-kidscore_momiq": {"numpyro": kidiq_numpyro, "jax": kidiq_jax},
    "low_dim_gauss_mix-low_dim_gauss_mix": {"numpyro": gauss_mix_numpyro, "jax": gauss_mix_jax},
    "sblrc-blr": {"numpyro": blr_numpyro, "jax": blr_jax},
    "diamonds-diamonds": {"numpyro": diamonds_numpyro, "jax": diamonds_jax},
}
