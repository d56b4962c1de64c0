"""The NumPyro adapter: conformance over site shapes, errors, data, dims, predictive,
agreement with NumPyro's own NUTS and with a posteriordb reference."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy

numpyro = pytest.importorskip("numpyro")
import arviz as az  # noqa: E402
import numpyro.distributions as dist  # noqa: E402

import logdensity as ld  # noqa: E402
from logdensity import zoo  # noqa: E402
from logdensity.adapters import add_numpyro_predictive  # noqa: E402
from logdensity.testing import check_logdensity  # noqa: E402

from .conftest import short_run  # noqa: E402
from .models import compiled_programs  # noqa: E402
from .posteriordb_models import garch_numpyro, load  # noqa: E402

FAST = {"num_warmup": 300, "num_samples": 300, "progress_bar": False}


def scalar_model():
    numpyro.sample("x", dist.Normal(1.0, 2.0))


def shapes_model(y):
    """Vector, matrix, positive, bounded and simplex sites; a plate; factor; deterministic."""
    scale = numpyro.sample("scale", dist.HalfNormal(1.0))
    frac = numpyro.sample("frac", dist.Uniform(-1.0, 3.0))
    w = numpyro.sample("w", dist.Dirichlet(jnp.ones(3)))
    with numpyro.plate("row", 2), numpyro.plate("col", 4, dim=-2):
        m = numpyro.sample("m", dist.Normal(0.0, 1.0))  # shape (4, 2)
    v = numpyro.sample("v", dist.Normal(jnp.zeros(5), 1.0).to_event(1))
    numpyro.factor("penalty", -0.1 * jnp.sum(v**2))
    numpyro.deterministic("total", jnp.sum(m) + frac)
    with numpyro.plate("obs_plate", y.shape[0]):
        numpyro.sample("y", dist.Normal(jnp.sum(w * jnp.arange(3.0)) + v[0], scale), obs=y)


def eight_schools(sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    with numpyro.plate("school", sigma.shape[0]):
        z = numpyro.sample("z", dist.Normal(0, 1))
        theta = numpyro.deterministic("theta", mu + tau * z)
        numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)


SCHOOLS_Y = np.array([28.0, 8, -3, 7, -1, 1, 18, 12])
SCHOOLS_SIGMA = np.array([15.0, 10, 16, 11, 9, 11, 10, 18])


@pytest.mark.parametrize(
    "build",
    [
        lambda: ld.from_numpyro(scalar_model),
        lambda: ld.from_numpyro(shapes_model, np.linspace(-1, 1, 7)),
        lambda: ld.from_numpyro(eight_schools, SCHOOLS_SIGMA, y=SCHOOLS_Y),
        functools.partial(zoo.build, "rat_tumors", "numpyro"),
    ],
    ids=["scalar", "shapes", "eight_schools", "rat_tumors"],
)
def test_conforms(build, x64):
    check_logdensity(build(), jax.random.key(0))


def test_positions_values_and_dims():
    model = ld.from_numpyro(shapes_model, np.linspace(-1, 1, 7))
    position = model.initial_position
    assert set(position) == {"scale", "frac", "w", "m", "v"}  # observed y is not a latent
    assert position["w"].shape == (2,)  # simplex of 3: 2 unconstrained coordinates
    assert position["m"].shape == (4, 2)
    assert model.variables["w"].shape == (3,)
    assert model.variables["m"].dims == ("col", "row")
    assert model.variables["v"].dims == ("v_dim_0",)
    assert model.variables["total"].deterministic
    values = model.constrain(position)
    assert np.isclose(values["w"].sum(), 1.0)
    assert -1.0 < values["frac"] < 3.0
    assert model.coords["row"] == (0, 1)


def test_log_density_is_minus_numpyro_potential(x64):
    from numpyro.infer.util import initialize_model

    model = ld.from_numpyro(eight_schools, SCHOOLS_SIGMA, y=SCHOOLS_Y)
    info = initialize_model(jax.random.key(0), eight_schools, model_args=(SCHOOLS_SIGMA,),
                            model_kwargs={"y": SCHOOLS_Y})  # fmt: skip
    p = {"mu": jnp.array(0.3), "tau": jnp.array(-0.2), "z": jnp.linspace(-1, 1, 8)}
    assert jnp.allclose(model(p), -info.potential_fn(p), rtol=1e-12)


@short_run
def test_inference_data_has_plate_dims_and_deterministics():
    model = ld.from_numpyro(
        eight_schools, SCHOOLS_SIGMA, y=SCHOOLS_Y, coords={"school": list("ABCDEFGH")}
    )
    idata = ld.sample(model, jax.random.key(0), num_chains=2, num_warmup=100, num_samples=100,
                      progress_bar=False)  # fmt: skip
    post = idata.posterior
    assert set(post.data_vars) == {"mu", "tau", "z", "theta"}
    assert post["theta"].dims == ("chain", "draw", "school")
    assert list(post["school"].values) == list("ABCDEFGH")
    np.testing.assert_allclose(
        post["theta"].values,
        post["mu"].values[..., None] + post["tau"].values[..., None] * post["z"].values,
        rtol=1e-5,
    )
    assert idata.attrs["backend"] == "numpyro"


def test_discrete_latent_names_the_site():
    def model():
        p = numpyro.sample("p", dist.Beta(1, 1))
        numpyro.sample("coin", dist.Bernoulli(p))

    with pytest.raises(
        ValueError, match=r"latent site 'coin' has a discrete distribution \(Bernoulli"
    ):
        ld.from_numpyro(model)


def test_observed_discrete_site_is_fine():
    def model(k):
        p = numpyro.sample("p", dist.Beta(1, 1))
        numpyro.sample("coin", dist.Bernoulli(p), obs=k)

    model_ = ld.from_numpyro(model, np.array([0, 1, 1]))
    assert list(model_.initial_position) == ["p"]


def test_subsampled_plate_names_the_plate():
    def model(y):
        mu = numpyro.sample("mu", dist.Normal())
        with numpyro.plate("data", y.shape[0], subsample_size=10) as idx:
            numpyro.sample("y", dist.Normal(mu), obs=y[idx])

    with pytest.raises(ValueError, match="plate 'data' subsamples 10 of 100"):
        ld.from_numpyro(model, np.zeros(100))


@short_run
def test_new_data_of_the_same_shape_does_not_recompile():
    kw = {"num_chains": 3, "num_warmup": 30, "num_samples": 20, "progress_bar": False}
    a = ld.from_numpyro(eight_schools, SCHOOLS_SIGMA, y=SCHOOLS_Y)
    ld.sample(a, jax.random.key(0), **kw)
    before = compiled_programs()
    b = ld.from_numpyro(eight_schools, SCHOOLS_SIGMA * 2, y=SCHOOLS_Y + 1)
    idata = ld.sample(b, jax.random.key(0), **kw)
    assert compiled_programs() == before
    assert idata.posterior["z"].shape == (3, 20, 8)
    # and the new data are used: the log densities differ
    assert a(a.initial_position) != b(b.initial_position)


@pytest.mark.slow  # the fast suite has the same density check in tests/test_zoo.py
def test_numpyro_and_jax_rat_tumors_agree(x64):
    from logdensity._demo import logdensity_offsets

    agreement = logdensity_offsets(
        zoo.build("rat_tumors", "jax"),
        zoo.build("rat_tumors", "numpyro"),
        jax.random.key(0),
        num_points=50,
    )
    assert agreement["offset_spread"] < 1e-8
    assert agreement["max_grad_diff"] < 1e-8


def linear_regression(x, y=None):
    a = numpyro.sample("a", dist.Normal(0, 2))
    b = numpyro.sample("b", dist.Normal(0, 2))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1))
    with numpyro.plate("point", x.shape[0]):
        numpyro.sample("y", dist.Normal(a * x + b, sigma), obs=y)


def _linear_data(n=80):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, n)
    return x, 1.5 * x - 0.5 + 0.3 * rng.normal(size=n)


def test_linear_regression_agrees_with_numpyro_mcmc():
    """Seed tutorial 1: NumPyro's own MCMC(NUTS) and logdensity.sample agree within
    Monte Carlo error: |m1 - m2| / sqrt(mcse1^2 + mcse2^2) < 4 for a, b, sigma, and
    sds within 10%. Eight points, so that the prior and the Jacobian of sigma's log
    transform matter: with that Jacobian dropped, sigma's z is 7.7 and its sd 23% off
    (measured; with 80 points it passed)."""
    from numpyro.infer import MCMC, NUTS

    x, y = _linear_data(8)
    mcmc = MCMC(NUTS(linear_regression), num_warmup=500, num_samples=1000, num_chains=4,
                chain_method="vectorized", progress_bar=False)  # fmt: skip
    mcmc.run(jax.random.key(1), x, y=y)
    theirs = az.from_numpyro(mcmc).posterior[["a", "b", "sigma"]]
    ours = ld.sample(ld.from_numpyro(linear_regression, x, y=y), jax.random.key(2),
                     num_warmup=500, num_samples=1000, progress_bar=False).posterior  # fmt: skip
    for name in ("a", "b", "sigma"):
        m1, m2 = float(theirs[name].mean()), float(ours[name].mean())
        s1 = float(az.mcse(theirs[[name]])[name])
        s2 = float(az.mcse(ours[[name]])[name])
        assert abs(m1 - m2) / np.hypot(s1, s2) < 4, name
        assert abs(float(theirs[name].std()) / float(ours[name].std()) - 1) < 0.1, name
    for name, truth in (("a", 1.5), ("b", -0.5)):  # the truth, within 4 posterior sd
        assert abs(float(ours[name].mean()) - truth) < 4 * float(ours[name].std()), name


@short_run
def test_posterior_predictive_and_log_likelihood():
    x, y = _linear_data()
    model = ld.from_numpyro(linear_regression, x, y=y)
    idata = ld.sample(model, jax.random.key(0), num_chains=2, **FAST)
    add_numpyro_predictive(
        idata, linear_regression, x, y=y, rng_key=jax.random.key(1), batch_size=128
    )
    pp = idata.posterior_predictive["y"]
    assert pp.dims == ("chain", "draw", "point")
    assert pp.shape == (2, 300, 80)
    # the pointwise log-likelihood is log N(y_i | a x_i + b, sigma) at each draw
    post = idata.posterior
    mean = post["a"].values[..., None] * x + post["b"].values[..., None]
    expected = scipy.stats.norm.logpdf(y, mean, post["sigma"].values[..., None])
    np.testing.assert_allclose(idata.log_likelihood["y"].values, expected, rtol=1e-4, atol=1e-5)
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "point")
    np.testing.assert_allclose(idata.observed_data["y"].values, y)
    # simulated data scatter around the fit with the noise sd
    resid = pp.values - pp.values.mean(axis=(0, 1))
    assert 0.25 < resid.std() < 0.4
    # pointwise log-likelihood feeds ArviZ's LOO
    loo = az.loo(idata)
    # LOO's effective number of parameters of a well-specified regression: about 3 (a,
    # b, sigma), and elpd_loo below the in-sample lppd by that much
    lppd = float(np.sum(scipy.special.logsumexp(expected.reshape(-1, 80), axis=0) - np.log(600)))
    assert 2.0 < lppd - float(loo.elpd_loo) < 4.5, (lppd, loo)


@pytest.mark.slow
def test_garch11_dynamic_bound_matches_posteriordb(x64):
    data, ref = load("garch-garch11")
    model = garch_numpyro(data)
    idata = ld.sample(model, jax.random.key(0), progress_bar=False)
    post = idata.posterior
    assert idata.sample_stats.attrs["num_divergences"] == 0
    # the bound moves: every draw satisfies beta1 < 1 - alpha1
    assert np.all(post["beta1"].values < 1 - post["alpha1"].values)
    mcse = az.mcse(post)
    for i, name in enumerate(ref["names"]):
        z = (float(post[name].mean()) - ref["mean"][i]) / np.hypot(
            float(mcse[name]), ref["mcse_mean"][i]
        )
        assert abs(z) < 3.5, (name, z)
        assert abs(float(post[name].std()) / ref["sd"][i] - 1) < 0.1, name


@pytest.mark.parametrize("name", ["eight_schools_noncentered", "rat_tumors", "hierarchical"])
def test_validation_off_is_the_same_density_with_fewer_operations(name, x64):
    """NumPyro's support checks are dropped from the traced density (positions are in
    the support by construction), nothing else: equal values and gradients at random
    positions, and a smaller program."""
    fast = zoo.build(name, "numpyro")
    checked = _with_validation(name)
    flat0 = jax.flatten_util.ravel_pytree(fast.initial_position)[0]
    unravel = jax.flatten_util.ravel_pytree(fast.initial_position)[1]
    for seed in range(3):
        p = unravel(jax.random.uniform(jax.random.key(seed), flat0.shape, minval=-2, maxval=2))
        a, ga = jax.value_and_grad(fast)(p)
        b, gb = jax.value_and_grad(checked)(p)
        np.testing.assert_allclose(a, b, rtol=1e-12)
        np.testing.assert_allclose(
            jax.flatten_util.ravel_pytree(ga)[0], jax.flatten_util.ravel_pytree(gb)[0], rtol=1e-10
        )
    p = fast.initial_position
    small = len(jax.make_jaxpr(jax.grad(fast))(p).jaxpr.eqns)
    large = len(jax.make_jaxpr(jax.grad(checked))(p).jaxpr.eqns)
    assert small < large, (small, large)


def _with_validation(name):
    """The zoo model of `name`, built with `validate_args=True`."""
    from logdensity.zoo import _numpyro as zn

    data = zoo.build(name, "numpyro").data
    return ld.from_numpyro(getattr(zn, f"{name}_model"), **data, validate_args=True)


def test_observed_values_outside_the_support_are_refused_at_build():
    def model(y):
        rate = numpyro.sample("rate", dist.Exponential(1.0))
        numpyro.sample("counts", dist.Poisson(rate), obs=y)

    with pytest.raises(ValueError, match=r"observed site 'counts' has 1 of 3 values outside"):
        ld.from_numpyro(model, jnp.array([1.0, -2.0, 3.0]))
    ld.from_numpyro(model, jnp.array([1.0, 2.0, 3.0]))
