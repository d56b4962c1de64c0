"""The shared loop: correctness against analytic posteriors, chain methods, chunks,
compilation counts, interrupts, bad starts, and the InferenceData it returns."""

import itertools
import re
import subprocess
import sys
import textwrap
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import logdensity as ld
from logdensity import zoo
from logdensity._sample import _host
from logdensity._sample._settings import Settings
from logdensity._sample._starts import start_chains

from . import models
from .conftest import no_warmup, short_run, short_runs

FAST = {"num_warmup": 200, "num_samples": 200, "progress_bar": False}


def _z(idata, name, truth_mean):
    post = idata.posterior[[name]]
    mean = post[name].mean(("chain", "draw")).values
    mcse = az.mcse(post)[name].values
    return (mean - truth_mean) / mcse


def test_recovers_conjugate_normal():
    model, truth = models.conjugate_normal(models.draws())
    idata = ld.sample(
        model, jax.random.key(0), num_warmup=500, num_samples=1000, progress_bar=False
    )
    # tolerance: |z| < 4 with z = (mean - exact) / MCSE (ArviZ), sd within 10%
    assert np.all(np.abs(_z(idata, "mu", truth["mean"])) < 4)
    sd = idata.posterior["mu"].std(("chain", "draw")).values
    np.testing.assert_allclose(sd, truth["sd"], rtol=0.1)
    np.testing.assert_allclose(
        idata.posterior["mu_total"].values,
        idata.posterior["mu"].sum("group").values,
        rtol=1e-5,
    )


def test_recovers_inverse_gamma_through_the_jacobian():
    model, truth = models.normal_invgamma(models.scale_draws())
    idata = ld.sample(
        model, jax.random.key(1), num_warmup=500, num_samples=1000, progress_bar=False
    )
    assert abs(_z(idata, "sigma2", truth["mean"])) < 4
    sd = float(idata.posterior["sigma2"].std())
    assert abs(sd - truth["sd"]) / truth["sd"] < 0.1


@short_run
def test_inference_data_layout():
    model, _ = models.conjugate_normal(models.draws())
    idata = ld.sample(
        model,
        jax.random.key(0),
        num_chains=3,
        num_warmup=100,
        num_samples=50,
        progress_bar=False,
        save_warmup=True,
    )
    post = idata.posterior
    assert set(post.data_vars) == {"mu", "mu_total"}
    assert post["mu"].dims == ("chain", "draw", "group")
    assert list(post["group"].values) == ["a", "b", "c"]
    assert post.sizes == {"chain": 3, "draw": 50, "group": 3}
    stats = idata.sample_stats
    assert set(stats.data_vars) == {
        "diverging",
        "acceptance_rate",
        "step_size",
        "tree_depth",
        "n_steps",
        "energy",
        "lp",
    }
    assert stats["diverging"].dtype == bool
    assert stats["lp"].shape == (3, 50)
    assert idata.warmup_posterior.sizes["draw"] == 100
    assert idata.adaptation["inverse_mass_matrix"].shape == (3, 3)
    assert list(idata.adaptation["unconstrained"].values) == ["mu[0]", "mu[1]", "mu[2]"]
    # the sampling step size is the adapted one, constant per chain
    np.testing.assert_allclose(
        stats["step_size"].values[:, 0], idata.adaptation["step_size"].values
    )
    assert idata.attrs["backend"] == "jax"
    assert idata.attrs["warmup_time"] > 0
    assert idata.attrs["sampling_time"] > 0
    assert idata.attrs["blackjax_version"].startswith("1.7")
    # lp is the log density on the unconstrained space at the draw
    first = {"mu": jnp.asarray(post["mu"].values[0, 0])}
    np.testing.assert_allclose(stats["lp"].values[0, 0], model(first), rtol=1e-5)


def test_dense_mass_matrix():
    """The adapted dense inverse mass matrix estimates the posterior covariance, here
    diag(0.02) (sd 0.14 for each of 3 independent means): within a factor of 2 on the
    diagonal (measured: 0.018 to 0.030; the last window's few hundred correlated draws
    leave an error of 15% or so), and off-diagonal correlations under 0.3. The
    identity, or an unadapted matrix, is 50 times too large."""
    model, truth = models.conjugate_normal(models.draws())
    idata = ld.sample(model, jax.random.key(0), metric="dense", num_warmup=500, num_samples=500,
                      progress_bar=False)  # fmt: skip
    imm = idata.adaptation["inverse_mass_matrix"].values
    assert imm.shape == (4, 3, 3)
    for chain in imm:
        ratio = np.diag(chain) / truth["sd"] ** 2
        assert np.all((ratio > 0.5) & (ratio < 2)), ratio
        sd = np.sqrt(np.diag(chain))
        corr = chain / np.outer(sd, sd)
        assert np.all(np.abs(corr[~np.eye(3, dtype=bool)]) < 0.3), corr
    assert np.all(np.abs(_z(idata, "mu", truth["mean"])) < 4)


@short_run
@pytest.mark.parametrize("enable_x64", [False, True])
def test_dtype_follows_the_position(enable_x64):
    with jax.enable_x64(enable_x64):
        model, _ = models.conjugate_normal(models.draws())
        idata = ld.sample(
            model,
            jax.random.key(0),
            num_chains=2,
            num_warmup=20,
            num_samples=10,
            progress_bar=False,
        )
    expected = np.float64 if enable_x64 else np.float32
    assert idata.posterior["mu"].dtype == expected
    assert idata.sample_stats["lp"].dtype == expected


def _two_leaves(dtype_x, dtype_y, lp_dtype=None):
    """A standard normal `x` (3) and a Cauchy `y`, leaves in the dtypes given, the log
    density computed in `lp_dtype` (default: as the leaves promote)."""

    def logdensity_fn(p):
        x, y = (p[k] if lp_dtype is None else p[k].astype(lp_dtype) for k in ("x", "y"))
        return -0.5 * jnp.sum(x**2) - jnp.log1p(y**2)

    return ld.from_jax(logdensity_fn, {"x": jnp.zeros(3, dtype_x), "y": jnp.zeros((), dtype_y)})


@short_run
@pytest.mark.parametrize("metric", ["diag", pytest.param("low_rank", marks=pytest.mark.slow)])
def test_a_float32_position_under_x64_samples_in_float32(metric):
    """The position's dtype, not the x64 flag, sets the sampler's (`_precision`): a
    float32 model under x64 draws, bit for bit, what it draws with x64 off (BlackJAX's
    float64 literals would otherwise clash with the float32 state: `cond branches must
    have equal output types`), with vectorized and threaded chains, and continues."""
    kw = {"num_warmup": 100, "num_samples": 20, "progress_bar": False, "metric": metric}
    runs = {}
    for x64 in (False, True):
        with jax.enable_x64(x64):
            model = _two_leaves(jnp.float32, jnp.float32)
            for method in ("vectorized", "threaded"):
                runs[x64, method] = ld.sample(model, jax.random.key(1), chain_method=method, **kw)
            if x64:
                more = ld.sample(model, None, initial_state=runs[x64, method], num_samples=10,
                                 progress_bar=False)  # fmt: skip
    for method in ("vectorized", "threaded"):
        a, b = runs[False, method], runs[True, method]
        for name in ("x", "y"):
            assert b.posterior[name].dtype == np.float32
            np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)
        for stat in ("lp", "step_size", "energy", "acceptance_rate"):
            assert b.sample_stats[stat].dtype == np.float32, stat
        assert b.adaptation["step_size"].dtype == np.float32
    assert more.posterior["x"].dtype == np.float32
    assert more.posterior.sizes["draw"] == 30


@short_run
@pytest.mark.parametrize("init", ["map", "pathfinder"])
def test_optimised_starts_of_a_float32_model_under_x64_stay_float32(x64, init):
    """A start found in float64 (Pathfinder's draws are) is cast to the model's dtype:
    the sampler's dtype is its initial position's, not its start's."""
    idata = ld.sample(_two_leaves(jnp.float32, jnp.float32), jax.random.key(0), init=init,
                      num_chains=2, num_warmup=30, num_samples=10, progress_bar=False)  # fmt: skip
    assert idata.sample_stats["lp"].dtype == np.float32
    assert idata.posterior["x"].dtype == np.float32


@short_run
@pytest.mark.parametrize(
    ("dtypes", "lp_dtype", "sampler"),
    [
        (("float32", "float64"), None, "float64"),  # mixed leaves
        (("float32", "float32"), "float64", "float32"),  # a float64 log density
        (("float64", "float64"), "float32", "float64"),  # a float32 log density
    ],
)
def test_mixed_dtypes_sample_in_the_leaves_common_dtype(x64, dtypes, lp_dtype, sampler):
    """Leaves of two dtypes sample in their common one (`jnp.result_type`) and each
    draw keeps its leaf's dtype; a log density in another dtype than the position's is
    cast to the sampler's. All three crashed inside BlackJAX before."""
    model = _two_leaves(*dtypes, lp_dtype=lp_dtype)
    idata = ld.sample(model, jax.random.key(0), num_warmup=100, num_samples=20,
                      progress_bar=False)  # fmt: skip
    assert idata.posterior["x"].dtype == dtypes[0]
    assert idata.posterior["y"].dtype == dtypes[1]
    assert idata.sample_stats["lp"].dtype == sampler
    assert idata.sample_stats["step_size"].dtype == sampler
    assert idata.sample_stats["diverging"].values.mean() < 0.2


def _float32_model(backend):
    """A float32 model of `backend`, built under x64, and the dtype its position gets
    by the adapter's documented rule."""
    if backend == "jax":
        return _two_leaves(jnp.float32, jnp.float32), {"x": "float32", "y": "float32"}
    if backend == "numpyro":  # NumPyro draws and inits in JAX's default float
        import numpyro
        import numpyro.distributions as dist

        def model():
            numpyro.sample("x", dist.Normal(jnp.zeros(3, jnp.float32), jnp.float32(1)))

        return ld.from_numpyro(model), {"x": "float64"}
    if backend == "pytensor":  # each input's dtype
        import pytensor.tensor as pt

        x = pt.vector("x", dtype="float32", shape=(3,))
        return ld.from_pytensor(-0.5 * (x**2).sum(), [x]), {"x": "float32"}
    if backend == "pymc":  # each value variable's dtype: floatX
        import pymc as pm
        import pytensor

        with pytensor.config.change_flags(floatX="float32"), pm.Model() as model:
            m = pm.Normal("m", 0.0, 1.0)
            pm.Normal("x", m, 1.0, shape=3)
            return ld.from_pymc(model), {"m": "float32", "x": "float32"}
    # equinox: each raw leaf's dtype as parax holds it; parax's Positive inverse gives
    # a float64 raw value for a float32 value under x64, so this module is mixed
    from logdensity.zoo._equinox import EightSchoolsNonCentered, noncentered_log_likelihood

    data = zoo.data("eight_schools_noncentered")
    data = {k: jnp.asarray(v, jnp.float32) for k, v in data.items()}
    module = EightSchoolsNonCentered(8, jnp.float32)
    model = ld.from_equinox(module, noncentered_log_likelihood, data=data)
    return model, {"mu": "float32", "tau": "float64", "theta_trans": "float32"}


@short_run
@pytest.mark.parametrize("backend", ["jax", "numpyro", "pytensor", "pymc", "equinox"])
def test_every_adapter_samples_its_float32_model_under_x64(x64, backend):
    """The dtype policy (sampling.md, "Dtypes"), per adapter: each position leaf has
    the dtype the adapter's rule gives, the sampler computes in their common dtype, and
    every draw keeps its leaf's dtype."""
    model, expected = _float32_model(backend)
    assert {k: str(v.dtype) for k, v in model.initial_position.items()} == expected
    idata = ld.sample(model, jax.random.key(0), num_chains=2, num_warmup=100, num_samples=20,
                      progress_bar=False)  # fmt: skip
    sampler = np.result_type(*expected.values())
    assert idata.sample_stats["lp"].dtype == sampler
    for name, dtype in expected.items():
        assert idata.posterior[name].dtype == dtype, name


@short_run
def test_same_key_same_draws_across_chunk_sizes():
    model, _ = models.conjugate_normal(models.draws())
    a = ld.sample(model, jax.random.key(3), chunk_size=64, **FAST)
    b = ld.sample(model, jax.random.key(3), chunk_size=200, **FAST)
    np.testing.assert_array_equal(a.posterior["mu"].values, b.posterior["mu"].values)
    c = ld.sample(model, jax.random.key(4), chunk_size=200, **FAST)
    assert not np.array_equal(a.posterior["mu"].values, c.posterior["mu"].values)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA's CPU options")
def test_the_loops_programs_leave_reductions_to_xla_on_cpu():
    """XLA's CPU backend hands reductions to YNNPACK by default; the loop's programs
    turn that off (`_compiled._CPU_COMPILER_OPTIONS`), which makes the value and
    gradient of the 10,003-parameter model 1.7x faster in one chain's program
    (benchmarks/). Checked on the compiled program, so that a jaxlib that drops the
    option fails here instead of slowing every large model down unseen."""
    from logdensity._sample._compiled import Compiled

    def f(x, _):
        return jnp.sum(jnp.exp(x))

    x = jnp.ones(10_000)
    default = jax.jit(f, static_argnums=1).lower(x, None).compile().as_text()
    ours = Compiled(f).cpu.lower(x, None).compile().as_text()
    assert "ynn" in default  # what the option changes
    assert "ynn" not in ours


@short_run
def test_threaded_chains_draw_the_sequential_draws_and_are_the_cpu_default(x64):
    """`"threaded"` runs the one-chain program of `"sequential"` for each chain in its
    own thread: the same program per chain, so the same draws, bit for bit, through a
    warmup (the adaptation state is split and joined at every chunk end); and the
    default on CPU for a few chains. Many chains per core stay vectorized."""
    model = zoo.build("eight_schools_noncentered", "jax")
    kw = {"num_warmup": 150, "num_samples": 100, "chunk_size": 40, "progress_bar": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        a = ld.sample(model, jax.random.key(7), chain_method="threaded", metric="low_rank", **kw)
        b = ld.sample(model, jax.random.key(7), chain_method="sequential", metric="low_rank", **kw)
        default = ld.sample(model, jax.random.key(7), num_chains=3, **kw)
    for name in ("mu", "tau", "theta"):
        np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)
    np.testing.assert_array_equal(a.sample_stats["n_steps"], b.sample_stats["n_steps"])
    assert a.attrs["chain_method"] == "threaded"
    assert default.attrs["chain_method"] == "threaded"
    assert default.posterior.sizes["chain"] == 3
    from logdensity._sample._settings import CHAINS_PER_CORE, cores, default_chain_method

    many = CHAINS_PER_CORE * cores() + 1
    assert default_chain_method(many, sharded=False) == "vectorized"
    assert default_chain_method(4, sharded=True) == "vectorized"


@short_run
def test_threaded_calls_bounded_by_leapfrogs_draw_the_same_draws(x64, monkeypatch):
    """XLA's CPU runtime holds memory per leapfrog step of a program run beside
    another until it returns, so a threaded chain's call runs at most
    `leapfrogs_per_call` leapfrog steps (one step first, then at most twice the last
    call's steps). The masked steps change nothing: each step's key is its index's, so
    the draws are the sequential chains' bit for bit, in many more calls."""
    from logdensity._sample import _host

    model = zoo.build("eight_schools_noncentered", "jax")
    kw = {"num_warmup": 60, "num_samples": 40, "chunk_size": 20, "progress_bar": False}
    calls: list[int] = []
    add = _host.Draws.add
    monkeypatch.setattr(_host, "leapfrogs_per_call", lambda position_bytes: 30)
    monkeypatch.setattr(
        _host.Draws, "add", lambda self, s, d, n, st: (calls.append(n), add(self, s, d, n, st))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        a = ld.sample(model, jax.random.key(5), chain_method="threaded", **kw)
    assert calls[0] == 1
    assert sum(calls) == 100
    assert len(calls) > 100 // 20  # more calls than chunks
    assert all(later <= 2 * earlier for earlier, later in itertools.pairwise(calls))
    monkeypatch.undo()
    b = ld.sample(model, jax.random.key(5), chain_method="sequential", **kw)
    for name in ("mu", "tau", "theta"):
        np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)
    np.testing.assert_array_equal(a.sample_stats["n_steps"], b.sample_stats["n_steps"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sequential_matches_vectorized(dtype):
    """The promise of `sample`'s docstring: both methods give each chain the same start
    and random stream. XLA compiles the batched (vmap) and unbatched (lax.map) programs
    with different vectorised kernels, which round differently in the last bit, and
    NUTS amplifies that over many steps (in float32 a 200-step warmup ends at other
    step sizes; draws then differ by up to 5 posterior sd, measured). So: without
    warmup, 5 draws agree to rounding, in both dtypes; after warmup, in distribution."""
    with jax.enable_x64(dtype == "float64"):
        model, truth = models.conjugate_normal(models.draws())
        short = {"num_warmup": 0, "num_samples": 5, "progress_bar": False}
        with short_runs():
            a = ld.sample(model, jax.random.key(5), chain_method="vectorized", **short)
            b = ld.sample(model, jax.random.key(5), chain_method="sequential", **short)
        assert a.posterior["mu"].dtype == dtype
        rtol = 1e-10 if dtype == "float64" else 1e-5
        np.testing.assert_allclose(a.posterior["mu"].values, b.posterior["mu"].values, rtol=rtol)
        kw = {"num_warmup": 300, "num_samples": 500, "progress_bar": False}
        # the check is the z-score below; the closing R-hat of 4 x 500 draws can come
        # near its 1.01 bound by chance (float32: 1.012 on one scalar with XLA's
        # classic emitters), and that warning is not what this test is about
        with short_runs():
            long = [ld.sample(model, jax.random.key(5), chain_method=m, **kw)
                    for m in ("vectorized", "sequential")]  # fmt: skip
    for idata in long:
        assert np.all(np.abs(_z(idata, "mu", truth["mean"])) < 4)


PARALLEL_SCRIPT = textwrap.dedent(
    """
    import warnings; warnings.filterwarnings("ignore", category=FutureWarning)
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import logdensity as ld
    from logdensity._sample._chains import map_chains
    assert jax.device_count() == 2, jax.devices()

    # the chains really are split across the two devices, two per device
    where = map_chains(
        lambda b, s: jax.lax.axis_index("chain"), "parallel", jnp.arange(4.0), None
    )
    assert list(np.asarray(where)) == [0, 0, 1, 1], where

    model = ld.from_jax(lambda p: -0.5 * jnp.sum((p["x"] - 1.0) ** 2 * jnp.arange(1.0, 4.0)),
                        {"x": jnp.zeros(3)})
    short = dict(num_chains=4, num_warmup=0, num_samples=5, progress_bar=False)
    a = ld.sample(model, jax.random.key(0), chain_method="vectorized", **short)
    b = ld.sample(model, jax.random.key(0), chain_method="parallel", **short)
    np.testing.assert_allclose(a.posterior["x"].values, b.posterior["x"].values, rtol=1e-10)
    long = dict(num_chains=4, num_warmup=300, num_samples=500, progress_bar=False)
    c = ld.sample(model, jax.random.key(0), chain_method="parallel", **long)
    mean = c.posterior["x"].mean(("chain", "draw")).values
    assert np.all(np.abs(mean - 1.0) < 0.15), mean
    # the low-rank metric's warmup under shard_map: its buffers are static shapes
    lr = ld.sample(model, jax.random.key(0), chain_method="parallel", metric="low_rank", **long)
    assert lr.adaptation["U"].shape == (4, 3, 3), lr.adaptation
    mean = lr.posterior["x"].mean(("chain", "draw")).values
    assert np.all(np.abs(mean - 1.0) < 0.15), mean
    try:
        ld.sample(model, jax.random.key(0), chain_method="parallel", num_chains=3, num_samples=5)
    except ValueError as e:
        assert "multiple of it" in str(e), e
    else:
        raise AssertionError("num_chains=3 on 2 devices must raise")
    print("OK")
    """
)


@pytest.mark.slow  # a two-device subprocess: 30 s of the default run
def test_parallel_over_two_devices_matches_vectorized():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    import os

    result = subprocess.run(
        [sys.executable, "-c", PARALLEL_SCRIPT],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


@short_run
def test_one_compilation_per_model_and_shape():
    model, _ = models.conjugate_normal(models.draws())
    # a shape no other test uses, so this test counts its own traces
    kw = {
        "num_chains": 5,
        "num_warmup": 60,
        "num_samples": 50,
        "chunk_size": 20,
        "progress_bar": False,
    }
    before = models.compiled_programs()
    ld.sample(model, jax.random.key(0), **kw)  # 3 warmup chunks, 3 sampling chunks: one program
    ld.sample(model, jax.random.key(1), **kw)
    new_data, _ = models.normal_invgamma(models.scale_draws(seed=1))  # other model: compiles
    after = models.compiled_programs()
    for name in ("chunk", "start"):
        assert after[name] - before.get(name, 0) == 1, name
    # same model function on new data of the same shape: no retrace
    m1, _ = models.normal_invgamma(models.scale_draws(seed=2))
    ld.sample(m1, jax.random.key(0), **kw)
    mid = models.compiled_programs()
    m2 = m1.replace_data(new_data.data)
    ld.sample(m2, jax.random.key(0), **kw)
    assert models.compiled_programs() == mid


def test_interrupt_returns_the_draws_so_far(monkeypatch):
    model, _ = models.conjugate_normal(models.draws())
    calls = {"n": 0}
    original = _host.Progress.update

    def interrupting(self, phase, steps, stats):
        original(self, phase, steps, stats)
        calls["n"] += 1
        if phase == "sampling" and calls["n"] == 4:  # 2 warmup chunks, then 2 sampling
            raise KeyboardInterrupt

    kw = {"num_warmup": 100, "num_samples": 200, "chunk_size": 50, "progress_bar": False}
    with short_runs():
        full = ld.sample(model, jax.random.key(0), **kw)
    monkeypatch.setattr(_host.Progress, "update", interrupting)
    with pytest.warns(ld.SamplingWarning, match="Interrupted during sampling.*100 draws"):
        idata = ld.sample(model, jax.random.key(0), **kw)
    assert idata.posterior.sizes["draw"] == 100
    assert idata.sample_stats.sizes["draw"] == 100
    assert idata.attrs["interrupted"] == "sampling"
    # the draws are where the sampler was: lp, from the sample stats, is the log density
    # at each returned draw (a placeholder would have the full run's placeholder too)
    draws = jnp.asarray(idata.posterior["mu"].values.reshape(-1, 3))
    lp = jax.vmap(lambda mu: model({"mu": mu}))(draws)
    np.testing.assert_allclose(idata.sample_stats["lp"].values.reshape(-1), lp, rtol=1e-5)
    # and the draws so far are those of the uninterrupted run
    first = {"draw": slice(0, 100)}
    for group, name in (("posterior", "mu"), ("posterior", "mu_total"), ("sample_stats", "lp")):
        np.testing.assert_array_equal(
            idata[group][name].values, full[group][name].isel(first).values, err_msg=name
        )


def test_interrupt_during_warmup_returns_an_empty_posterior(monkeypatch):
    model, _ = models.conjugate_normal(models.draws())

    def interrupting(self, phase, steps, stats):
        raise KeyboardInterrupt

    monkeypatch.setattr(_host.Progress, "update", interrupting)
    with pytest.warns(ld.SamplingWarning, match="Interrupted during warmup"):
        idata = ld.sample(
            model, jax.random.key(0), num_warmup=100, num_samples=50, progress_bar=False
        )
    assert idata.posterior.sizes["draw"] == 0
    assert idata.attrs["interrupted"] == "warmup"


def test_non_finite_start_names_the_leaves():
    def logp_nan_value(p):  # sqrt(-x) for x > 0: the value and the gradient are NaN
        return -jnp.sum(p["ok"] ** 2) + jnp.where(p["bad"] > 100.0, 0.0, jnp.sqrt(-p["bad"]))

    model = ld.from_jax(logp_nan_value, {"ok": jnp.zeros(2), "bad": jnp.ones(())})
    with pytest.raises(
        ValueError,
        match=r"(?s)No finite starting point.*chain 0: log density = nan; "
        r"non-finite gradient in \['bad'\]",
    ):
        ld.sample(model, jax.random.key(0), init_jitter=0.5, max_init_tries=3, **FAST)

    def logp_nan_gradient(p):  # a finite value everywhere, a NaN gradient in 'bad' only
        return -jnp.sum(p["ok"] ** 2) + models.nan_gradient(p["bad"])

    model = ld.from_jax(logp_nan_gradient, {"ok": jnp.zeros(2), "bad": jnp.ones(())})
    assert np.isfinite(model(model.initial_position))
    with pytest.raises(
        ValueError,
        match=r"(?s)No finite starting point.*chain 0: log density = -?\d[^;]*; "
        r"non-finite gradient in \['bad'\]",
    ):
        ld.sample(model, jax.random.key(0), init_jitter=0.5, max_init_tries=3, **FAST)


@short_run  # divergences at the boundary of the support, by design
def test_retries_until_finite_then_never_starts_from_a_non_finite_point():
    def logp(p):
        x = p["x"]
        return jnp.where(x > 0.0, -0.5 * (x - 1.0) ** 2, -jnp.inf)  # x <= 0 impossible

    model = ld.from_jax(logp, {"x": jnp.zeros(())})
    idata = ld.sample(
        model,
        jax.random.key(0),
        num_chains=8,
        num_warmup=100,
        num_samples=50,
        progress_bar=False,
    )
    assert np.all(idata.posterior["x"].values > 0)
    assert np.all(idata.adaptation["step_size"].values > 1e-3)


def test_given_initial_positions_are_validated():
    model, _ = models.conjugate_normal(models.draws())
    with pytest.raises(ValueError, match=r"leaf 'mu' has shape \(3,\); expected \(4, 3\)"):
        ld.sample(model, jax.random.key(0), initial_positions={"mu": jnp.zeros(3)}, **FAST)
    with pytest.raises(ValueError, match="structure"):
        ld.sample(model, jax.random.key(0), initial_positions=jnp.zeros((4, 3)), **FAST)
    bad = {"mu": jnp.full((4, 3), jnp.nan)}
    with pytest.raises(ValueError, match=r"chain 0.*non-finite position in \['mu'\]"):
        ld.sample(model, jax.random.key(0), initial_positions=bad, **FAST)
    # the chains start exactly where they are told, with the log density there
    start = {"mu": jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)))}
    settings = Settings.checked(
        dim=3, num_chains=4, num_warmup=0, num_samples=5, chain_method="vectorized",
        metric="diag", max_rank=None, target_acceptance_rate=0.8, max_tree_depth=10,
        init_jitter=2.0, max_init_tries=100, chunk_size=None, progress_bar=False,
        save_warmup=False,
    )  # fmt: skip
    state = start_chains(model, settings, jax.random.key(0), start)
    np.testing.assert_array_equal(state.kernel.position["mu"], start["mu"])
    np.testing.assert_allclose(state.kernel.logdensity, jax.vmap(model)(start), rtol=1e-6)
    with short_runs():
        idata = ld.sample(model, jax.random.key(0), initial_positions=start, num_warmup=0,
                          num_samples=5, progress_bar=False)  # fmt: skip
    assert idata.posterior.sizes["draw"] == 5


def test_bad_arguments():
    model, _ = models.conjugate_normal(models.draws())
    with pytest.raises(ValueError, match="chain_method"):
        ld.sample(model, jax.random.key(0), chain_method="threads")
    with pytest.raises(ValueError, match="num_samples"):
        ld.sample(model, jax.random.key(0), num_samples=0)
    with pytest.raises(TypeError, match="lacks"):
        ld.sample(lambda x: x, jax.random.key(0))


def test_diagnostics_flag_a_funnel():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = ld.sample(
            models.funnel(),
            jax.random.key(0),
            num_warmup=300,
            num_samples=300,
            progress_bar=False,
        )
    messages = [str(w.message) for w in caught if issubclass(w.category, ld.SamplingWarning)]
    assert messages
    assert "divergent" in messages[0]
    assert idata.sample_stats.attrs["num_divergences"] > 0


@short_run
def test_a_third_party_logdensity_is_sampled():
    class Plain:
        """Satisfies the protocol without being a pytree."""

        def __init__(self):
            self.inner = ld.from_jax(lambda p: -0.5 * jnp.sum(p["z"] ** 2), {"z": jnp.zeros(2)})

        def __call__(self, position):
            return self.inner(position)

        initial_position = property(lambda self: self.inner.initial_position)
        flat = property(lambda self: self.inner.flat)
        variables = property(lambda self: self.inner.variables)
        coords = property(lambda self: self.inner.coords)
        backend = "plain"

        def constrain(self, position):
            return self.inner.constrain(position)

        def unconstrain(self, values):
            return self.inner.unconstrain(values)

    idata = ld.sample(Plain(), jax.random.key(0), **FAST)
    assert idata.posterior["z"].shape == (4, 200, 2)
    assert idata.attrs["backend"] == "plain"


@short_run
def test_flat_view_can_be_sampled():
    model, _ = models.conjugate_normal(models.draws())
    idata = ld.sample(model.flat, jax.random.key(0), **FAST)
    assert idata.posterior["mu"].dims == ("chain", "draw", "group")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"num_samples": 2.5}, "num_samples must be an integer; got 2.5"),
        ({"num_warmup": -1}, "num_warmup must be >= 0"),
        ({"num_chains": True}, "num_chains must be an integer"),
        ({"max_tree_depth": 0}, "max_tree_depth must be a positive integer"),
        ({"target_acceptance_rate": 1.0}, r"target_acceptance_rate must be in \(0, 1\)"),
        ({"init_jitter": -0.5}, "init_jitter must be >= 0"),
    ],
)
def test_settings_are_refused_before_anything_is_traced(setting, message):
    model, _ = models.conjugate_normal(models.draws())
    before = models.compiled_programs()
    with pytest.raises(ValueError, match=message):
        ld.sample(model, jax.random.key(0), **({"num_warmup": 10**9} | setting))
    assert models.compiled_programs() == before


@short_run
def test_a_chunk_longer_than_the_run_is_clamped():
    model, _ = models.conjugate_normal(models.draws())
    idata = ld.sample(model, jax.random.key(0), chunk_size=10**9, **FAST)
    assert idata.posterior.sizes["draw"] == 200


def test_a_region_of_positive_infinite_log_density_is_never_entered(x64):
    """+inf is a singularity, not a place to stay: every proposal into it is a
    divergence, and no draw lands there (before: draws of 1e37, lp = +inf)."""

    def logdensity_fn(p):
        return jnp.where(p["x"] > 1.5, jnp.inf, -0.5 * p["x"] ** 2)

    model = ld.from_jax(logdensity_fn, {"x": jnp.zeros(())})
    with pytest.warns(ld.SamplingWarning, match="divergent"):
        idata = ld.sample(model, jax.random.key(0), init_jitter=1.0, **FAST)
    assert float(idata.posterior["x"].max()) <= 1.5
    assert np.all(np.isfinite(idata.sample_stats["lp"].values))
    assert int(idata.sample_stats["diverging"].sum()) > 0


def test_a_chain_whose_warmup_collapsed_is_named_with_its_step_size(x64):
    """A chain started where the density is finite but absurd (lp about -1e90) can end
    warmup with a step size near zero and never move: the closing warning says which
    chain, and its step size, instead of only an R-hat."""
    from logdensity._inference_data import diagnose

    model, _ = models.conjugate_normal(models.draws())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        idata = ld.sample(model, jax.random.key(0), num_chains=3, **FAST)
    # chain 1 as a collapsed warmup leaves it: a tiny step size, the same draw throughout
    stats = idata.sample_stats
    stats["step_size"][1] = 1e-38
    stats["lp"][1] = float(stats["lp"][1, 0])
    problems = diagnose(idata)
    stuck = [p for p in problems if p.startswith("chains that look stuck")]
    assert stuck, problems
    assert "chain 1 (step size 1e-38 against the chains' median" in stuck[0]
    assert f"never changed in {FAST['num_samples']} draws" in stuck[0]
    assert stats.attrs["stuck_chains"] == [1]


def test_the_default_chunk_is_sized_by_bytes():
    """100 steps for small models; for 4 chains of the 10,003-parameter model in
    float64 (80 kB a draw), the steps that fit 8 MiB."""
    from logdensity._sample._settings import default_chunk_size

    assert default_chunk_size(100, 4) == 100
    assert default_chunk_size(10_003 * 8 + 56, 4) == 26
    assert default_chunk_size(10**9, 4) == 1


def _ill_conditioned(smallest_sd=0.01):
    """A 10-d Gaussian with sds from `smallest_sd` up to 100 times it: with the identity
    metric and a step size near the smallest sd, NUTS needs trajectories of about 100
    steps (depth 7) to cross it."""
    sd = smallest_sd * jnp.logspace(0, 2, 10)
    return ld.from_jax(lambda p: -0.5 * jnp.sum((p["x"] / sd) ** 2), {"x": jnp.zeros(10)})


@short_run
@no_warmup
def test_max_tree_depth_caps_the_trajectories():
    """`max_tree_depth=k`: at most k doublings, so at most 2^k - 1 leapfrog steps. No
    warmup, so the unit step size and identity metric want far deeper trees: the cap
    is reached, not only respected (measured: depth 2 and 3 steps; depth 5 and 31)."""
    idata = ld.sample(_ill_conditioned(1.0), jax.random.key(0), num_warmup=0, num_samples=50,
                      max_tree_depth=2, progress_bar=False)  # fmt: skip
    stats = idata.sample_stats
    assert int(stats["tree_depth"].max()) == 2
    assert int(stats["n_steps"].max()) <= 2**2 - 1
    deep = ld.sample(_ill_conditioned(1.0), jax.random.key(0), num_warmup=0, num_samples=50,
                     max_tree_depth=5, progress_bar=False)  # fmt: skip
    assert int(deep.sample_stats["tree_depth"].max()) == 5
    assert int(deep.sample_stats["n_steps"].max()) <= 2**5 - 1


def test_the_adapted_acceptance_rate_follows_its_target(x64):
    """Dual averaging (Hoffman & Gelman 2014) tunes the step size for a mean acceptance
    statistic of `target_acceptance_rate`. As in Stan, the rate after warmup comes out
    above the target (the final step size is the averaged iterate, smaller than the
    last): measured on this target over 4 chains of 1,000 draws, 0.6 -> 0.77,
    0.8 -> 0.88, 0.95 -> 0.95. So: each rate in [target - 0.03, target + 0.2], and a
    higher target gives a higher rate by at least 0.04 (an unadapted step size gives
    one rate for every target)."""
    rates = []
    for target in (0.6, 0.8, 0.95):
        idata = ld.sample(_ill_conditioned(), jax.random.key(1), num_warmup=1000,
                          target_acceptance_rate=target, progress_bar=False)  # fmt: skip
        rates.append(float(idata.sample_stats["acceptance_rate"].mean()))
        assert target - 0.03 < rates[-1] < target + 0.2, (target, rates)
    assert np.all(np.diff(rates) > 0.04), rates


def test_chains_in_separate_modes_warn_naming_rhat_and_ess(x64):
    """Two modes 20 sd apart, two chains started in each: every chain stays in its
    mode, and the closing warning names R-hat and ESS, and the variable."""

    def logp(p):
        x = p["x"]
        return jnp.logaddexp(-0.5 * (x - 10.0) ** 2, -0.5 * (x + 10.0) ** 2)

    model = ld.from_jax(logp, {"x": jnp.zeros(())})
    start = {"x": jnp.array([-10.0, -10.0, 10.0, 10.0])}
    with pytest.warns(ld.SamplingWarning) as caught:
        idata = ld.sample(model, jax.random.key(0), initial_positions=start, num_warmup=300,
                          num_samples=300, progress_bar=False)  # fmt: skip
    means = idata.posterior["x"].mean("draw").values
    np.testing.assert_allclose(means, [-10, -10, 10, 10], atol=0.5)
    (message,) = [str(w.message) for w in caught]
    assert re.search(r"max R-hat \d+\.\d+ > 1\.01 \(x \d", message), message
    assert re.search(r"min bulk ESS \d+ < 400 \(100 per chain; x \d", message), message
    assert re.search(r"min tail ESS \d+ < 400", message), message
    assert idata.sample_stats.attrs["max_rhat"] > 1.5  # rank-normalised: 1.74 here


def test_the_screen_reads_a_block_in_slices_and_picks_the_same(monkeypatch):
    """The screen's proxies are per scalar, so computed over slices of a block (for
    memory: temporaries of a slice's size, not the block's) they pick the same
    scalars as over the whole block at once."""
    from logdensity import _inference_data

    rng = np.random.default_rng(1)
    block = rng.normal(size=(4, 200, 600))
    block[:, :, 7] += np.arange(4)[:, None]  # chains apart
    block[:, :, 300] = np.cumsum(block[:, :, 300], axis=1)  # sticky
    block[1, :, 500] = 0.0  # one chain that never moved
    sliced = _inference_data._pick(_inference_data._proxies_of(block), 64)
    monkeypatch.setattr(_inference_data, "_SCREEN_BLOCK", 50 * 800)  # 50 scalars a slice
    assert np.array_equal(_inference_data._pick(_inference_data._proxies_of(block), 64), sliced)
    monkeypatch.setattr(_inference_data, "_SCREEN_BLOCK", 10**9)  # the block at once
    assert np.array_equal(_inference_data._pick(_inference_data._proxies_of(block), 64), sliced)
    assert {7, 300, 500} <= set(sliced.tolist())


@pytest.mark.parametrize("blocks", [1, 6])
def test_many_scalars_are_screened_and_the_worst_still_found(monkeypatch, blocks):
    """Above 1,024 scalars `diagnose` runs ArviZ's rank R-hat and ESS on the scalars
    its cheap proxies rank worst. On 3,000 scalars of noise with a shifted chain, a
    sticky scalar and a Cauchy one, the screened R-hat and ESS extremes equal the full
    computation's, and the culprits are named; with the variable read in six blocks,
    too, and then the worst are picked over the variable, not per block: at most four
    proxies' `_SCREEN_KEEP` scalars examined."""
    from logdensity import _inference_data

    monkeypatch.setattr(_inference_data, "_BLOCK", 4 * 300 * 3000 // blocks)
    examined = []
    screened_blocks = _inference_data._screened

    def spy(v):
        for offset, block, index in screened_blocks(v):
            examined.append(block.shape[2])
            yield offset, block, index

    monkeypatch.setattr(_inference_data, "_screened", spy)

    rng = np.random.default_rng(0)
    theta = rng.normal(size=(4, 300, 3000))
    theta[2, :, 1234] += 0.6  # one chain shifted
    walk = np.cumsum(rng.normal(size=(4, 300)), axis=1)
    theta[:, :, 777] = 0.05 * walk + 0.01 * rng.normal(size=(4, 300))  # sticky
    theta[:, :, 2500] = rng.standard_cauchy(size=(4, 300))
    stats = {"diverging": np.zeros((4, 300), bool), "step_size": np.full((4, 300), 0.5),
             "lp": rng.normal(size=(4, 300))}  # fmt: skip
    idata = az.from_dict(posterior={"theta": theta}, sample_stats=stats)
    screened = ld.diagnose(idata)
    got = dict(idata.sample_stats.attrs)
    assert len(examined) <= blocks
    keep = _inference_data._SCREEN_KEEP
    assert keep <= sum(examined) <= 4 * keep < 3000
    monkeypatch.setattr(_inference_data, "_SCREEN", 10**9)
    ld.diagnose(idata)
    full = dict(idata.sample_stats.attrs)
    for key in ("max_rhat", "min_ess_bulk", "min_ess_tail"):
        assert got[key] == full[key], (key, got[key], full[key])
    rhat = next(p for p in screened if p.startswith("max R-hat"))
    assert "theta[777]" in rhat, rhat
    assert "theta[1234]" in rhat, rhat
