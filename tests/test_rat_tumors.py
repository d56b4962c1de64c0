"""The rat-tumor posterior against a quadrature reference computed without MCMC."""

import jax
import numpy as np
import pytest

import logdensity as ld
from logdensity import _demo, zoo


@pytest.fixture(scope="module")
def reference():
    return zoo.rat_tumors_quadrature()


def test_quadrature_grid_holds_the_posterior(reference):
    # a finer grid moves nothing that matters: the grid resolves the posterior
    finer = zoo.rat_tumors_quadrature(grid_size=900)
    for key in ("mean_u", "sd_u", "mean_v", "sd_v"):
        assert abs(finer[key] - reference[key]) < 1e-3 * abs(reference[key]), key
    np.testing.assert_allclose(finer["mean_theta"], reference["mean_theta"], rtol=1e-4)
    # and BDA3's posterior sits where the book puts it (Fig. 5.3: log(a/b) ~ -1.8)
    assert -1.9 < reference["mean_u"] < -1.7


def test_rat_tumors_matches_quadrature(reference):
    idata = ld.sample(zoo.build("rat_tumors", "jax"), jax.random.key(0), progress_bar=False)
    stats = idata.sample_stats.attrs
    assert stats["num_divergences"] == 0
    assert stats["max_rhat"] < 1.01
    agreement = _demo.reference_z(idata, reference)
    # 73 quantities compared: Bonferroni at 1% two-sided gives |z| < 3.9; sd within 10%
    assert agreement["max_abs_z"] < 3.9, agreement
    assert agreement["max_sd_error"] < 0.1, agreement
