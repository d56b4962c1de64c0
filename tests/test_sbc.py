"""Simulation-based calibration (Talts et al. 2018; Modrák et al. 2023) of the zoo's
linear regression in every backend, of NumPyro's eight schools with a half-normal
prior, and of a broken model (one log-Jacobian removed) that it must catch.

200 simulations, L = 99 draws thinned by 3 after 500 warmup steps, ranks of every
parameter and of the joint log-likelihood; uniformity by Pearson's χ² over 10 bins,
Bonferroni over the quantities. Correct models: p > 0.01. Broken: p < 1e-4.
Three data points only, so the prior matters: with eight, the likelihood swamps the
wrong prior of the broken model and its SBC p-value is 0.16 (measured); with three it
is 2e-14.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.scipy.stats import norm

import logdensity as ld
from logdensity import zoo
from logdensity.testing import sbc
from logdensity.zoo import _jax as zoo_jax

from . import models

X = np.linspace(-2.0, 2.0, 3)
NEEDS = {"numpyro": "numpyro", "pytensor": "pytensor", "equinox": "parax", "jax": "jax"}


def simulate(key):
    """The zoo's priors: weight ~ N(0, 5), bias ~ N(0, 2), noise ~ LogNormal(-1, 1); the
    data in the form every backend's `replace_data` takes."""
    k = jax.random.split(key, 4)
    weight, bias = 5.0 * jax.random.normal(k[0]), 2.0 * jax.random.normal(k[1])
    noise = jnp.exp(-1.0 + jax.random.normal(k[2]))
    y = weight * X + bias + noise * jax.random.normal(k[3], X.shape)
    return {"weight": weight, "bias": bias, "noise": noise}, {"x": jnp.asarray(X), "y": y}


def log_likelihood(values, data):
    mean = values["weight"] * X + values["bias"]
    return {"log_likelihood": jnp.sum(norm.logpdf(data["y"], mean, values["noise"]))}


def _sbc(model, seed=0, **kwargs):
    return sbc(
        model,
        simulate,
        jax.random.key(seed),
        num_simulations=200,
        num_draws=99,
        thin=3,
        num_warmup=500,
        test_quantities=log_likelihood,
        **kwargs,
    )


def _broken_linear_regression():
    """The plain-JAX linear regression with log|d noise / d log_noise| left out: the
    prior on noise silently becomes LogNormal(-2, 1)."""
    good = zoo.build("linear_regression", "jax", x=X, y=np.zeros(len(X)))
    return ld.from_jax(
        lambda p, d: zoo_jax._linear_logdensity(p, d) - p["log_noise"],
        good.initial_position,
        constrain=zoo_jax._linear_constrain,
        unconstrain=zoo_jax._linear_unconstrain,
        data=good.data,
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", zoo.BACKENDS)
def test_linear_regression_is_calibrated(backend, x64):
    pytest.importorskip(NEEDS[backend])
    model = zoo.build("linear_regression", backend, x=X, y=np.zeros(len(X)))
    result = _sbc(model)
    print(f"\nSBC linear_regression [{backend}]: p = {result.p_value:.3f}, worst {result.worst()}")
    assert set(result.ranks) == {"weight", "bias", "noise", "log_likelihood"}
    assert all(r.shape == (200,) and r.min() >= 0 and r.max() <= 99 for r in result.ranks.values())
    assert result.p_value > 0.01, result.p_values


@pytest.mark.slow
def test_a_missing_jacobian_is_detected(x64):
    result = _sbc(_broken_linear_regression())
    print(f"\nSBC broken linear_regression: p = {result.p_value:.2e}, worst {result.worst()}")
    assert result.p_value < 1e-4, result.p_values
    assert result.worst()[0] in ("noise", "log_likelihood")


@pytest.mark.slow
def test_eight_schools_half_normal_is_calibrated(x64):
    pytest.importorskip("numpyro")
    sigma = jnp.asarray(zoo.data("eight_schools_noncentered")["sigma"])
    model = ld.from_numpyro(models.eight_schools_half_normal, jnp.zeros(8), sigma)

    def simulate(key):
        k = jax.random.split(key, 4)
        mu, tau = 5.0 * jax.random.normal(k[0]), jnp.abs(5.0 * jax.random.normal(k[1]))
        theta_trans = jax.random.normal(k[2], (8,))
        y = mu + tau * theta_trans + sigma * jax.random.normal(k[3], (8,))
        return {"mu": mu, "tau": tau, "theta_trans": theta_trans}, {"y": y, "sigma": sigma}

    def joint_log_likelihood(values, data):
        theta = values["mu"] + values["tau"] * values["theta_trans"]
        return {"log_likelihood": jnp.sum(norm.logpdf(data["y"], theta, sigma))}

    result = sbc(
        model,
        simulate,
        jax.random.key(1),
        num_simulations=200,
        num_draws=99,
        thin=3,
        test_quantities=joint_log_likelihood,
        target_acceptance_rate=0.95,
    )
    print(f"\nSBC eight schools half-normal [numpyro]: p = {result.p_value:.3f}, {result.worst()}")
    assert len(result.ranks) == 11  # mu, tau, theta_trans[0..7], the log-likelihood
    assert result.p_value > 0.01, result.p_values


def test_sbc_arguments_are_checked():
    model = zoo.build("linear_regression", "jax", x=X, y=np.zeros(len(X)))
    with pytest.raises(ValueError, match="num_draws \\+ 1 = 51 is not a multiple of 10"):
        sbc(model, simulate, jax.random.key(0), num_draws=50)

    def wrong_names(key):
        values, data = simulate(key)
        return {"slope": values["weight"]}, data

    with pytest.raises(ValueError, match=r"simulate returns \['slope'\]"):
        sbc(model, wrong_names, jax.random.key(0), num_simulations=2)


def test_a_tiny_sbc_run(x64):
    """Fast smoke test of the shapes (not of calibration: 20 simulations)."""
    model = zoo.build("linear_regression", "jax", x=X, y=np.zeros(len(X)))
    result = sbc(
        model,
        simulate,
        jax.random.key(0),
        num_simulations=20,
        num_warmup=100,
        num_draws=19,
        thin=1,
        num_bins=4,
        batch_size=10,
    )
    assert {k: v.shape for k, v in result.ranks.items()} == {
        k: (20,) for k in ("weight", "bias", "noise")
    }
    assert result.divergences.shape == (20,)
    assert result.divergences.dtype.kind == "i"
    assert result.divergences.min() >= 0
    for name, ranks in result.ranks.items():
        assert ranks.min() >= 0, name
        assert ranks.max() <= 19, name
        # a calibrated model's ranks are uniform on 0..19: mean 9.5, sd of the mean of
        # 20 of them 1.3; 5 is nearly 4 of those
        assert abs(ranks.mean() - 9.5) < 5, (name, ranks)
        # the p-value is Pearson's chi-square of these ranks in 4 bins of 5
        counts = np.bincount(ranks // 5, minlength=4)
        assert result.p_values[name] == pytest.approx(scipy.stats.chisquare(counts).pvalue)
    assert result.p_value == pytest.approx(min(1.0, 3 * min(result.p_values.values())))
