"""One data convention: every adapter's `data` and `replace_data` speak the structure
its user gave it, round-trip, refuse a mismatched key by name, and bind nothing by
position (eager and jitted evaluations agree)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import logdensity as ld
from logdensity import zoo

NEEDS = {"numpyro": "numpyro", "pytensor": "pytensor", "equinox": "parax", "jax": "jax"}


def _lp(model):
    return float(jax.jit(lambda m: m(m.initial_position))(model))


@pytest.mark.parametrize("backend", zoo.BACKENDS)
def test_every_zoo_backend_takes_the_same_dict(backend):
    """The zoo's linear regression: `{"x": ..., "y": ...}` in all four backends."""
    pytest.importorskip(NEEDS[backend])
    model = zoo.build("linear_regression", backend)
    data = model.data
    assert sorted(getattr(k, "name", k) for k in data) == ["x", "y"]
    same = model.replace_data(data)
    np.testing.assert_allclose(_lp(same), _lp(model), rtol=1e-6)
    y = np.asarray(zoo.data("linear_regression")["y"]) + 1.0
    new = model.replace_data({"x": zoo.data("linear_regression")["x"], "y": y})
    assert _lp(new) != _lp(model)
    # what replace_data took comes back from .data, in the same form
    back = {getattr(k, "name", k): np.asarray(v) for k, v in new.data.items()}
    np.testing.assert_allclose(back["y"], y, rtol=1e-6)
    np.testing.assert_allclose(_lp(model.replace_data(new.data)), _lp(new), rtol=1e-6)
    with pytest.raises(ValueError, match=r"missing \['y'\].*unexpected \['why'\]"):
        model.replace_data({"x": data_value(data, "x"), "why": y})


def data_value(data, name):
    return next(v for k, v in data.items() if getattr(k, "name", k) == name)


def test_from_jax_keeps_the_users_pytree():
    model = ld.from_jax(
        lambda p, d: -0.5 * jnp.sum((p - d["obs"]["y"]) ** 2) * d["scale"][0],
        jnp.zeros(2),
        data={"obs": {"y": jnp.ones(2)}, "scale": (jnp.ones(()),)},
    )
    assert jax.tree.structure(model.data) == jax.tree.structure({"obs": {"y": 0}, "scale": (0,)})
    again = model.replace_data({"obs": {"y": jnp.zeros(2)}, "scale": (jnp.ones(()),)})
    assert _lp(again) == 0.0
    with pytest.raises(ValueError, match=r"missing \['obs\.y'\]; unexpected \['obs\.z'\]"):
        model.replace_data({"obs": {"z": jnp.zeros(2)}, "scale": (jnp.ones(()),)})
    with pytest.raises(TypeError, match="'scale\\[0\\]' is not an array"):
        model.replace_data({"obs": {"y": jnp.zeros(2)}, "scale": ("one",)})


def test_numpyro_data_are_its_arguments_by_name():
    pytest.importorskip("numpyro")
    import numpyro
    import numpyro.distributions as dist

    def model(sigma, num_groups, y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 5))
        with numpyro.plate("g", num_groups):
            numpyro.sample("y", dist.Normal(mu, sigma), obs=y)

    m = ld.from_numpyro(model, np.ones(3), 3, y=np.zeros(3))
    assert list(m.data) == ["sigma", "y"]  # the int is static, not data
    again = m.replace_data({"y": np.ones(3), "sigma": np.ones(3)})  # any order: by name
    assert _lp(again) != _lp(m)
    np.testing.assert_allclose(np.asarray(again.data["y"]), np.ones(3))
    with pytest.raises(ValueError, match=r"missing \['y'\], unexpected \['obs'\]"):
        m.replace_data({"sigma": np.ones(3), "obs": np.ones(3)})


def test_numpyro_arguments_named_like_our_keywords():
    pytest.importorskip("numpyro")
    import numpyro
    import numpyro.distributions as dist

    def model(coords, dims=None):
        numpyro.sample("x", dist.Normal(coords.sum(), 1.0))

    with pytest.raises(TypeError, match=r"model_kwargs=\{'coords': \.\.\.\}"):
        ld.from_numpyro(model, coords={"x": [0]})
    m = ld.from_numpyro(model, model_kwargs={"coords": np.ones(2)}, coords={"k": [0, 1]})
    assert list(m.data) == ["coords"]
    assert m.coords == {"k": (0, 1)}  # ours went to us, the model's to the model


def test_pytensor_data_by_variable_and_by_name():
    pytest.importorskip("pytensor")
    import pytensor.tensor as pt

    mu = pt.scalar("mu")
    # declared in the order b, a: a dict that went through jit comes back key-sorted
    b, a = pt.vector("b", shape=(3,)), pt.vector("a", shape=(3,))
    logp = -0.5 * pt.sum((a - mu) ** 2) - 2.0 * pt.sum((b - mu) ** 2)
    data = {b: np.arange(3.0), a: np.ones(3)}
    model = ld.from_pytensor(logp, [mu], data=data)
    eager = float(model(model.initial_position))
    np.testing.assert_allclose(_lp(model), eager, rtol=1e-6)
    np.testing.assert_allclose(eager, -0.5 * 3 - 2.0 * 5.0, rtol=1e-6)
    assert list(model.data) == [b, a]
    by_name = model.replace_data({"a": np.zeros(3), "b": np.zeros(3)})
    by_variable = model.replace_data({a: np.zeros(3), b: np.zeros(3)})
    assert _lp(by_name) == _lp(by_variable) == 0.0
    with pytest.raises(ValueError, match=r"missing \['a'\], unexpected \['c'\]"):
        model.replace_data({"b": np.zeros(3), "c": np.zeros(3)})


def test_equinox_positional_and_keyword_data():
    pytest.importorskip("parax")
    import equinox as eqx

    class Mean(eqx.Module):
        mu: jax.Array

    def log_likelihood(m, y, *, scale=1.0):
        return -0.5 * jnp.sum((y - m.mu) ** 2) / scale

    positional = ld.from_equinox(Mean(jnp.zeros(())), log_likelihood, jnp.ones(2), flat_priors=True)
    assert isinstance(positional.data, tuple)
    assert len(positional.data) == 1
    np.testing.assert_allclose(_lp(positional.replace_data((jnp.zeros(2),))), 0.0)
    with pytest.raises(ValueError, match=r"tuple of 1 data arguments.*got 2 arguments"):
        positional.replace_data((jnp.zeros(2), jnp.zeros(2)))
    keyword = ld.from_equinox(
        Mean(jnp.zeros(())),
        log_likelihood,
        data={"y": jnp.ones(2), "scale": jnp.ones(())},
        flat_priors=True,
    )
    assert sorted(keyword.data) == ["scale", "y"]
    np.testing.assert_allclose(_lp(keyword), _lp(positional))
    with pytest.raises(ValueError, match=r"missing \['scale'\]"):
        keyword.replace_data({"y": jnp.ones(2)})


def test_pymc_says_its_data_are_baked_in():
    pytest.importorskip("pymc")
    model = zoo.build("rat_tumors", "pymc")
    assert model.data is None
    with pytest.raises(NotImplementedError, match=r"pm\.set_data"):
        model.replace_data({"y": np.zeros(71)})


def test_sbc_takes_any_logdensity_with_replace_data():
    from logdensity.testing import sbc

    model = zoo.build("linear_regression", "jax")

    class Plain:
        """A LogDensity without replace_data."""

        def __call__(self, position):
            return model(position)

        initial_position = property(lambda self: model.initial_position)
        variables = property(lambda self: model.variables)
        coords = property(lambda self: model.coords)
        backend = "plain"
        constrain, unconstrain = model.constrain, model.unconstrain

    with pytest.raises(TypeError, match="Plain has no replace_data"):
        sbc(Plain(), lambda key: ({}, model.data), jax.random.key(0))
    # the flat view is a LogDensity with replace_data
    result = sbc(
        model.flat,
        lambda key: ({"bias": jnp.zeros(())}, model.data),
        jax.random.key(0),
        num_simulations=2,
        num_warmup=10,
        num_draws=9,
        thin=1,
        num_bins=2,
    )
    assert result.ranks["bias"].shape == (2,)
