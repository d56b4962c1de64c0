"""The protocol as `from_jax` implements it: conformance, metadata, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import logdensity as ld
from logdensity import zoo
from logdensity.testing import check_logdensity, random_positions

from . import models


def _scalar_model():
    return ld.from_jax(lambda x: -0.5 * x**2, jnp.zeros(()))


def _nested_model():
    def logp(p):
        return -0.5 * (jnp.sum(p["a"] ** 2) + jnp.sum(p["b"]["c"] ** 2) + p["b"]["d"][0] ** 2)

    return ld.from_jax(
        logp, {"a": jnp.zeros((2, 3)), "b": {"c": jnp.ones(4), "d": [jnp.zeros(())]}}
    )


@pytest.mark.parametrize(
    "build",
    [
        _scalar_model,
        _nested_model,
        lambda: models.conjugate_normal(models.draws())[0],
        lambda: models.normal_invgamma(models.scale_draws())[0],
        functools.partial(zoo.build, "rat_tumors", "jax"),
    ],
    ids=["scalar", "nested", "vector+deterministic", "data+jacobian", "rat_tumors"],
)
@pytest.mark.usefixtures("x64")
def test_from_jax_conforms(build):
    model = build()
    assert isinstance(model, ld.LogDensity)
    check_logdensity(model, jax.random.key(1))


def test_conformance_float32():
    check_logdensity(zoo.build("rat_tumors", "jax"), jax.random.key(2))


def test_conformance_check_catches_a_wrong_gradient(x64):
    @jax.custom_jvp
    def f(x):
        return -0.5 * jnp.sum(x**2)

    f.defjvp(lambda primals, tangents: (f(*primals), 2.0 * jnp.sum(primals[0] * tangents[0])))
    with pytest.raises(AssertionError, match="grad vs finite differences"):
        check_logdensity(ld.from_jax(f, jnp.zeros(3)))


def test_leaf_names_and_identity_constrain():
    model = _nested_model()
    assert list(model.variables) == ["a", "b.c", "b.d[0]"]
    values = model.constrain(model.initial_position)
    assert values["a"].shape == (2, 3)
    back = model.unconstrain(values)
    assert jax.tree.structure(back) == jax.tree.structure(model.initial_position)
    assert ld.leaf_names(jnp.zeros(3)) == ["x"]


def test_variables_dims_coords_deterministics():
    model, _ = models.conjugate_normal(models.draws())
    assert model.variables["mu"] == ld.VariableInfo("mu", (3,), ("group",), False)
    assert model.variables["mu_total"].deterministic
    assert model.coords == {"group": ("a", "b", "c")}
    assert model.backend == "jax"


def test_flat_view_is_a_logdensity(x64):
    model = _nested_model()
    flat = model.flat
    assert isinstance(flat, ld.LogDensity)
    assert flat.dim == 2 * 3 + 4 + 1
    assert flat.initial_position.shape == (11,)
    x = jnp.arange(11.0) / 10
    assert jnp.allclose(flat(x), model(flat.unravel(x)))
    assert jnp.allclose(flat.ravel(flat.unravel(x)), x)


@functools.cache
def _rat_tumors_batched():
    """The model, and its log density and constrain over a batch, vmapped and mapped
    one point at a time (`lax.map`), each compiled once per batch size."""
    model = zoo.build("rat_tumors", "jax")
    both = lambda f: (jax.jit(jax.vmap(f)), jax.jit(lambda p: jax.lax.map(f, p)))  # noqa: E731
    return model, both(model), both(model.constrain)


@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_vmap_over_any_batch(batch, seed):
    model, (vmapped, mapped), (vmapped_constrain, mapped_constrain) = _rat_tumors_batched()
    points = random_positions(model, jax.random.key(seed), batch)
    lp = vmapped(points)
    assert lp.shape == (batch,)
    values = vmapped_constrain(points)
    assert values["theta"].shape == (batch, 71)
    assert values["alpha"].shape == (batch,)
    # and each batch row is the unbatched evaluation at that point (lax.map: one at a
    # time, compiled once)
    np.testing.assert_allclose(lp, mapped(points), rtol=1e-5)
    for name, value in mapped_constrain(points).items():
        np.testing.assert_allclose(values[name], value, rtol=1e-5, err_msg=name)


def test_new_data_of_the_same_shape_does_not_retrace():
    model = zoo.build("rat_tumors", "jax")
    traces = []

    @jax.jit
    def f(m, p):
        traces.append(None)
        return m(p)

    data = zoo.data("rat_tumors")
    other = zoo.build("rat_tumors", "jax", y=data["y"] // 2, n=data["n"])
    a = f(model, model.initial_position)
    b = f(other, model.initial_position)
    assert len(traces) == 1
    assert a != b
    c = f(model.replace_data(other.data), model.initial_position)
    assert len(traces) == 1
    assert c == b


def test_non_float_position_names_the_leaf():
    with pytest.raises(TypeError, match=r"'count'.*int32"):
        ld.from_jax(lambda p: 0.0, {"mu": jnp.zeros(()), "count": jnp.zeros((), jnp.int32)})


def test_non_scalar_logdensity_is_rejected():
    with pytest.raises(ValueError, match=r"scalar.*shape \(3,\)"):
        ld.from_jax(lambda x: x, jnp.zeros(3))


def test_dims_must_match():
    with pytest.raises(ValueError, match=r"'mu'.*shape"):
        ld.from_jax(lambda p: 0.0, {"mu": jnp.zeros(3)}, dims={"mu": ("a", "b")})
    with pytest.raises(ValueError, match="nope"):
        ld.from_jax(lambda p: 0.0, {"mu": jnp.zeros(3)}, dims={"nope": ("a",)})


def test_unconstrain_without_inverse_says_so():
    model = ld.from_jax(
        lambda p: -(p["x"] ** 2),
        {"x": jnp.zeros(())},
        constrain=lambda p: {"y": jnp.exp(p["x"])},
    )
    with pytest.raises(NotImplementedError, match="unconstrain="):
        model.unconstrain({"y": 1.0})


def test_missing_value_names_the_variable():
    model = _nested_model()
    with pytest.raises(KeyError, match=r"b\.c"):
        model.unconstrain({"a": np.zeros((2, 3))})


def test_rat_tumors_jacobian_is_included(x64):
    # The density in (log_a, log_b, logit_theta) must equal the density in
    # (alpha, beta, theta) times the Jacobian |d(constrained)/d(unconstrained)|.
    model = zoo.build("rat_tumors", "jax")
    p = random_positions(model, jax.random.key(3), 1)
    p = jax.tree.map(lambda x: x[0], p)
    v = model.constrain(p)
    log_jac = (
        jnp.log(v["alpha"])
        + jnp.log(v["beta"])
        + jnp.sum(jnp.log(v["theta"]) + jnp.log1p(-v["theta"]))
    )
    a, b, th = v["alpha"], v["beta"], v["theta"]
    d = zoo.data("rat_tumors")
    from jax.scipy.stats import beta as beta_dist, binom

    direct = (
        -2.5 * jnp.log(a + b)
        + jnp.sum(beta_dist.logpdf(th, a, b))
        + jnp.sum(binom.logpmf(d["y"], d["n"], th))
    )
    assert jnp.allclose(model(p), direct + log_jac, rtol=1e-10)


@pytest.mark.parametrize(
    ("constrain", "dims", "coords", "match"),
    [
        # two variables sharing a dim name with different lengths (ArviZ NaN-pads)
        (
            lambda p: {"a": p["x"][:2], "b": p["x"]},
            {"a": ("k",), "b": ("k",)},
            None,
            r"dim 'k' has length 2 in 'a' and 3 in 'b'",
        ),
        # a variable named like another's dim (xarray makes them one)
        (
            lambda p: {"k": p["x"][0], "b": p["x"]},
            {"b": ("k",)},
            None,
            r"variables \['k'\] have the names of dims",
        ),
        # ArviZ's own dims as names (a deterministic named chain was dropped)
        (lambda p: {"chain": p["x"][0], "b": p["x"]}, None, None, "ArviZ sample dim"),
        (lambda p: {"b": p["x"]}, {"b": ("k",)}, {"k": ["u", "v"]}, r"coords\['k'\] has 2"),
    ],
)
def test_names_and_dims_that_arviz_would_merge_pad_or_drop_are_refused(
    constrain, dims, coords, match
):
    with pytest.raises(ValueError, match=match):
        ld.from_jax(
            lambda p: -jnp.sum(p["x"] ** 2),
            {"x": jnp.zeros(3)},
            constrain=constrain,
            dims=dims,
            coords=coords,
        )
