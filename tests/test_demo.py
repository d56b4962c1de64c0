"""The demo, end to end on small settings: it samples, prints, and writes its files."""

import arviz as az

from logdensity.__main__ import main


def test_demo_writes_netcdf_and_png(tmp_path, capsys):
    assert (
        main(
            [
                "demo",
                "--out",
                str(tmp_path),
                "--warmup",
                "300",
                "--samples",
                "300",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "backend: jax" in out
    assert "vs quadrature: max |z|" in out
    idata = az.from_netcdf(tmp_path / "rat_tumors_jax.nc")
    assert idata.posterior["theta"].shape == (4, 300, 71)
    assert (tmp_path / "rat_tumors_jax.png").stat().st_size > 10_000
