"""The public conformance kit: `assert_equivalent` passes on equal models written in
different raw spaces, and fails, naming the variable, when a Jacobian is missing."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import logdensity as ld
from logdensity import zoo
from logdensity.testing import agreement, assert_equivalent, check_logdensity, positions
from logdensity.zoo._jax import _gp_logdensity

from . import models


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
    # the positive control: another backend's GP, with its own Jacobians, is equivalent
    pytest.importorskip("numpyro")
    assert_equivalent(zoo.build("gp", "numpyro", **data), good, jax.random.key(1))
    with pytest.raises(AssertionError, match=r"differ by more than a constant.*'log_noise'"):
        assert_equivalent(broken, zoo.build("gp", "numpyro", **data))


@functools.cache
def _gp_pair():
    with jax.enable_x64(True):
        gp = zoo.data("gp")
        return zoo.build("gp", "jax", **gp), zoo.build("gp", "numpyro", **gp)


# derandomized: the same 15 examples every run (a failing random draw once shrank 96 s)
@settings(
    max_examples=15, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.data())
def test_hypothesis_drawn_points(data):
    """Equal models written in two backends agree wherever hypothesis looks (up to 1.5
    in each raw coordinate from the initial point)."""
    pytest.importorskip("numpyro")
    with jax.enable_x64(True):
        good, other = _gp_pair()
        points = data.draw(positions(good, num_points=3))
        assert jax.tree.leaves(points)[0].shape[0] == 3
        assert_equivalent(good, other, points=points)
        one = data.draw(positions(good))
        assert np.isfinite(good(one))


# --- check_logdensity: each check fails on a model that breaks its promise ----------


class _Broken:
    """A `LogDensity` (not a pytree) that is `good` except where `overrides` say."""

    def __init__(self, good, **overrides):
        self.good, self.overrides = good, overrides

    def __call__(self, p):
        return self.overrides.get("call", self.good)(p)

    def __getattr__(self, name):
        if name in ("good", "overrides"):
            raise AttributeError(name)
        if name in self.overrides:
            return self.overrides[name]
        return ld.FlatView(self) if name == "flat" else getattr(self.good, name)


def _half_normal():
    """sigma ~ HalfNormal(1), sampled as log sigma: normalised, with its Jacobian."""

    def logdensity_fn(p):
        s = jnp.exp(p["log_sigma"])
        return jnp.log(2.0) + jax.scipy.stats.norm.logpdf(s) + p["log_sigma"]

    return ld.from_jax(
        logdensity_fn,
        {"log_sigma": jnp.zeros(())},
        constrain=lambda p: {"sigma": jnp.exp(p["log_sigma"])},
        unconstrain=lambda v: {"log_sigma": jnp.log(jnp.asarray(v["sigma"]))},
    )


@jax.custom_batching.custom_vmap
def _first_of_batch(x):
    return x


@_first_of_batch.def_vmap
def _first_of_batch_rule(axis_size, in_batched, x):  # a wrong batching rule
    return jnp.broadcast_to(x[0], x.shape), True


def _retracing_model(good, per):
    """A pytree model whose static data is a fresh object at every flattening
    (`per="flattening"`: every call retraces), or per instance (`"instance"`: one trace
    per model object, so every equal model rebuilt, e.g. with new data, retraces)."""

    @jax.tree_util.register_pytree_node_class
    class Retracing:
        def __init__(self, model):
            self.model, self.aux = model, object()

        def tree_flatten(self):
            return (self.model,), (object() if per == "flattening" else self.aux)

        @classmethod
        def tree_unflatten(cls, aux, children):
            return cls(*children)

        def __call__(self, p):
            return self.model(p)

        def __getattr__(self, name):
            if name == "model":
                raise AttributeError(name)
            return getattr(self.model, name)

    return Retracing(good)


class _WrongFlat:
    def __init__(self, good):
        self.good = good.flat

    def __getattr__(self, name):
        if name == "good":
            raise AttributeError(name)
        return getattr(self.good, name)

    def __call__(self, x):
        return self.good(x) + x[0]  # not the pytree density


def _breakages():
    good = _half_normal()
    f32 = lambda p: good(p).astype(jnp.float32)  # noqa: E731
    nan_gradient = lambda p: good(p) + models.nan_gradient(p["log_sigma"])  # noqa: E731
    return {
        "scalar": dict(call=lambda p: jnp.stack([good(p)])),
        "finite": dict(call=lambda p: good(p) - jnp.inf),
        "dtype": dict(call=f32),
        "one trace per shape": "flattening",  # built apart: pytrees
        "one trace per structure": "instance",
        "eager == jit": dict(call=lambda p: good(p) + isinstance(p["log_sigma"], jax.core.Tracer)),
        "vmap": dict(call=lambda p: good({"log_sigma": _first_of_batch(p["log_sigma"])})),
        "constrain": dict(constrain=lambda p: {}),
        "constrain under vmap": dict(
            constrain=lambda p: {"sigma": jnp.exp(p["log_sigma"]) * jnp.ones(2)}
        ),
        "flat view": dict(flat=_WrongFlat(good)),
        "unconstrain(constrain(p)) == p": dict(
            unconstrain=lambda v: {"log_sigma": jnp.log1p(jnp.asarray(v["sigma"]))}
        ),
        "finite gradient": dict(call=nan_gradient),
        "grad vs finite differences": dict(
            call=lambda p: good(p) + jax.lax.stop_gradient(p["log_sigma"])
        ),
        "normalised on the unconstrained space": dict(call=lambda p: good(p) - p["log_sigma"]),
    }


def test_the_conformance_kit_passes_a_good_model(x64):
    check_logdensity(_half_normal(), normalized=True)


@pytest.mark.parametrize("check", list(_breakages()))
def test_each_conformance_check_fails_on_a_model_that_breaks_it(check, x64):
    good = _half_normal()
    overrides = _breakages()[check]
    if isinstance(overrides, str):
        broken = _retracing_model(good, per=overrides)
    else:
        broken = _Broken(good, **overrides)
    with pytest.raises(AssertionError, match=rf"check_logdensity: {re.escape(check)} failed"):
        check_logdensity(broken, normalized=True)


def test_normalised_is_for_small_models_only(x64):
    with pytest.raises(ValueError, match="at most 2 coordinates; this model has 73"):
        check_logdensity(zoo.build("rat_tumors", "jax"), normalized=True)


def test_normalised_sees_a_missing_jacobian_in_every_backend(x64):
    """The quadrature check on NumPyro's own HalfCauchy (its transforms, its Jacobian)
    and on a 2-D Dirichlet (stick-breaking), then with the Jacobian dropped."""
    numpyro = pytest.importorskip("numpyro")
    import numpyro.distributions as dist

    def half_cauchy():
        numpyro.sample("s", dist.HalfCauchy(2.0))

    def dirichlet():
        numpyro.sample("w", dist.Dirichlet(jnp.array([1.0, 2.0, 3.0])))

    for fn in (half_cauchy, dirichlet):
        check_logdensity(ld.from_numpyro(fn), normalized=True)
    good = ld.from_numpyro(half_cauchy)
    dropped = ld.from_jax(
        lambda p: good(p) - p["s"], good.initial_position, constrain=good.constrain
    )
    with pytest.raises(AssertionError, match="integrates to"):
        check_logdensity(dropped, normalized=True)
