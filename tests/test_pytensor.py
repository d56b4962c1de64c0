"""The PyTensor adapter (and PyMC models): conformance over graphs, errors, the global
x64 flag, the rat-tumor tutorial, eight schools against posteriordb."""

import functools
import os
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytensor = pytest.importorskip("pytensor")
import pytensor.tensor as pt  # noqa: E402

import logdensity as ld  # noqa: E402
from logdensity import zoo  # noqa: E402
from logdensity._demo import logdensity_offsets  # noqa: E402
from logdensity.testing import check_logdensity  # noqa: E402

from .conftest import short_run  # noqa: E402
from .posteriordb_models import load  # noqa: E402
from .test_posteriordb import RARE_DIVERGENCES  # noqa: E402


def _scalar():
    mu = pt.scalar("mu")
    return ld.from_pytensor(-0.5 * (mu - 1.0) ** 2 / 4.0, [mu])


def _vector_with_shared_data():
    data = pytensor.shared(np.array([0.3, -1.2, 2.0, 0.7]), name="y")
    mu, log_sigma = pt.vector("mu", shape=(2,)), pt.scalar("log_sigma")
    sigma = pt.exp(log_sigma)
    lp = -0.5 * pt.sum(mu**2) - 0.5 * pt.sum((data[:, None] - mu[None, :]) ** 2) / sigma**2
    lp = lp - 8 * log_sigma - 0.5 * sigma**2 + log_sigma  # prior, likelihood norm, Jacobian
    return ld.from_pytensor(lp, [mu, log_sigma], deterministics={"sigma": sigma})


def _matrix_of_unknown_shape():
    w = pt.matrix("w")
    return ld.from_pytensor(-0.5 * pt.sum(w**2), [w], initial_position={"w": np.zeros((2, 3))})


@pytest.mark.parametrize(
    "build",
    [
        _scalar,
        _vector_with_shared_data,
        _matrix_of_unknown_shape,
        functools.partial(zoo.build, "rat_tumors", "pytensor"),
    ],
)
def test_conformance(build, x64):
    check_logdensity(build(), num_points=4)


def test_deterministics_and_shared_data_values(x64):
    model = _vector_with_shared_data()
    p = {"mu": jnp.array([0.1, 0.2]), "log_sigma": jnp.array(0.3)}
    values = model.constrain(p)
    assert set(values) == {"mu", "log_sigma", "sigma"}
    assert model.variables["sigma"].deterministic
    np.testing.assert_allclose(values["sigma"], np.exp(0.3))
    y = np.array([0.3, -1.2, 2.0, 0.7])
    s = np.exp(0.3)
    by_hand = (
        -0.5 * np.sum(np.array([0.1, 0.2]) ** 2)
        - 0.5 * np.sum((y[:, None] - np.array([0.1, 0.2])) ** 2) / s**2
        - 8 * 0.3
        - 0.5 * s**2
        + 0.3
    )
    np.testing.assert_allclose(model(p), by_hand, rtol=1e-12)


def test_errors_name_the_culprit():
    a, b = pt.scalar("a"), pt.scalar()
    with pytest.raises(ValueError, match=r"input 1 .* has no name"):
        ld.from_pytensor(a + b, [a, b])
    with pytest.raises(ValueError, match=r"\['a'\] appear more than once"):
        ld.from_pytensor(a * 2, [a, pt.scalar("a")])
    v = pt.vector("v")
    with pytest.raises(ValueError, match="'v' has unknown static shape"):
        ld.from_pytensor(pt.sum(v), [v])
    with pytest.raises(ValueError, match="initial_position\\['v'\\] has shape \\(2, 2\\)"):
        ld.from_pytensor(pt.sum(v), [v], initial_position={"v": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="must be a scalar expression; it has 1 dims"):
        ld.from_pytensor(v**2, [v], initial_position={"v": np.zeros(3)})
    hidden = pt.scalar("hidden")
    with pytest.raises(ValueError, match="not among the inputs"):
        ld.from_pytensor(a + hidden, [a])
    draw = pt.random.normal(a, 1.0)
    with pytest.raises(ValueError, match="random"):
        ld.from_pytensor(draw * a, [a])

    from pytensor.compile.ops import as_op

    @as_op(itypes=[pt.dscalar], otypes=[pt.dscalar])
    def python_square(x):
        return np.asarray(x**2)

    x = pt.dscalar("x")
    with pytest.raises(NotImplementedError, match=r"(?i)no JAX conversion"):
        ld.from_pytensor(-python_square(x), [x])


_X64_SCRIPT = """
import jax
jax.config.update("jax_enable_x64", {before})
import pytensor.tensor as pt
import logdensity as ld
mu = pt.scalar("mu")
model = ld.from_pytensor(-mu**2, [mu])
assert jax.config.jax_enable_x64 is {before}, jax.config.jax_enable_x64
# mu is floatX; the position takes its dtype, capped at JAX's default: float32 either way
assert model(model.initial_position).dtype == "float32", model(model.initial_position).dtype
print("kept")
"""


@pytest.mark.parametrize(("before", "float_x"), [(False, "float64"), (True, "float32")])
def test_the_global_x64_flag_is_left_alone(before, float_x):
    """Importing PyTensor's JAX dispatch sets x64 to match floatX (True for float64,
    False for float32); the adapter restores the caller's flag. Fresh process: the
    switch happens on the first import only."""
    env = {**os.environ, "PYTENSOR_FLAGS": f"floatX={float_x}"}
    script = textwrap.dedent(_X64_SCRIPT.format(before=before))
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "kept" in out.stdout


@pytest.mark.slow  # the tutorial end to end: 30 s
def test_rat_tumor_tutorial_agrees_with_jax(x64):
    """The seed tutorial: the PyTensor graph over log_a, log_b, logit_theta equals the
    plain-JAX density up to a constant (same positions), with the same gradients, and
    samples the same posterior (|z| < 4 on log(a/b), log(a+b); MCSE of both runs)."""
    import arviz as az

    graph, plain = zoo.build("rat_tumors", "pytensor"), zoo.build("rat_tumors", "jax")
    agreement = logdensity_offsets(graph, plain, jax.random.key(0), num_points=30)
    assert agreement["offset_spread"] < 1e-8
    assert agreement["max_grad_diff"] < 1e-8
    # 0.9: at 0.8 one run in 4,000 draws diverged once (the hierarchical funnel)
    kw = {
        "num_warmup": 500,
        "num_samples": 1000,
        "target_acceptance_rate": 0.9,
        "progress_bar": False,
    }
    runs = [ld.sample(m, jax.random.key(3), **kw).posterior for m in (graph, plain)]
    derived = [
        az.convert_to_dataset(
            {"u": np.log(p["alpha"] / p["beta"]).values, "v": np.log(p["alpha"] + p["beta"]).values}
        )
        for p in runs
    ]
    for name in ("u", "v"):
        se = np.hypot(*(float(az.mcse(d)[name]) for d in derived))
        diff = float(derived[0][name].mean() - derived[1][name].mean())
        assert abs(diff) < 4 * se, (name, diff, se)


# --- PyMC -------------------------------------------------------------------------------


def _eight_schools_pymc(data):
    pm = pytest.importorskip("pymc")
    with pm.Model(coords={"school": [f"s{j}" for j in range(data["J"])]}) as model:
        theta_trans = pm.Normal("theta_trans", 0.0, 1.0, dims="school")
        mu = pm.Normal("mu", 0.0, 5.0)
        tau = pm.HalfCauchy("tau", 5.0)
        theta = pm.Deterministic("theta", theta_trans * tau + mu, dims="school")
        pm.Normal(
            "y",
            theta,
            np.asarray(data["sigma"], float),
            observed=np.asarray(data["y"], float),
            dims="school",
        )
    return model


def _schools_data():
    return load("eight_schools-eight_schools_noncentered")


def test_pymc_model_logp_names_dims(x64):
    pytest.importorskip("pymc")
    data, _ = _schools_data()
    pymc_model = _eight_schools_pymc(data)
    model = ld.from_pymc(pymc_model)
    check_logdensity(model, num_points=4)
    assert set(model.initial_position) == {"theta_trans", "mu", "tau_log__"}
    assert set(model.variables) == {"theta_trans", "mu", "tau", "theta"}
    assert model.variables["theta"].deterministic
    assert model.variables["theta"].dims == ("school",)
    assert model.coords["school"] == tuple(f"s{j}" for j in range(8))
    # the same log density as PyMC's own compiled logp (Jacobians included)
    logp = pymc_model.compile_logp(jacobian=True)
    for p in jax.tree.map(np.asarray, list(_positions(model))):
        np.testing.assert_allclose(float(model(p)), logp(p), rtol=1e-10)
    # unconstrain inverts the transforms
    p = {"theta_trans": np.full(8, 0.1), "mu": np.array(1.0), "tau_log__": np.array(0.5)}
    back = model.unconstrain(model.constrain(p))
    np.testing.assert_allclose(back["tau_log__"], 0.5)


def _positions(model, n=3):
    points = ld.testing.random_positions(model, jax.random.key(0), n)
    for i in range(n):
        yield {k: v[i] for k, v in points.items()}


def test_pymc_discrete_free_variable_is_named():
    pm = pytest.importorskip("pymc")
    with pm.Model() as model:
        pm.Poisson("k", 3.0)
        pm.Normal("x", 0.0, 1.0)
    with pytest.raises(ValueError, match=r"\['k'\] are discrete"):
        ld.from_pymc(model)


@pytest.mark.slow
def test_pymc_eight_schools_matches_posteriordb(x64):
    """Non-centered eight schools as a PyMC model vs posteriordb's reference (Stan, 10k
    draws): |z| < 3.5 per parameter with both MCSEs, R-hat < 1.01, and InferenceData
    carries the model's coords and dims."""
    import arviz as az

    pytest.importorskip("pymc")
    data, ref = _schools_data()
    model = ld.from_pymc(_eight_schools_pymc(data))
    with warnings.catch_warnings():  # as in tests/test_posteriordb.py: a rare divergence
        warnings.filterwarnings("ignore", RARE_DIVERGENCES, ld.SamplingWarning)
        idata = ld.sample(model, jax.random.key(0), target_acceptance_rate=0.95,
                          progress_bar=False)  # fmt: skip
    assert int(idata.sample_stats["diverging"].sum()) <= 2  # in 4,000 draws
    post = idata.posterior
    assert list(post["theta"].coords["school"].values) == [f"s{j}" for j in range(8)]
    summary = az.summary(idata, var_names=["mu", "tau", "theta"])
    assert float(summary["r_hat"].max()) < 1.01
    mcse = az.mcse(post)
    for i, name in enumerate(ref["names"]):
        var, idx = (
            (name.split("[")[0], int(name[:-1].split("[")[1]) - 1) if "[" in name else (name, None)
        )
        draws = post[var] if idx is None else post[var].isel(school=idx)
        se = mcse[var] if idx is None else mcse[var].isel(school=idx)
        z = (float(draws.mean()) - ref["mean"][i]) / np.hypot(float(se), ref["mcse_mean"][i])
        assert abs(z) < 3.5, (name, z)


def test_integer_inputs_are_refused_as_parameters_and_taken_as_data():
    """An integer input as a parameter would be a frozen chain (every draw the same);
    as data it is fine."""
    x = pt.scalar("x")
    n = pt.iscalar("n")
    logp = -0.5 * x**2 * pt.cast(n, "floatX")
    with pytest.raises(ValueError, match=r"inputs 'n' \(int32\) are not float"):
        ld.from_pytensor(logp, [x, n])
    model = ld.from_pytensor(logp, [x], data={n: 2})
    assert float(model({"x": jnp.asarray(1.0)})) == pytest.approx(-1.0)


@short_run
def test_pymc_predictions_through_pymcs_own_route(x64):
    """PyMC's predictions at new inputs come from PyMC itself: `pm.set_data` and
    `pm.sample_posterior_predictive` read the `InferenceData` that `sample` returns
    (PyMC's names), and give y at the new x as a + b x plus noise of sd sigma."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 40)
    y = 1.5 * x - 0.5 + 0.3 * rng.normal(size=40)
    pm = pytest.importorskip("pymc")
    with pm.Model() as pymc_model:
        x_data = pm.Data("x", x)
        a = pm.Normal("a", 0, 2)
        b = pm.Normal("b", 0, 2)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", a * x_data + b, sigma, observed=y, shape=x_data.shape)
    model = ld.from_pymc(pymc_model)
    idata = ld.sample(model, jax.random.key(0), num_chains=2, num_warmup=300, num_samples=300,
                      progress_bar=False)  # fmt: skip
    grid = np.linspace(-3, 3, 7)
    with pymc_model:
        pm.set_data({"x": grid})
        pp = pm.sample_posterior_predictive(idata, predictions=True, random_seed=1,
                                            progressbar=False)  # fmt: skip
    simulated = pp.predictions["y"]
    assert simulated.shape == (2, 300, 7)
    post = idata.posterior
    line = post["a"].values[..., None] * grid + post["b"].values[..., None]
    resid = (simulated.values - line) / post["sigma"].values[..., None]
    assert abs(resid.mean()) < 0.1
    assert abs(resid.std() - 1) < 0.1
    with pytest.raises(TypeError, match=r"pm\.sample_posterior_predictive"):
        ld.predict(model, idata, rng_key=jax.random.key(0))
