"""Runs that outlive the process: continuing a run, checkpoints, resuming after a
kill, torn chunks, and refusing a store that is not this model's."""

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
import zarr

import logdensity as ld
from logdensity._sample import _host
from tests import _long_run, models
from tests.conftest import short_run

ROOT = Path(__file__).resolve().parents[1]

# checkpoints, kills and resumes of 2 chains x 60 draws: too short to diagnose
pytestmark = short_run


def _commit(path):
    try:
        return zarr.open_group(path, mode="r").attrs.get("logdensity_commit")
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _child(mode, path, chain_method, phase="sampling"):
    return subprocess.Popen(
        [sys.executable, "-m", "tests._long_run", mode, str(path), chain_method, phase],
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _uninterrupted(chain_method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ld.sample(
            _long_run.model(),
            jax.random.key(3),
            chain_method=chain_method,
            progress_bar=False,
            **_long_run.KWARGS,
        )


@pytest.mark.parametrize(
    ("chain_method", "phase", "sig"),
    [
        # ~20 s each (a child process, killed, then resumed): one in the default run
        ("vectorized", "sampling", signal.SIGKILL),
        pytest.param("sequential", "warmup", signal.SIGKILL, marks=pytest.mark.slow),
        pytest.param("vectorized", "sampling", signal.SIGINT, marks=pytest.mark.slow),
        pytest.param("threaded", "sampling", signal.SIGINT, marks=pytest.mark.slow),
    ],
)
def test_a_killed_run_resumes_in_a_fresh_process_to_the_same_draws(
    tmp_path, x64, chain_method, phase, sig
):
    """The child is killed (SIGKILL: no cleanup at all; SIGINT: Ctrl-C) after two
    committed chunks of `phase`; a second process resumes it. Its draws are those of
    one uninterrupted run with the same key."""
    path = tmp_path / "run.zarr"
    child = _child("run", path, chain_method, phase)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        commit = _commit(path)
        if commit and commit["phase"] == phase and commit["steps"] >= 20:
            child.send_signal(sig)
            break
        time.sleep(0.05)
    _, err = child.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert child.returncode == -signal.SIGKILL, err[-3000:]
    else:  # Ctrl-C: sample returns what it has, and the store stays resumable
        assert child.returncode == 0, err[-3000:]
    stopped = _commit(path)
    assert stopped["phase"] == phase, stopped
    length = _long_run.KWARGS["num_warmup" if phase == "warmup" else "num_samples"]
    assert 20 <= stopped["steps"] < length

    resumer = _child("resume", path, chain_method)
    _, err = resumer.communicate(timeout=300)
    assert resumer.returncode == 0, err[-3000:]
    resumed = np.load(str(path) + ".npz")
    full = _uninterrupted(chain_method)
    np.testing.assert_allclose(resumed["mu"], full.posterior["mu"].values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(resumed["lp"], full.sample_stats["lp"].values, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(resumed["draw"], np.arange(_long_run.KWARGS["num_samples"]))
    assert _commit(path)["phase"] == "done"


@pytest.mark.parametrize("phase", ["warmup", "sampling", "diagnostics"])
def test_a_real_ctrl_c_returns_the_draws_of_the_uninterrupted_run(tmp_path, x64, phase):
    """A SIGINT to a child sampling in memory (no checkpoint), after two chunks of
    warmup or of sampling, or while the closing diagnostics run: `sample` returns, and
    its draws are the first draws of one uninterrupted run with the same key (every
    draw, when the diagnostics were interrupted)."""
    path = str(tmp_path / "run")
    child = _child("memory", path, "vectorized", phase)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        if os.path.exists(path + ".ready"):
            child.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err[-3000:]
    got = np.load(path + ".npz")
    assert str(got["interrupted"]) == phase
    (message,) = [w for w in got["warnings"] if w.startswith("Interrupted")]
    assert message.startswith(f"Interrupted during {phase}"), message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        full = ld.sample(
            _long_run.model(),
            jax.random.key(3),
            progress_bar=False,
            save_warmup=True,
            **_long_run.KWARGS,
        )
    n_warmup, n = got["warmup_mu"].shape[1], got["mu"].shape[1]
    expected = {"warmup": (20, 0), "sampling": (60, 20), "diagnostics": (60, 60)}[phase]
    assert (n_warmup, n) == expected
    np.testing.assert_array_equal(
        got["warmup_mu"], full.warmup_posterior["mu"].values[:, :n_warmup]
    )
    np.testing.assert_array_equal(got["mu"], full.posterior["mu"].values[:, :n])
    np.testing.assert_array_equal(got["lp"], full.sample_stats["lp"].values[:, :n])
    # the draws are where the sampler was: lp is the log density at each returned draw
    model = _long_run.model()
    lp = jax.vmap(lambda mu: model({"mu": mu}))(jnp.asarray(got["mu"].reshape(-1, 3)))
    np.testing.assert_allclose(got["lp"].reshape(-1), lp, rtol=1e-10)


class _Interrupt:
    """Ctrl-C after the `n`-th chunk (raised between chunks, from the progress bar)."""

    def __init__(self, monkeypatch, n):
        self.calls = 0
        update = _host.Progress.update

        def interrupting(progress, *args):
            update(progress, *args)
            self.calls += 1
            if self.calls == n:
                raise KeyboardInterrupt

        monkeypatch.setattr(_host.Progress, "update", interrupting)


def _checkpointed(path, **kw):
    with pytest.warns(ld.SamplingWarning, match="resume with logdensity.resume"):
        return ld.sample(
            _long_run.model(),
            jax.random.key(3),
            chain_method="vectorized",
            checkpoint=path,
            progress_bar=False,
            **_long_run.KWARGS | kw,
        )


def test_a_torn_chunk_is_cut_off_and_drawn_again(tmp_path, x64, monkeypatch):
    """Draws written past the last commit (a process killed mid-chunk) and a scribbled
    free state slot are never read: the interrupted run's InferenceData stops at the
    commit, and resuming redraws the torn chunk exactly."""
    path = tmp_path / "run.zarr"
    _Interrupt(monkeypatch, 9)  # 6 warmup chunks, then 3 of sampling
    partial = _checkpointed(path)
    monkeypatch.undo()
    commit = _commit(path)
    assert (commit["phase"], commit["steps"]) == ("sampling", 30)
    assert partial.posterior.sizes["draw"] == 30
    # a torn fourth chunk: garbage draws appended past the commit, and a half-written
    # state in the slot the next commit would have named
    tail = partial.posterior.isel(draw=slice(0, 7))
    garbage = xr.Dataset(
        {k: (v.dims, np.full(v.shape, np.nan)) for k, v in tail.data_vars.items()},
        coords={
            "chain": tail["chain"].values,
            "draw": np.arange(30, 37),
            "group": np.array(["a", "b", "c"], object),
        },
    )
    garbage.to_zarr(path, group="posterior", append_dim="draw", consolidated=False)
    free = zarr.open_group(path, path=f"state_{1 - commit['slot']}", mode="r+")
    for _, array in free.arrays():
        array[...] = 0
    assert _commit(path) == commit
    assert ld.resume.__name__ == "resume"
    assert zarr.open_group(path, mode="r")["posterior"]["mu"].shape[1] == 37

    resumed = ld.resume(path, _long_run.model(), progress_bar=False)
    full = _uninterrupted("vectorized")
    assert resumed.posterior.sizes["draw"] == _long_run.KWARGS["num_samples"]
    np.testing.assert_allclose(
        resumed.posterior["mu"].values, full.posterior["mu"].values, rtol=0, atol=1e-12
    )
    # a finished store is returned as it is, and xarray's datatree (ArviZ's reader
    # for zarr 3) reads it too
    again = ld.resume(path, _long_run.model(), progress_bar=False)
    np.testing.assert_array_equal(again.posterior["mu"].values, resumed.posterior["mu"].values)
    tree = xr.open_datatree(path, engine="zarr", consolidated=False)
    np.testing.assert_array_equal(
        az.InferenceData.from_datatree(tree).posterior["mu"].values, full.posterior["mu"].values
    )


def test_a_run_cut_in_nutpies_diagonal_warmup_resumes_to_the_same_draws(tmp_path, x64, monkeypatch):
    """`metric="fisher_diag"` keeps more warmup state than the step size and the
    metric (two moment blocks, the last log density):
    a run stopped after 3 of its 6 warmup chunks resumes from the store to the draws
    of the uninterrupted run."""
    path = tmp_path / "run.zarr"
    _Interrupt(monkeypatch, 3)
    _checkpointed(path, metric="fisher_diag")
    monkeypatch.undo()
    assert (_commit(path)["phase"], _commit(path)["steps"]) == ("warmup", 30)
    resumed = ld.resume(path, _long_run.model(), progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = ld.sample(
            _long_run.model(),
            jax.random.key(3),
            chain_method="vectorized",
            metric="fisher_diag",
            progress_bar=False,
            **_long_run.KWARGS,
        )
    np.testing.assert_allclose(
        resumed.posterior["mu"].values, full.posterior["mu"].values, rtol=0, atol=1e-12
    )
    np.testing.assert_array_equal(
        resumed.adaptation["inverse_mass_matrix"].values,
        full.adaptation["inverse_mass_matrix"].values,
    )


def test_a_checkpointed_run_equals_one_in_memory_and_streams_lazily(tmp_path, x64):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        stored = ld.sample(
            _long_run.model(),
            jax.random.key(3),
            checkpoint=tmp_path / "run.zarr",
            progress_bar=False,
            save_warmup=True,
            **_long_run.KWARGS,
        )
    full = _uninterrupted("vectorized")
    for group in ("posterior", "sample_stats", "adaptation", "sampler_state"):
        for name, value in full[group].data_vars.items():
            np.testing.assert_array_equal(stored[group][name].values, value.values, err_msg=name)
    assert stored.warmup_posterior.sizes["draw"] == _long_run.KWARGS["num_warmup"]
    assert list(stored.posterior["group"].values) == ["a", "b", "c"]
    # the draws are read from the store when used, not held in memory
    assert not isinstance(stored.posterior["mu"].variable._data, np.ndarray)


def test_resume_refuses_another_model_and_checkpoint_an_existing_path(tmp_path, x64):
    path = tmp_path / "run.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        ld.sample(
            _long_run.model(),
            jax.random.key(3),
            checkpoint=path,
            progress_bar=False,
            **_long_run.KWARGS,
        )
    other = ld.from_jax(lambda p: -jnp.sum(p["mu"] ** 2), {"mu": jnp.zeros(4)})
    with pytest.raises(ValueError, match=r"position leaf 'mu': the store has \[\[3\], 'float64'\]"):
        ld.resume(path, other)
    with pytest.raises(FileExistsError, match="already exists"):
        ld.sample(_long_run.model(), jax.random.key(3), checkpoint=path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ld.resume(tmp_path / "nothing.zarr", other)


@pytest.mark.parametrize("metric", ["diag", "low_rank", "fisher_diag"])
def test_continuing_joins_the_draws_of_one_longer_run_without_recompiling(tmp_path, x64, metric):
    model, truth = models.conjugate_normal(models.draws())
    kw = {"num_chains": 4, "num_warmup": 200, "chunk_size": 50, "progress_bar": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        longer = ld.sample(model, jax.random.key(5), num_samples=400, metric=metric, **kw)
        first = ld.sample(model, jax.random.key(5), num_samples=200, metric=metric, **kw)
    compiled = models.compiled_programs()
    kw.pop("num_warmup")
    both = ld.sample(model, None, initial_state=first, num_samples=200, **kw)
    assert models.compiled_programs() == compiled
    assert both.posterior.sizes["draw"] == 400
    np.testing.assert_array_equal(both.posterior["draw"].values, np.arange(400))
    np.testing.assert_allclose(
        both.posterior["mu"].values, longer.posterior["mu"].values, rtol=0, atol=1e-12
    )
    assert float(az.rhat(both, var_names=["mu"]).to_array().max()) < 1.01
    # the state survives netCDF: a new process continues from the file
    first.to_netcdf(tmp_path / "first.nc")
    from_file = az.from_netcdf(tmp_path / "first.nc")
    again = ld.sample(model, None, initial_state=from_file, num_samples=200, **kw)
    np.testing.assert_array_equal(again.posterior["mu"].values, both.posterior["mu"].values)
    # a key gives fresh streams: other draws, same posterior
    fresh = ld.sample(model, jax.random.key(9), initial_state=first, num_samples=200, **kw)
    new = slice(200, None)
    assert not np.allclose(fresh.posterior["mu"][:, new], both.posterior["mu"][:, new])
    assert np.allclose(fresh.posterior["mu"].values.mean((0, 1)), truth["mean"], atol=0.1)


def test_continuing_refuses_what_cannot_continue(x64, monkeypatch):
    model, _ = models.conjugate_normal(models.draws())
    kw = {"num_chains": 2, "num_warmup": 40, "num_samples": 20, "progress_bar": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        done = ld.sample(model, jax.random.key(0), **kw)
    with pytest.raises(ValueError, match="does not warm up again"):
        ld.sample(model, None, initial_state=done, num_warmup=100)
    with pytest.raises(ValueError, match="adapted with metric='diag'"):
        ld.sample(model, None, initial_state=done, metric="dense")
    with pytest.raises(ValueError, match="rng_key is needed"):
        ld.sample(model, None)
    _Interrupt(monkeypatch, 1)
    with pytest.warns(ld.SamplingWarning, match="Interrupted during warmup"):
        cut = ld.sample(model, jax.random.key(0), chunk_size=10, **kw)
    assert "sampler_state" not in cut.groups()
    with pytest.raises(ValueError, match="no sampler_state"):
        ld.sample(model, None, initial_state=cut)


def test_the_sampler_state_is_a_dataset_over_the_unconstrained_coordinates(x64):
    model, _ = models.conjugate_normal(models.draws())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        idata = ld.sample(model, jax.random.key(0), num_chains=2, num_warmup=30, num_samples=20)
    state = idata.sampler_state
    assert isinstance(state, xr.Dataset)
    assert list(state["unconstrained"].values) == ["mu[0]", "mu[1]", "mu[2]"]
    np.testing.assert_array_equal(state["step"].values, [50, 50])
    np.testing.assert_array_equal(state["position"].values, idata.posterior["mu"].values[:, -1])
    assert state.attrs["key_impl"] == "threefry2x32"
    assert state.attrs["num_draws"] == 20


def test_the_long_runs_page_runs_as_written(x64):
    """docs/long_runs.md's example, as a user would paste it."""
    import re

    page = (ROOT / "docs" / "long_runs.md").read_text()
    block = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ld.SamplingWarning)
        exec(compile(block, "docs/long_runs.md", "exec"), {})


def test_ctrl_c_during_a_chunk_write_lands_after_its_commit():
    """A SIGINT while a chunk is being written is held until the chunk is committed."""
    from logdensity._sample._host import deferred_interrupt

    done = []
    # Python's own SIGINT handler, as in a user's process (xdist's workers ignore SIGINT)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)

    def write():
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here: held, not raised
            done.append("committed")

    try:
        with pytest.raises(KeyboardInterrupt):
            write()
        assert done == ["committed"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
