"""`find_map` against closed-form modes, `log_jacobian` against known transforms, and
`sample(init=...)`'s starts: finite, moved, and no frozen chain on arma11."""

import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

import logdensity as ld

from .posteriordb_models import arma11_jax, load_arma

numpyro = pytest.importorskip("numpyro")
import numpyro.distributions as dist  # noqa: E402

A, B, K, N = 2.0, 3.0, 7, 20  # Beta(2, 3) prior, 7 successes in 20


def beta_binomial(k, n):
    theta = numpyro.sample("theta", dist.Beta(A, B))
    numpyro.sample("k", dist.Binomial(n, theta), obs=k)


def test_find_map_gives_both_closed_form_modes(x64):
    """Beta(a, b) prior, k of n: the posterior Beta(a + k, b + n - k) has its mode at
    (a + k - 1) / (a + b + n - 2); on logit(theta), with the Jacobian theta(1 - theta),
    the density is proportional to theta^(a+k) (1-theta)^(b+n-k), whose mode is at
    (a + k) / (a + b + n)."""
    model = ld.from_numpyro(beta_binomial, K, N)
    constrained = ld.find_map(model)
    assert bool(constrained.converged)
    mode = (A + K - 1) / (A + B + N - 2)
    np.testing.assert_allclose(constrained.values["theta"], mode, rtol=1e-7)
    unconstrained = ld.find_map(model, jacobian=True)
    np.testing.assert_allclose(unconstrained.values["theta"], (A + K) / (A + B + N), rtol=1e-7)
    # the position is the same point on the unconstrained space
    np.testing.assert_allclose(jax.nn.sigmoid(unconstrained.position["theta"]), 0.36, rtol=1e-7)
    # the objectives: the model's log density there, and that minus its log-Jacobian
    x = unconstrained.position["theta"]
    np.testing.assert_allclose(unconstrained.logdensity, model(unconstrained.position), rtol=1e-12)
    theta = constrained.values["theta"]
    log_jac = jnp.log(theta * (1 - theta))
    np.testing.assert_allclose(
        constrained.logdensity, model(constrained.position) - log_jac, rtol=1e-10
    )
    assert float(constrained.grad_norm) < 1e-6
    assert x.dtype == jnp.float64


def test_find_map_simplex_and_vector_sites(x64):
    """A Dirichlet(2, 2, 2) prior on category probabilities and counts c: the mode is
    (c + 1) / sum(c + 1), through the stick-breaking map (3 values from 2 coordinates:
    the volume form of the Jacobian)."""

    def categorical(y):
        p = numpyro.sample("p", dist.Dirichlet(2.0 * jnp.ones(3)))
        numpyro.sample("y", dist.Categorical(p), obs=y)

    y = np.array([0, 0, 0, 1, 1, 2, 0, 0])
    result = ld.find_map(ld.from_numpyro(categorical, y))
    counts = np.bincount(y, minlength=3) + 1.0
    np.testing.assert_allclose(result.values["p"], counts / counts.sum(), rtol=1e-6)


def test_find_map_plain_jax_normal_and_many_starts(x64):
    """Normal-normal conjugacy: mu ~ N(0, 10), y_i ~ N(mu, 1) has its mode at the
    precision-weighted mean sum(y) / (n + 1/100); four jittered starts agree on it."""
    y = np.array([1.2, 0.4, 2.2, 1.9, 0.7])

    def logdensity(p, d):
        return norm.logpdf(p["mu"], 0.0, 10.0) + jnp.sum(norm.logpdf(d, p["mu"], 1.0))

    model = ld.from_jax(logdensity, {"mu": jnp.zeros(())}, data=jnp.asarray(y))
    expected = y.sum() / (len(y) + 1 / 100)
    result = ld.find_map(model, jax.random.key(0), num_starts=4)
    np.testing.assert_allclose(result.values["mu"], expected, rtol=1e-8)


def test_log_jacobian_of_known_transforms(x64):
    """exp, sigmoid and the identity: log|J| = x, log sigmoid(x) + log sigmoid(-x), 0,
    summed; leaves of several entries included."""

    def constrain(p):
        return {"a": p["a"], "s": jnp.exp(p["s"]), "t": jax.nn.sigmoid(p["t"])}

    model = ld.from_jax(
        lambda p: -0.5 * sum(jnp.sum(v**2) for v in jax.tree.leaves(p)),
        {"a": jnp.zeros(3), "s": jnp.zeros(2), "t": jnp.zeros(())},
        constrain=constrain,
    )
    x = jnp.array([0.3, -1.0, 2.0, 0.5, -0.7, 1.3])  # a(3), s(2), t
    expected = 0.5 + -0.7 + jax.nn.log_sigmoid(1.3) + jax.nn.log_sigmoid(-1.3)
    np.testing.assert_allclose(ld.log_jacobian(model)(x), expected, rtol=1e-12)


def test_log_jacobian_of_a_coupled_leaf(x64):
    """A leaf whose map is not elementwise (a 2-vector rotated and scaled by exp of its
    first entry): the leaf's full Jacobian, from jax.jacfwd."""

    def constrain(p):
        u = p["u"]
        return {"v": jnp.exp(u[0]) * jnp.array([u[0] + u[1], u[0] - u[1]])}

    model = ld.from_jax(lambda p: -jnp.sum(p["u"] ** 2), {"u": jnp.ones(2)}, constrain=constrain)
    x = jnp.array([0.4, -0.3])
    jac = jax.jacfwd(lambda u: constrain({"u": u})["v"])(x)
    expected = np.log(abs(np.linalg.det(jac)))
    np.testing.assert_allclose(ld.log_jacobian(model)(x), expected, rtol=1e-10)


def test_find_map_warns_where_no_mode_exists(x64):
    """A centred hierarchical model's constrained density grows without bound as the
    group scale goes to 0: find_map says it did not converge."""

    def funnel_model(y):
        mu = numpyro.sample("mu", dist.Normal(0, 5))
        tau = numpyro.sample("tau", dist.HalfCauchy(5))
        with numpyro.plate("group", len(y)):
            theta = numpyro.sample("theta", dist.Normal(mu, tau))
            numpyro.sample("y", dist.Normal(theta, 10.0), obs=y)

    model = ld.from_numpyro(funnel_model, np.array([1.0, -2.0, 0.5]))
    with pytest.warns(RuntimeWarning, match="L-BFGS"):
        result = ld.find_map(model, max_steps=200)
    assert not bool(result.converged)
    assert float(result.values["tau"]) < 1e-3


def test_find_map_refuses_bad_arguments():
    model = ld.from_jax(lambda p: -jnp.sum(p**2), jnp.zeros(2))
    with pytest.raises(ValueError, match="needs rng_key"):
        ld.find_map(model, num_starts=3)
    with pytest.raises(ValueError, match="num_starts"):
        ld.find_map(model, num_starts=0)
    with pytest.raises(ValueError, match="3 coordinates; the model has 2"):
        ld.find_map(model, initial_position=jnp.zeros(3))
    with pytest.raises(TypeError, match="find_map needs a LogDensity"):
        ld.find_map(lambda x: x)


@pytest.mark.parametrize("init", ["map", "pathfinder"])
def test_init_moves_the_starts(init, x64):
    """`init="map"` moves every chain's jittered start to the mode of the unconstrained
    density; `"pathfinder"` to a draw of higher log density than the jittered start,
    out of arma11's overflowing region (|theta| < 1). (BlackJAX's L-BFGS inside
    Pathfinder stops after a few iterations from these starts, so its draws are not
    near the mode; measured in benchmarks/results/starts.md.)"""
    from logdensity._sample._programs import jittered
    from logdensity._sample._starts import _moved_starts

    model = arma11_jax(load_arma())
    keys = jax.random.split(jax.random.key(0), 4)
    positions, redraw = _moved_starts(model, init, keys, 2.0)
    assert not redraw.any()
    starts = jax.vmap(lambda k: jittered(model, jax.random.fold_in(k, 0), 2.0))(keys)
    lp_start, lp_moved = jax.vmap(model)(starts), jax.vmap(model)(positions)
    assert np.all(np.asarray(lp_moved) > np.asarray(lp_start))
    assert np.all(np.abs(np.asarray(positions["theta"])) < 1)
    if init == "map":
        mode = ld.find_map(model, jacobian=True).position
        for name in ("mu", "phi", "theta", "log_sigma"):
            gap = np.abs(np.asarray(positions[name]) - float(mode[name]))
            assert np.all(gap < 1e-4), (name, gap)


def test_init_falls_back_loudly_where_the_start_is_not_finite():
    """A density that is NaN where x[0] > 1: the chains whose jittered start lies
    there cannot be optimised; they are redrawn jittered, as without init, and the
    warning names them."""
    from logdensity._sample._programs import jittered

    def logdensity(x):
        return jnp.where(x[0] > 1.0, jnp.nan, -0.5 * jnp.sum(x**2))

    model = ld.from_jax(logdensity, jnp.zeros(2))
    key = jax.random.key(2)
    keys = jax.random.split(jax.random.split(key)[0], 4)
    starts = [float(jittered(model, jax.random.fold_in(k, 0), 2.0)[0]) for k in keys]
    bad = [c for c, x in enumerate(starts) if x > 1.0]
    assert 0 < len(bad) < 4  # the seed puts some chains there
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = ld.sample(model, key, init="map", num_warmup=20, num_samples=20,
                          progress_bar=False)  # fmt: skip
    messages = [str(w.message) for w in caught]
    expected = f"init='map' ended at a non-finite log density for chains {bad}"
    assert any(expected in m for m in messages)
    assert np.all(np.isfinite(idata.sample_stats["lp"].values))


def test_init_is_validated():
    model = ld.from_jax(lambda x: -jnp.sum(x**2), jnp.zeros(2))
    with pytest.raises(ValueError, match="init must be one of"):
        ld.sample(model, jax.random.key(0), init="advi")


@pytest.mark.slow
def test_pathfinder_starts_freeze_no_chain_on_arma11(x64):
    """posteriordb's arma11 over 10 seeds, 4 chains each: jittered starts with
    |theta| > 1 overflow the moving-average recursion and freeze chains (measured: 16
    of 40 in benchmarks/results/starts.md); Pathfinder's starts freeze none."""
    model = arma11_jax(load_arma())
    frozen = {}
    for seed in range(10):
        idata = ld.sample(model, jax.random.key(seed), init="pathfinder", progress_bar=False)
        frozen[seed] = idata.sample_stats.attrs.get("stuck_chains", [])
        assert float(idata.sample_stats["diverging"].sum()) <= 2, seed
    assert all(not f for f in frozen.values()), frozen


@pytest.mark.parametrize(
    ("seed", "source"),
    [(3, "chain"), (6, "a fresh start")],  # 6: every chain collapsed by warmup step 100
)
def test_a_collapsed_warmup_is_restarted_on_arma11(seed, source, x64):
    """Issue 15: from Stan's default start, arma11's chains that begin where the MA
    recursion explodes drive their step size to 1e-38 and never move (16 of 40 chains
    over 10 seeds, before). At default settings they are restarted during warmup, from
    a healthy chain's state or, when none is healthy, a fresh start; no chain is left
    stuck. 12 seeds: `python -m benchmarks --models arma11 starts`."""
    model = arma11_jax(load_arma())
    with pytest.warns(ld.SamplingWarning, match="warmup collapsed") as record:
        idata = ld.sample(model, jax.random.key(seed), progress_bar=False)
    messages = [str(w.message) for w in record]
    assert any(f"restarted from {source}" in m for m in messages), messages
    assert not idata.sample_stats.attrs.get("stuck_chains"), idata.sample_stats.attrs
    assert float(idata.adaptation["step_size"].min()) > 0.1
    assert int(idata.sample_stats["diverging"].sum()) == 0
    assert float(az.rhat(idata).to_array().max()) < 1.01
