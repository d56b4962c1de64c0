"""The plugin passes logdensity's conformance kit and samples what it should."""

import jax
import numpy as np
import numpyro.distributions as dist
import pytest

import logdensity as ld
from logdensity.testing import check_logdensity


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize(
    "distribution",
    [
        dist.Normal(1.0, 2.0),
        dist.Gamma(np.array([2.0, 3.0]), 1.5),
        dist.Dirichlet(np.array([1.0, 2.0, 3.0])),
        dist.LKJCholesky(3, 2.0),
    ],
    ids=["normal", "gamma", "dirichlet", "lkj-cholesky"],
)
def test_conforms(distribution, x64):
    """Every check of the kit; on the distributions of at most 2 unconstrained
    coordinates also the normalisation by quadrature, which sees a missing Jacobian."""
    model = ld.adapt(distribution)
    check_logdensity(model, normalized=model.flat.dim <= 2)


def test_found_through_the_entry_point():
    assert ld.adapters.available()["distribution"] == "logdensity_distribution:adapter"
    model = ld.adapt(dist.Beta(2.0, 5.0))
    assert model.backend == "distribution"


def test_samples_a_dirichlet(x64):
    alpha = np.array([1.0, 2.0, 3.0])
    idata = ld.sample(
        ld.adapt(dist.Dirichlet(alpha)),
        jax.random.key(0),
        num_warmup=300,
        num_samples=500,
        num_chains=2,
        progress_bar=False,
    )
    mean = idata.posterior["x"].mean(("chain", "draw")).values
    np.testing.assert_allclose(mean, alpha / alpha.sum(), atol=0.03)


def test_discrete_support_is_refused():
    with pytest.raises(TypeError, match="Poisson has a discrete support"):
        ld.adapt(dist.Poisson(3.0))
