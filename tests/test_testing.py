"""The public conformance kit: `assert_equivalent` passes on equal models written in
different raw spaces, and fails, naming the variable, when a Jacobian is missing."""

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import logdensity as ld
from logdensity import zoo
from logdensity.testing import agreement, assert_equivalent, positions
from logdensity.zoo._jax import _gp_logdensity


def _gp_without_noise_jacobian(x, y):
    good = zoo.build("gp", "jax", x=x, y=y)
    return ld.from_jax(
        lambda p, d: _gp_logdensity(p, d) - p["log_noise"],  # drops log|d noise / d log_noise|
        good.initial_position,
        constrain=good._constrain_fn,
        unconstrain=good._unconstrain_fn,
        data=good.data,
    )


def test_equal_models_in_different_raw_spaces_are_equivalent(x64):
    pytest.importorskip("parax")
    # parax maps alpha, beta > 0 by softplus, the plain-JAX version by exp
    assert_equivalent(zoo.build("rat_tumors", "equinox"), zoo.build("rat_tumors", "jax"))
    result = agreement(zoo.build("rat_tumors", "equinox"), zoo.build("rat_tumors", "jax"))
    assert result["offset_spread"] < 1e-8


def test_a_missing_jacobian_is_caught_and_named(x64):
    data = zoo.data("gp")
    broken, good = _gp_without_noise_jacobian(data["x"], data["y"]), zoo.build("gp", "jax", **data)
    with pytest.raises(AssertionError, match=r"differ by more than a constant.*'log_noise'"):
        assert_equivalent(broken, good)
    assert_equivalent(zoo.build("gp", "jax", **data), good, jax.random.key(1))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hypothesis_drawn_points(data):
    """Equal models written in two backends agree wherever hypothesis looks (up to 3
    in each raw coordinate from the initial point)."""
    with jax.enable_x64(True):
        gp = zoo.data("gp")
        good, other = zoo.build("gp", "jax", **gp), zoo.build("gp", "numpyro", **gp)
        points = data.draw(positions(good, num_points=3))
        assert jax.tree.leaves(points)[0].shape[0] == 3
        assert_equivalent(good, other, points=points)
        one = data.draw(positions(good))
        assert np.isfinite(good(one))
