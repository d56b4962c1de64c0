"""`logdensity.predict` and `flat_draws`: NumPyro's observed sites predicted at new
inputs against NumPyro's own `Predictive`, at the model's own inputs with the pointwise
log-likelihood, from the prior; Equinox modules rebuilt over the draws; errors."""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import logdensity as ld
from logdensity import zoo

from .conftest import short_run

numpyro = pytest.importorskip("numpyro")
import numpyro.distributions as dist  # noqa: E402

FAST = {"num_chains": 2, "num_warmup": 300, "num_samples": 300, "progress_bar": False}


def linear_regression(x, y=None):
    a = numpyro.sample("a", dist.Normal(0, 2))
    b = numpyro.sample("b", dist.Normal(0, 2))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1))
    with numpyro.plate("point", x.shape[0]):
        mu = numpyro.deterministic("mu", a * x + b)
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def _data(n=80):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, n)
    return x, 1.5 * x - 0.5 + 0.3 * rng.normal(size=n)


def _z(ours, theirs, **mcse):
    """|ours - theirs| / sqrt(mcse_ours^2 + mcse_theirs^2), per grid point."""
    se = np.hypot(az.mcse(ours, **mcse)["y"].values, az.mcse(theirs, **mcse)["y"].values)
    if "prob" in mcse:
        q = mcse["prob"]
        gap = ours["y"].quantile(q, dim=("chain", "draw")) - theirs["y"].quantile(
            q, dim=("chain", "draw")
        )
    else:
        gap = ours["y"].mean(("chain", "draw")) - theirs["y"].mean(("chain", "draw"))
    return np.abs(gap.values) / se


@pytest.mark.slow  # two posteriors sampled: 24 s
def test_predictive_band_at_new_inputs_matches_numpyro_predictive(x64):
    """Tutorial 001's band: y at a 100-point grid, from `predict(model, idata, grid)`
    (the model built with `y` observed, called at the grid with `y=None`), against
    NumPyro's own `MCMC` + `Predictive` at the grid. Mean, 5% and 95% quantiles at every
    grid point agree within |z| < 4.5 of both sides' MCSE (300 comparisons, Bonferroni
    at 0.2%)."""
    from numpyro.infer import MCMC, NUTS, Predictive

    x, y = _data()
    grid = np.linspace(-3, 3, 100)
    model = ld.from_numpyro(linear_regression, x, y=y)
    idata = ld.sample(model, jax.random.key(0), num_warmup=500, progress_bar=False)
    ld.predict(model, idata, grid, rng_key=jax.random.key(1))
    ours = idata.predictions
    assert ours["y"].dims == ("chain", "draw", "point")
    assert ours["y"].shape == (4, 1000, 100)
    np.testing.assert_allclose(idata.predictions_constant_data["x"], grid)
    assert idata.predictions_constant_data["x"].dims == ("point",)
    # the regression line at the grid is the deterministic, computed from the draws
    post = idata.posterior
    line = post["a"].values[..., None] * grid + post["b"].values[..., None]
    np.testing.assert_allclose(ours["mu"].values, line, rtol=1e-10)

    mcmc = MCMC(NUTS(linear_regression), num_warmup=500, num_samples=1000, num_chains=4,
                chain_method="vectorized", progress_bar=False)  # fmt: skip
    mcmc.run(jax.random.key(2), x, y=y)
    samples = mcmc.get_samples(group_by_chain=True)
    simulated = Predictive(linear_regression, samples, batch_ndims=2)(jax.random.key(3), grid)
    theirs = az.from_dict(
        posterior={"y": np.asarray(simulated["y"])}, dims={"y": ["point"]}
    ).posterior
    assert _z(ours, theirs).max() < 4.5
    for q in (0.05, 0.95):
        assert _z(ours, theirs, method="quantile", prob=q).max() < 4.5, q


@short_run
def test_posterior_predictive_at_the_models_own_inputs():
    """No new inputs: the observed site is simulated at the data (posterior_predictive),
    with its pointwise log-likelihood (log N(y_i | a x_i + b, sigma) per draw) and the
    observed data, as ArviZ's LOO reads them."""
    x, y = _data()
    model = ld.from_numpyro(linear_regression, x, y=y)
    idata = ld.sample(model, jax.random.key(0), **FAST)
    assert ld.predict(model, idata, rng_key=jax.random.key(1), batch_size=128) is idata
    assert set(idata.posterior_predictive.data_vars) == {"y"}
    assert idata.posterior_predictive["y"].shape == (2, 300, 80)
    post = idata.posterior
    mean = post["a"].values[..., None] * x + post["b"].values[..., None]
    expected = scipy.stats.norm.logpdf(y, mean, post["sigma"].values[..., None])
    np.testing.assert_allclose(idata.log_likelihood["y"].values, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(idata.observed_data["y"].values, y)
    resid = idata.posterior_predictive["y"].values - mean
    assert 0.25 < resid.std() < 0.35  # the noise sd, 0.3
    assert az.loo(idata).p_loo < 5


def test_prior_predictive(x64):
    """`idata=None`: draws from the prior (a, b ~ N(0, 2), sigma ~ HalfNormal(1)) and
    the observations they imply, at new inputs; the prior's moments within 4 standard
    errors over 4,000 draws."""
    grid = np.linspace(-1, 1, 5)
    model = ld.from_numpyro(linear_regression, *_data())
    prior = ld.predict(model, None, grid, rng_key=jax.random.key(0), num_samples=4000)
    assert set(prior.groups()) == {"prior", "prior_predictive"}
    assert set(prior.prior.data_vars) == {"a", "b", "sigma", "mu"}
    a = prior.prior["a"].values.ravel()
    assert abs(a.mean()) < 4 * 2 / np.sqrt(4000)
    assert abs(a.std() - 2) < 4 * 2 / np.sqrt(2 * 4000)
    # var(y at x) = var(a) x^2 + var(b) + E[sigma^2] = 4 x^2 + 4 + 1
    y = prior.prior_predictive["y"].values.reshape(-1, 5)
    np.testing.assert_allclose(y.var(0), 4 * grid**2 + 5, rtol=0.15)
    assert prior.prior_predictive["y"].dims == ("chain", "draw", "point")


@short_run
def test_equinox_modules_rebuilt_over_the_draws(x64):
    """An Equinox model's `fn(module, rng_key)` runs on the module rebuilt from every
    draw, vmapped in batches: the line at a grid equals weight * x + bias per draw, in
    `predictions` with the grid as constant data and the dims given."""
    data = zoo.data("linear_regression")
    model = zoo.build("linear_regression", "equinox", x=data["x"], y=data["y"])
    idata = ld.sample(model, jax.random.key(1), **FAST)
    grid = jnp.linspace(-2, 2, 11)

    def line(module, key):
        mean = module(grid)
        return {"f": mean, "y": mean + module.noise * jax.random.normal(key, grid.shape)}

    ld.predict(model, idata, rng_key=jax.random.key(2), fn=line, batch_size=64,
               constant_data={"x": grid}, dims={"f": ["x"], "y": ["x"]})  # fmt: skip
    post = idata.posterior
    expected = post["weight"].values[..., None] * np.asarray(grid) + post["bias"].values[..., None]
    np.testing.assert_allclose(idata.predictions["f"].values, expected, rtol=1e-10)
    assert idata.predictions["y"].dims == ("chain", "draw", "x")
    resid = (idata.predictions["y"] - idata.predictions["f"]).values
    np.testing.assert_allclose(resid.std(), float(post["noise"].mean()), rtol=0.1)
    np.testing.assert_allclose(idata.predictions_constant_data["x"], grid)


def test_flat_draws_keeps_vector_sites_whole():
    """`(chain * draw, *shape)`, chain-major, a vector site's entries kept on their own
    axis (the `reshape(-1)` idiom mixes them into the draws)."""
    theta = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    idata = az.from_dict(posterior={"theta": theta, "mu": theta[..., 0]})
    flat = ld.flat_draws(idata)
    assert flat["theta"].shape == (6, 4)
    np.testing.assert_array_equal(flat["theta"][3], theta[1, 0])
    np.testing.assert_array_equal(flat["mu"], theta[..., 0].ravel())
    with pytest.raises(KeyError, match="lacks \\['nope'\\]"):
        ld.flat_draws(idata, var_names=["nope"])
    with pytest.raises(KeyError, match="no 'prior' group"):
        ld.flat_draws(idata, "prior")


def test_predict_errors_name_the_problem():
    def unobserved(x):
        numpyro.sample("a", dist.Normal(0, 1))

    x, y = _data(10)
    model = ld.from_numpyro(unobserved, x)
    idata = az.from_dict(posterior={"a": np.zeros((1, 5))})
    with pytest.raises(ValueError, match="unobserved has no observed sample site"):
        ld.predict(model, idata, rng_key=jax.random.key(0))
    regression = ld.from_numpyro(linear_regression, x, y=y)
    with pytest.raises(ValueError, match="lacks the model's latent values \\['b', 'sigma'\\]"):
        ld.predict(regression, idata, rng_key=jax.random.key(0))
    with pytest.raises(TypeError, match="do not fit linear_regression"):
        ld.predict(regression, idata, x, y, x, rng_key=jax.random.key(0))
    plain = ld.from_jax(lambda p: -jnp.sum(p**2), jnp.zeros(2))
    with pytest.raises(TypeError, match="needs fn="):
        ld.predict(plain, idata, rng_key=jax.random.key(0))
    with pytest.raises(TypeError, match="new inputs go into fn"):
        ld.predict(plain, idata, x, rng_key=jax.random.key(0), fn=lambda v, k: v)
