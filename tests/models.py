"""Small plain-JAX models shared by the tests."""

import jax
import jax.numpy as jnp
import numpy as np

import logdensity as ld


def normal_invgamma(y, a0=3.0, b0=2.0):
    """y_i ~ N(0, sigma2), sigma2 ~ InvGamma(a0, b0); sampled on log(sigma2).

    Conjugate: sigma2 | y ~ InvGamma(a0 + n/2, b0 + sum(y^2)/2). The log-Jacobian of
    exp is part of the density, so a missing Jacobian shows in the posterior.
    """
    y = jnp.asarray(y)
    n, ss = y.shape[0], float(jnp.sum(y**2))

    def logdensity_fn(p, data):
        log_s2 = p["log_sigma2"]
        s2 = jnp.exp(log_s2)
        prior = -(a0 + 1) * log_s2 - b0 / s2
        lik = -0.5 * data.shape[0] * log_s2 - 0.5 * jnp.sum(data**2) / s2
        return prior + lik + log_s2

    model = ld.from_jax(
        logdensity_fn,
        {"log_sigma2": jnp.zeros(())},
        constrain=lambda p, d: {"sigma2": jnp.exp(p["log_sigma2"])},
        unconstrain=lambda v, d: {"log_sigma2": jnp.log(v["sigma2"])},
        data=y,
    )
    a, b = a0 + n / 2, b0 + ss / 2
    truth = {"mean": b / (a - 1), "sd": b / ((a - 1) * np.sqrt(a - 2))}
    return model, truth


def conjugate_normal(y, prior_sd=10.0):
    """mu ~ N(0, prior_sd^2) (vector of 3), y_ij ~ N(mu_j, 1). Exact Gaussian posterior."""
    y = jnp.asarray(y)

    def logdensity_fn(p):
        mu = p["mu"]
        return -0.5 * jnp.sum(mu**2) / prior_sd**2 - 0.5 * jnp.sum((y - mu) ** 2)

    n = y.shape[0]
    post_var = 1.0 / (1.0 / prior_sd**2 + n)
    truth = {"mean": np.asarray(post_var * y.sum(0)), "sd": np.sqrt(post_var)}
    model = ld.from_jax(
        logdensity_fn,
        {"mu": jnp.zeros(y.shape[1])},
        constrain=lambda p: {"mu": p["mu"], "mu_total": jnp.sum(p["mu"])},
        unconstrain=lambda v: {"mu": jnp.asarray(v["mu"])},
        dims={"mu": ("group",)},
        coords={"group": ["a", "b", "c"]},
        deterministics=("mu_total",),
    )
    return model, truth


def funnel():
    """Neal's funnel, 1 + 9 dims: a geometry NUTS cannot sample without divergences."""

    def logdensity_fn(p):
        v, x = p["v"], p["x"]
        return -0.5 * v**2 / 9.0 - 0.5 * jnp.sum(x**2) * jnp.exp(-v) - 4.5 * v

    return ld.from_jax(logdensity_fn, {"v": jnp.zeros(()), "x": jnp.zeros(9)})


def draws(seed=0, n=50):
    """`n` rows of three groups with means 1, -2, 0.5 and unit noise."""
    return jax.random.normal(jax.random.key(seed), (n, 3)) + jnp.array([1.0, -2.0, 0.5])


def scale_draws(seed=0, n=20, sd=1.5):
    """`n` draws of N(0, sd^2)."""
    return sd * jax.random.normal(jax.random.key(seed), (n,))


def compiled_programs() -> dict[str, int]:
    """How many programs the loop has compiled so far in this process, by name (the
    jit cache sizes of its start and chunk programs)."""
    from logdensity._sample import _programs

    return {"start": _programs.start._cache_size(), "chunk": _programs.chunk._cache_size()}


@jax.custom_jvp
def nan_gradient(x):
    """0 everywhere, with a NaN derivative: a finite log density, a NaN gradient."""
    return 0.0 * x


@nan_gradient.defjvp
def _nan_gradient_jvp(primals, tangents):
    return nan_gradient(primals[0]), jnp.nan * tangents[0]


def eight_schools_half_normal(y, sigma):
    """NumPyro's non-centered eight schools with mu ~ N(0, 5), tau ~ HalfNormal(5)."""
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfNormal(5.0))
    with numpyro.plate("school", 8):
        theta_trans = numpyro.sample("theta_trans", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu + tau * theta_trans, sigma), obs=y)
