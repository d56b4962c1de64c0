"""Scaling out: data sharded over devices (`shard_data`), chains × data, and the loop
under `jax.distributed` with two processes. The forced-device runs are child processes
(`tests/_distributed.py`): a process's device count is fixed when JAX starts."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

import logdensity as ld
from logdensity import zoo
from tests.conftest import short_run

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def child(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], env=ENV, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
@pytest.mark.parametrize("devices", [2, 4])
def test_sharded_log_density_and_gradient_equal_the_unsharded(tmp_path, devices):
    """Every zoo model in every backend whose data are traced inputs: the log density
    and gradient with the data split over 2 and 4 devices equal the unsharded ones to
    1e-10 (relative to 1 + |value|, float64), and the compiled gradient holds an
    all-reduce (the rows really were split). The models whose data are constants of
    their program (the zoo's PyTensor rat tumors, eight schools and GP) are refused
    with the way to pass them as data."""
    out = tmp_path / "agree"
    result = child("-m", "tests._distributed", "agree", str(out), str(devices))
    assert result.returncode == 0, result.stderr[-3000:]
    worst = json.loads(out.with_suffix(".json").read_text())
    assert len(worst) == len(zoo.MODELS) * len(zoo.BACKENDS)
    refused = {k: v for k, v in worst.items() if isinstance(v, str) and "no traced data" in v}
    assert set(refused) == {
        f"{m}/pytensor"
        for m in ("rat_tumors", "eight_schools_noncentered", "eight_schools_centered", "gp")
    }, refused
    for v in refused.values():
        assert "data={variable: value}" in v
    compared = {k: v for k, v in worst.items() if k not in refused}
    assert all(isinstance(v, float) for v in compared.values()), compared  # an all-reduce
    assert max(compared.values()) < 1e-10, compared


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@short_run
def test_two_processes_draw_what_one_process_draws(tmp_path, x64):
    """Two processes under `jax.distributed` (coordinator on localhost, Gloo CPU
    collectives, 2 forced devices each) against one process with 4 forced devices:
    chains over every device, chains × data on a 2 × 2 mesh spanning both processes,
    and a checkpointed run. Both processes return the same draws as the one process;
    only process 0 shows progress and warnings, and only it writes the checkpoint."""
    single = child("-m", "tests._distributed", "sample", str(tmp_path / "single"))
    assert single.returncode == 0, single.stderr[-3000:]
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests._distributed",
                "sample",
                str(tmp_path / "multi"),
                str(i),
                port,
            ],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    one = np.load(tmp_path / "single-0.npz")
    for i in range(2):
        got = np.load(tmp_path / f"multi-{i}.npz")
        for run in ("parallel", "chains_by_data", "checkpointed"):
            assert got[run].shape == (4, 30, 3)
            np.testing.assert_allclose(got[run], one[run], rtol=0, atol=1e-12, err_msg=run)
    writes = [int(np.load(tmp_path / f"multi-{i}.npz")["writes"]) for i in range(2)]
    assert writes[0] > 0, writes
    assert writes[1] == 0, writes
    # the run is short: process 0 warns about its diagnostics, process 1 says nothing
    err0, err1 = outs[0][1], outs[1][1]
    for said in ("Sampling diagnostics", "sampling:"):
        assert said in err0
        assert said not in err1
    assert "warmup:" not in err1
    idata = ld.resume(tmp_path / "multi-store", zoo.build("logistic_regression", "numpyro"))
    np.testing.assert_array_equal(idata.posterior["weights"].values, one["checkpointed"])


SHARDED_SCRIPT = textwrap.dedent(
    """
    import warnings; warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", "Sampling diagnostics")
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_num_cpu_devices", 4)
    from jax.sharding import Mesh
    import logdensity as ld
    from logdensity import zoo
    assert jax.device_count() == 4, jax.devices()
    kw = dict(num_chains=4, num_warmup=30, num_samples=20, progress_bar=False)
    model = zoo.build("logistic_regression", "numpyro")  # 200 rows
    plain = ld.sample(model, jax.random.key(0), **kw)
    sharded = ld.shard_data(model)
    x = sharded.data["x"]
    assert x.sharding.mesh.shape == {"data": 4}, x.sharding
    assert [s.data.shape for s in x.addressable_shards] == [(50, 3)] * 4
    rows = ld.sample(sharded, jax.random.key(0), **kw)
    mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("chain", "data"))
    both = ld.sample(ld.shard_data(model, mesh), jax.random.key(0), chain_method="parallel", **kw)
    for idata in (rows, both):
        got, want = idata.posterior["weights"].values, plain.posterior["weights"].values
        np.testing.assert_allclose(got, want, atol=1e-9)
    # 71 rows over 4 devices: stored whole, split inside the programs
    rats = zoo.build("rat_tumors", "numpyro")
    sharded = ld.shard_data(rats)
    assert sharded.data["y"].sharding.is_fully_replicated
    grad = jax.jit(jax.value_and_grad(lambda x, m: m(x)))
    x0 = rats.flat.initial_position + 0.3
    for a, b in zip(grad(x0, rats.flat), grad(x0, sharded.flat)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert "all-reduce" in grad.lower(x0, sharded.flat).compile().as_text()
    try:
        ld.sample(ld.shard_data(model), jax.random.key(0), chain_method="parallel", **kw)
    except ValueError as e:
        assert "'chain' axis" in str(e), e
    else:
        raise AssertionError("parallel chains need the mesh's chain axis")
    print("OK")
    """
)


@pytest.mark.slow
def test_chains_by_data_on_four_devices_draw_the_unsharded_draws():
    """The logistic regression with its 200 rows over 4 devices (50 each), and chains ×
    data on a 2 × 2 mesh, draws what the unsharded model draws (to 1e-9: the sum over
    rows is reduced in another order, and NUTS amplifies that over a long run, so the
    run is short); rat tumors' 71 rows, split inside the program, give the unsharded
    log density and gradient through an all-reduce."""
    result = child("-c", SHARDED_SCRIPT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


def test_shard_data_refuses_what_it_cannot_split():
    model = zoo.build("eight_schools_noncentered", "jax")
    mesh = Mesh(np.array(jax.devices()[:1]), ("rows",))
    with pytest.raises(ValueError, match=r"axes \('rows',\), not 'data'"):
        ld.shard_data(model, mesh)
    with pytest.raises(ValueError, match=r"no data array has 9 rows.*: 8"):
        ld.shard_data(model, rows=9)
    with pytest.raises(TypeError, match=r"jax\.sharding\.Mesh"):
        ld.shard_data(model, mesh=jax.devices())
    with pytest.raises(ValueError, match=r"no traced data.*from_pytensor"):
        ld.shard_data(zoo.build("rat_tumors", "pymc"))
    with pytest.raises(ValueError, match=r"no traced data.*data=\{variable: value\}"):
        ld.shard_data(zoo.build("gp", "pytensor"))
    scalar = ld.from_jax(lambda p, d: -0.5 * (p - d) ** 2, jnp.zeros(()), data=jnp.ones(()))
    with pytest.raises(ValueError, match="scalars"):
        ld.shard_data(scalar)


def test_threaded_chains_are_refused_for_sharded_data():
    """Each threaded chain is a program of its own on the default device: for data on
    a mesh it is refused, naming the methods that work."""
    model = ld.shard_data(zoo.build("linear_regression", "numpyro"))
    with pytest.raises(ValueError, match=r"chain_method='threaded'.*'parallel'"):
        ld.sample(model, jax.random.key(0), chain_method="threaded", num_samples=5)


def test_shard_data_on_one_device_is_the_same_model(x64):
    """On one device (and for the flat view) the sharded model is the model: same log
    density and gradient, eager and jitted, and `replace_data` still works."""
    model = zoo.build("linear_regression", "numpyro")
    sharded = ld.shard_data(model)
    x = jax.tree.map(lambda a: a + 0.3, model.initial_position)
    for f in (lambda m: m(x), lambda m: jax.jit(lambda m: jax.grad(m)(x))(m)):
        got, want = f(sharded), f(model)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), got, want)
    flat = ld.shard_data(model.flat)
    assert isinstance(flat, ld.FlatView)
    np.testing.assert_allclose(flat(flat.initial_position), model.flat(model.flat.initial_position))
    new = sharded.replace_data(model.data)
    np.testing.assert_allclose(new(x), model(x), rtol=1e-12)
