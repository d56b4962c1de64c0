"""The demo CLI, end to end on small settings: it samples, prints, and writes its files."""

import os
import re
import subprocess
import sys

import arviz as az
import pytest

from logdensity._demo import installed_builders


@pytest.mark.slow  # every backend, 4 chains, in a fresh process: 95 s on 2 busy cores
def test_demo_writes_netcdf_and_png(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "logdensity", "demo", "--out", str(tmp_path),
         "--warmup", "300", "--samples", "300", "--no-progress"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "MPLBACKEND": "Agg"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "float64" in out
    # every installed backend ran, agrees with the quadrature reference (max |z| < 4 over
    # the MCSE-scaled means; sds within 20%: the sd of 1,200 draws with an ESS near 300
    # has a relative error of about 4%, and this is the worst of 73) and, past the first,
    # with the first one
    backends = list(installed_builders())
    assert re.findall(r"=== backend: (\w+)", out) == backends
    for z, sd in re.findall(r"vs quadrature: max \|z\| = ([\d.]+) .*max sd error ([\d.]+)%", out):
        assert float(z) < 4, z
        assert float(sd) < 20, sd
    assert len(re.findall("vs quadrature", out)) == len(backends)
    spreads = re.findall(r"(\w+) vs jax: log density offset spread ([\d.e+-]+), max gradient "
                         r"difference ([\d.e+-]+)", out)  # fmt: skip
    assert [b for b, *_ in spreads] == backends[1:]
    for _, spread, grad in spreads:
        assert float(spread) < 1e-8, spread
        assert float(grad) < 1e-8, grad
    # 300 draws are too few for the diagnostics' rules: warnings may come, and say why
    assert all(w.startswith("Sampling diagnostics:") for w in re.findall("warning: (.*)", out))
    idata = az.from_netcdf(tmp_path / "rat_tumors_jax.nc")
    assert idata.posterior["theta"].shape == (4, 300, 71)
    assert (tmp_path / "rat_tumors_jax.png").stat().st_size > 10_000
