"""The demo CLI, end to end on small settings: it samples, prints, and writes its files."""

import os
import subprocess
import sys

import arviz as az


def test_demo_writes_netcdf_and_png(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "logdensity", "demo", "--out", str(tmp_path),
         "--warmup", "300", "--samples", "300", "--no-progress"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "MPLBACKEND": "Agg"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "float64" in out
    assert "backend: jax" in out
    assert "vs quadrature: max |z|" in out
    idata = az.from_netcdf(tmp_path / "rat_tumors_jax.nc")
    assert idata.posterior["theta"].shape == (4, 300, 71)
    assert (tmp_path / "rat_tumors_jax.png").stat().st_size > 10_000
    if "backend: numpyro" in out:
        assert "numpyro vs jax: log density offset spread" in out
    if "backend: equinox" in out:
        assert "equinox vs jax: log density offset spread" in out
