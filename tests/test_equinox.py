"""The Equinox/parax adapter: conformance per kind of parax variable, names, rebuilt
modules, exact Jacobians (quadrature), errors, and the two seed tutorials."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

eqx = pytest.importorskip("equinox")
prx = pytest.importorskip("parax")
import distreqx.distributions as dd  # noqa: E402
from parax import distributions as pd  # noqa: E402
from parax.constraints import Interval  # noqa: E402

import logdensity as ld  # noqa: E402
from logdensity import zoo  # noqa: E402
from logdensity._demo import logdensity_offsets  # noqa: E402
from logdensity.testing import assert_equivalent, check_logdensity, match_names  # noqa: E402

from .conftest import short_run  # noqa: E402

FAST = {"num_warmup": 300, "num_samples": 300, "progress_bar": False}


class Layer(eqx.Module):
    weight: object
    bias: object

    def __call__(self, x):
        return jnp.tanh(x @ self.weight + self.bias)


class Net(eqx.Module):
    layers: list
    scale: object
    activation: object = jax.nn.relu  # a non-array leaf: static

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.scale * x


def _normal(shape):
    return dd.Normal(jnp.zeros(shape), jnp.ones(shape))


def _net(kind):
    """A two-layer net whose `layers[1].bias` is the variable under test."""
    w0 = prx.Random(_normal((2, 3)))
    w1 = prx.Random(_normal((3, 1)))
    special = {
        "random_positive": prx.Random(pd.LogNormal(jnp.zeros(1), jnp.ones(1))),
        "random_bounded": prx.Random(pd.Beta(2.0 * jnp.ones(1), 3.0 * jnp.ones(1))),
        "constrained": prx.Constrained(
            Interval(-1.0 * jnp.ones(1), 2.0 * jnp.ones(1)), value=jnp.zeros(1)
        ),
        "fixed": prx.Fixed(jnp.full(1, 0.3)),
        "derived": prx.Derived(jnp.exp, jnp.zeros(1)),
        "plain": jnp.zeros(1),
    }[kind]
    scale = prx.Random(pd.LogNormal(0.0, 1.0))
    return Net([Layer(w0, prx.Random(_normal(3))), Layer(w1, special)], scale)


def _mlp_log_likelihood(model, x, y):
    return jnp.sum(dd.Normal(model(x)[:, 0], 0.5 * jnp.ones(x.shape[0])).log_prob(y))


def _xy():
    x = jnp.linspace(-1, 1, 20).reshape(10, 2)
    return x, jnp.sin(x[:, 0]) + x[:, 1]


KINDS = ["random_positive", "random_bounded", "constrained", "fixed", "derived", "plain"]


@pytest.mark.parametrize("kind", KINDS)
def test_conformance_for_each_kind_of_variable(kind, x64):
    model = ld.from_equinox(_net(kind), _mlp_log_likelihood, *_xy(), flat_priors=kind == "plain")
    check_logdensity(model, num_points=4)
    names = set(model.variables)
    assert {"layers[0].weight", "layers[0].bias", "layers[1].weight", "scale"} <= names
    if kind == "fixed":
        assert "layers[1].bias" not in model.initial_position
        assert "layers[1].bias" not in names  # constant: not in the draws
    else:
        assert "layers[1].bias" in model.initial_position
        assert model.variables["layers[1].bias"].deterministic == (kind == "derived")


def test_tie_samples_the_source_and_reports_the_target(x64):
    net = prx.Tie(
        _net("plain"),
        target=lambda m: m.layers[1].bias,
        source=lambda m: m.scale,
        tie_fn=lambda s: -s * jnp.ones(1),
    )
    model = ld.from_equinox(net, _mlp_log_likelihood, *_xy())
    check_logdensity(model, num_points=4)
    assert "layers[1].bias" not in model.initial_position
    assert model.variables["layers[1].bias"].deterministic
    p = model.initial_position
    values = model.constrain(p)
    np.testing.assert_allclose(values["layers[1].bias"], -values["scale"] * jnp.ones(1))


def test_rebuilt_modules_predict_like_the_module_at_the_draws(x64):
    x, y = _xy()
    model = ld.from_equinox(_net("derived"), _mlp_log_likelihood, x, y)
    positions = ld.testing.random_positions(model, jax.random.key(0), 5)
    values = jax.vmap(model.constrain)(positions)
    rebuilt = jax.vmap(lambda v: model.rebuild(v)(x))(values)
    direct = jax.vmap(lambda p: model.module(p)(x))(positions)
    by_hand = jax.vmap(lambda p: prx.unwrap(_set_raw(_net("derived"), p))(x))(positions)
    np.testing.assert_allclose(rebuilt, direct, rtol=1e-12)
    np.testing.assert_allclose(direct, by_hand, rtol=1e-12)


def _set_raw(net, p):
    """The module with its raw values set by hand, as a user would without the adapter."""
    return eqx.tree_at(
        lambda n: (
            n.layers[0].weight.raw_value,
            n.layers[0].bias.raw_value,
            n.layers[1].weight.raw_value,
            n.layers[1].bias.raw_value,
            n.scale.raw_value,
        ),
        net,
        (
            p["layers[0].weight"],
            p["layers[0].bias"],
            p["layers[1].weight"],
            p["layers[1].bias"],
            p["scale"],
        ),
    )


class One(eqx.Module):
    x: object


def _log_mass(model, lo, hi, n=200_001):
    """log ∫ exp(log density) over the raw coordinate, by the trapezoid rule."""
    grid = jnp.linspace(lo, hi, n)
    lp = jax.vmap(lambda r: model({"x": r}))(grid)
    return float(jax.scipy.special.logsumexp(lp) + jnp.log(grid[1] - grid[0]))


@pytest.mark.parametrize(
    ("node", "bounds", "log_mass"),
    [
        (lambda: prx.Random(pd.Gamma(jnp.array(2.0), jnp.array(1.5))), (-40.0, 40.0), 0.0),
        (lambda: prx.Random(pd.Beta(jnp.array(2.0), jnp.array(5.0))), (-40.0, 40.0), 0.0),
        (lambda: prx.Random(pd.LogNormal(jnp.array(0.3), jnp.array(0.7))), (-12.0, 12.0), 0.0),
        # a flat prior on (-1, 2): mass 3
        (
            lambda: prx.Constrained(Interval(jnp.array(-1.0), jnp.array(2.0)), value=0.5),
            (-40.0, 40.0),
            np.log(3.0),
        ),
    ],
)
def test_prior_on_the_raw_space_keeps_its_mass(node, bounds, log_mass, x64):
    """Exact Jacobians: a prior pushed to the raw space keeps its total mass (1 for a
    proper prior). A missing or wrong log-Jacobian would not."""
    model = ld.from_equinox(One(node()), lambda m: 0.0)
    assert _log_mass(model, *bounds) == pytest.approx(log_mass, abs=1e-6)


def test_copula_raw_space_is_standard_normal_in_x64(x64):
    """parax's raw space for a prior with an icdf is its Gaussian copula: the raw log
    density is log N(r | 0, 1) up to a constant, out to ±7 sd in float64 (float32
    clips near ±5; see the docs)."""
    model = ld.from_equinox(
        One(prx.Random(pd.LogNormal(jnp.array(0.3), jnp.array(0.7)))), lambda m: 0.0
    )
    r = jnp.linspace(-7.0, 7.0, 29)
    diff = jax.vmap(lambda x: model({"x": x}))(r) - jax.scipy.stats.norm.logpdf(r)
    assert float(jnp.ptp(diff)) < 1e-6


def test_plain_module_with_a_pytree_of_priors(x64):
    layer = Layer(jnp.zeros((2, 1)), jnp.zeros(1))
    priors = Layer(dd.Normal(jnp.zeros((2, 1)), jnp.ones((2, 1))), None)
    x, y = _xy()
    model = ld.from_equinox(
        layer, lambda m, x, y: _mlp_log_likelihood(m, x, y), x, y, priors=priors,
        flat_priors=True,
    )  # fmt: skip
    check_logdensity(model, num_points=4)
    p = {"weight": jnp.array([[0.3], [-0.2]]), "bias": jnp.array([0.1])}
    by_hand = _mlp_log_likelihood(Layer(p["weight"], p["bias"]), x, y) + jnp.sum(
        jax.scipy.stats.norm.logpdf(p["weight"])
    )
    np.testing.assert_allclose(model(p), by_hand, rtol=1e-12)


def test_errors_name_the_path():
    layer = Layer(jnp.zeros((2, 1)), 3)  # an int where the prior says a parameter is
    priors = Layer(None, dd.Normal(0.0, 1.0))
    with pytest.raises(TypeError, match=r"'bias'.*not a floating-point array"):
        ld.from_equinox(layer, lambda m: 0.0, priors=priors)
    with pytest.raises(ValueError, match="structure"):
        ld.from_equinox(layer, lambda m: 0.0, priors={"weight": None})
    pair = {"a": jnp.zeros(()), "b": jnp.zeros(())}
    tree_prior = prx.Probabilize(dd.Normal(0.0, 1.0), raw_value=pair)
    with pytest.raises(NotImplementedError, match=r"'x' is a parax Probabilize over a pytree"):
        ld.from_equinox(One(tree_prior), lambda m: 0.0)
    with pytest.raises(ValueError, match="no free leaf"):
        ld.from_equinox(One(prx.Fixed(jnp.ones(2))), lambda m: 0.0)
    with pytest.raises(ValueError, match="scalar"):
        ld.from_equinox(One(jnp.ones(2)), lambda m: m.x, flat_priors=True)


def test_a_leaf_without_a_prior_is_refused_naming_it_and_the_fixes():
    """Issue 15: a plain float array (fixed random features, say) was sampled under a
    flat improper prior without a word."""

    class Features(eqx.Module):
        w: object
        features: object

    module = Features(prx.Random(_normal(3)), jnp.ones(3))
    with pytest.raises(ValueError, match=r"\['features'\].*flat.*parax.Fixed.*flat_priors=True"):
        ld.from_equinox(module, lambda m: jnp.sum(m.w * m.features))
    fixed = ld.from_equinox(
        Features(module.w, prx.Fixed(jnp.ones(3))), lambda m: jnp.sum(m.w * m.features)
    )
    assert list(fixed.initial_position) == ["w"]
    flat = ld.from_equinox(module, lambda m: jnp.sum(m.w * m.features), flat_priors=True)
    assert set(flat.initial_position) == {"w", "features"}


def test_a_multivariate_normal_diag_prior():
    """Issue 15: `prx.Random(dd.MultivariateNormalDiag(...))` crashed ("bad operand type
    for unary -"): recombining the module dropped its bijector's integer `ndims`."""
    model = ld.from_equinox(
        One(prx.Random(dd.MultivariateNormalDiag(jnp.zeros(2), 2.0 * jnp.ones(2)))),
        lambda m: 0.0,
    )
    # parax's raw space for it is the whitened one: value = loc + scale * raw
    raw = jnp.array([0.3, -1.0])
    value = model.constrain({"x": raw})["x"]
    np.testing.assert_allclose(value, 2.0 * raw, rtol=1e-6)
    expected = jnp.sum(jax.scipy.stats.norm.logpdf(value, 0.0, 2.0)) + 2 * jnp.log(2.0)
    np.testing.assert_allclose(model({"x": raw}), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(model)({"x": raw}), expected, rtol=1e-6)
    check_logdensity(model, num_points=4)


def test_new_data_reuse_compiled_code():
    x, y = _xy()
    model = ld.from_equinox(_net("plain"), _mlp_log_likelihood, x, y, flat_priors=True)
    again = model.replace_data((x, y + 1.0))
    assert isinstance(again, ld.adapters.EquinoxModel)
    f = jax.jit(lambda m: m(m.initial_position))
    f(model)
    assert f._cache_size() == 1
    f(again)
    assert f._cache_size() == 1
    assert float(f(model)) != float(f(again))


class _Scaled(eqx.Module):
    x: object
    w: object


def _scaled(prior_scale, fixed):
    return _Scaled(prx.Random(dd.Normal(jnp.zeros(2), prior_scale * jnp.ones(2))), prx.Fixed(fixed))


def _likelihood(m):
    return -0.5 * jnp.sum(m.x**2) * jnp.mean(m.w)


def test_prior_parameters_are_folded_and_tell_models_apart():
    """Small constants (prior parameters) are compiled in: modules with other values are
    other programs, never a stale one; equal values share one; a large constant (here
    a 3,000-value `Fixed` array) stays a traced input."""
    f = jax.jit(lambda m: m(m.initial_position))
    small, large = jnp.ones(3), jnp.ones(3000)
    one = ld.from_equinox(_scaled(1.0, small), _likelihood)
    two = ld.from_equinox(_scaled(2.0, small), _likelihood)
    again = ld.from_equinox(_scaled(1.0, small), _likelihood)
    position = one.initial_position
    for model, scale in [(one, 1.0), (two, 2.0), (again, 1.0)]:
        value = model.constrain(position)["x"]  # parax's raw space: value = scale * raw
        np.testing.assert_allclose(value, scale * position["x"], rtol=1e-6)
        expected = jnp.sum(jax.scipy.stats.norm.logpdf(value, 0.0, scale)) + 2 * jnp.log(scale)
        expected = expected + _likelihood(model.module(position))
        np.testing.assert_allclose(f(model), expected, rtol=1e-6)
    assert f._cache_size() == 2
    assert not jax.tree.leaves(one._data[0])  # everything folded
    big = ld.from_equinox(_scaled(1.0, large), _likelihood)
    (traced,) = jax.tree.leaves(big._data[0])
    assert traced.shape == (3000,)
    check_logdensity(big, num_points=2)


@pytest.mark.slow  # the fast suite has the same check in tests/test_zoo.py
def test_rat_tumors_equinox_agrees_with_jax(x64):
    agreement = logdensity_offsets(
        zoo.build("rat_tumors", "jax"),
        zoo.build("rat_tumors", "equinox"),
        jax.random.key(0),
        num_points=30,
    )
    assert agreement["offset_spread"] < 1e-8
    assert agreement["max_grad_diff"] < 1e-8


@pytest.mark.slow  # the tutorial end to end: 27 s
def test_linear_model_tutorial(x64):
    """Tutorial 1: weight ~ N(0, 5), bias ~ N(0, 2), 50 points, truth 2.5 and 1.0. With
    these broad priors the posterior mean is least squares to within a few percent of
    a posterior sd, and the truth lies within 3 sd."""
    data = zoo.data("linear_regression")
    model = zoo.build("linear_regression", "equinox", x=data["x"], y=data["y"])
    # the density, Jacobians included, is the plain-JAX one's up to a constant: the
    # posterior checks below would not see a dropped Jacobian of the noise's transform
    assert_equivalent(model, zoo.build("linear_regression", "jax", x=data["x"], y=data["y"]))
    idata = ld.sample(model, jax.random.key(1), num_warmup=500, num_samples=500,
                      progress_bar=False)  # fmt: skip
    post = idata.posterior
    slope, intercept = np.polyfit(data["x"], data["y"], 1)
    for name, ls, truth in [("weight", slope, 2.5), ("bias", intercept, 1.0)]:
        mean, sd = float(post[name].mean()), float(post[name].std())
        assert abs(mean - ls) < 0.25 * sd, name
        assert abs(mean - truth) < 3 * sd, name
    assert int(idata.sample_stats["diverging"].sum()) == 0
    # functional posterior from rebuilt modules: mean line and 95% band on a grid
    grid = jnp.linspace(-2, 2, 11)
    draws = {k: jnp.asarray(post[k].values.reshape(-1)) for k in ("weight", "bias", "noise")}
    lines = jax.vmap(lambda v: model.rebuild(v)(grid))(draws)
    lo, hi = jnp.percentile(lines, jnp.array([2.5, 97.5]), axis=0)
    least_squares = slope * grid + intercept
    assert bool(jnp.all((lo < least_squares) & (least_squares < hi)))
    np.testing.assert_allclose(lines.mean(0), least_squares, atol=0.05)


@pytest.mark.slow
def test_gp_backends_agree(x64):
    """Tutorial 2: the exact GP in Equinox, NumPyro and plain JAX: log densities up to a
    constant, gradients, and posteriors (|z| < 4 with MCSE of both sides). Slow: the
    fast suite checks the same equivalence through `tests/test_zoo.py`."""
    data = zoo.data("gp")
    models = {
        "equinox": zoo.build("gp", "equinox", x=data["x"], y=data["y"]),
        "numpyro": zoo.build("gp", "numpyro", x=data["x"], y=data["y"]),
        "jax": zoo.build("gp", "jax", x=data["x"], y=data["y"]),
    }
    for name in ("numpyro", "jax"):
        agreement = logdensity_offsets(models["equinox"], models[name], jax.random.key(0))
        assert agreement["offset_spread"] < 1e-8, name
        assert agreement["max_grad_diff"] < 1e-8, name
    import arviz as az

    # 4 chains of 1,000: the lengthscale's ESS is about 0.2 per draw
    kw = {"num_warmup": 500, "num_samples": 1000, "progress_bar": False}
    runs = {k: ld.sample(m, jax.random.key(2), **kw) for k, m in models.items()}
    ref = runs["jax"].posterior
    for name in ("equinox", "numpyro"):
        post = runs[name].posterior
        for var in ("lengthscale", "amplitude", "noise"):
            se = np.hypot(float(az.mcse(post[var])[var]), float(az.mcse(ref[var])[var]))
            assert abs(float(post[var].mean() - ref[var].mean())) < 4 * se, (name, var)


def test_near_singular_kernel_does_not_raise(x64):
    """A kernel matrix that is not numerically positive definite gives a non-finite log
    density (NUTS rejects the point) instead of an exception from inside the sampler,
    also in a batch of chains next to healthy points."""
    data = zoo.data("gp")
    model = zoo.build("gp", "equinox", x=data["x"], y=data["y"])
    bad = model.unconstrain({"lengthscale": 1e4, "amplitude": 1e3, "noise": 1e-9})
    good = model.unconstrain({"lengthscale": 1.0, "amplitude": 1.0, "noise": 0.2})
    batch = jax.tree.map(lambda a, b: jnp.stack([a, b]), bad, good)
    lp, grad = jax.jit(jax.vmap(jax.value_and_grad(model)))(batch)
    assert not np.isfinite(float(lp[0]))
    assert np.isfinite(float(lp[1]))
    assert np.all(np.isfinite(jax.tree.leaves(grad)[0][1]))


class _Kernel(eqx.Module):
    scale: prx.Random


class _Located(eqx.Module):
    mu: prx.Random
    kernel: _Kernel


def _nested_and_numpyro():
    """One model twice: a module whose scale is `kernel.scale`, NumPyro's `scale`."""
    import numpyro
    import numpyro.distributions as dist

    y = jnp.array([0.3, -1.1, 0.8, 2.0])
    module = _Located(prx.Random(dd.Normal(0.0, 1.0)), _Kernel(prx.Random(pd.LogNormal(0.0, 1.0))))

    def log_likelihood(m, y):
        return jnp.sum(
            dd.Normal(m.mu * jnp.ones_like(y), m.kernel.scale * jnp.ones_like(y)).log_prob(y)
        )

    def numpyro_model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        scale = numpyro.sample("scale", dist.LogNormal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu, scale), obs=y)

    return ld.from_equinox(module, log_likelihood, y), ld.from_numpyro(numpyro_model, y)


def test_equivalence_matches_names_by_their_last_part(x64):
    """`kernel.scale` (the module's path) and `scale` (NumPyro's site) are one value:
    assert_equivalent matches them, and says which names it could not match."""
    nested, flat = _nested_and_numpyro()
    assert match_names(nested, flat) == {"mu": "mu", "kernel.scale": "scale"}
    assert_equivalent(nested, flat)
    assert_equivalent(flat, nested)
    renamed = nested.rename({"kernel.scale": "sigma"})
    with pytest.raises(KeyError, match=r"needs \['scale'\]"):
        assert_equivalent(renamed, flat)
    assert_equivalent(renamed, flat, names={"sigma": "scale"})


@short_run
def test_rename_gives_the_output_names_and_keeps_rebuild(x64):
    """`rename` maps the output names (a function of each name, or a dict); the draws
    carry them, `unconstrain` takes them, and `rebuild` still puts each value in place."""
    nested, _ = _nested_and_numpyro()
    renamed = nested.rename(lambda n: n.replace(".", "_"))
    assert set(renamed.variables) == {"mu", "kernel_scale"}
    values = {"mu": jnp.asarray(0.5), "kernel_scale": jnp.asarray(2.0)}
    position = renamed.unconstrain(values)
    np.testing.assert_allclose(renamed.constrain(position)["kernel_scale"], 2.0, rtol=1e-12)
    assert float(renamed(position)) == float(nested(nested.unconstrain(
        {"mu": 0.5, "kernel.scale": 2.0})))  # fmt: skip
    module = renamed.rebuild(values)
    assert float(module.kernel.scale) == 2.0
    idata = ld.sample(renamed, jax.random.key(0), num_chains=1, num_warmup=50, num_samples=50,
                      progress_bar=False)  # fmt: skip
    assert set(idata.posterior.data_vars) == {"mu", "kernel_scale"}
    assert idata.posterior.kernel_scale.dims == ("chain", "draw")  # attribute access works
    with pytest.raises(KeyError, match="rename got \\['nope'\\]"):
        nested.rename({"nope": "x"})
    with pytest.raises(ValueError, match="several values the names \\['mu'\\]"):
        nested.rename({"kernel.scale": "mu"})


def test_dims_come_from_the_modules_integer_fields():
    """`eqx.nn.Linear`'s weight is `(out_features, in_features)` and its bias
    `(out_features,)`, named per layer and shared; a square hidden layer's axes are
    ambiguous (15 and 15) and keep `{path}_dim_{i}`; dims given win."""
    mlp = eqx.nn.MLP(1, 1, 15, 2, key=jax.random.key(0))
    priors = jax.tree.map(
        lambda leaf: (
            dd.Normal(jnp.zeros_like(leaf), jnp.ones_like(leaf))
            if eqx.is_inexact_array(leaf)
            else None
        ),
        mlp,
    )

    def log_likelihood(m, x):
        return jnp.sum(jax.vmap(m)(x))

    model = ld.from_equinox(mlp, log_likelihood, jnp.ones((3, 1)), priors=priors)
    dims = {k: v.dims for k, v in model.variables.items()}
    assert dims["layers[0].weight"] == ("layers[0].out_features", "layers[0].in_features")
    assert dims["layers[0].bias"] == ("layers[0].out_features",)
    assert dims["layers[2].weight"] == ("layers[2].out_features", "layers[2].in_features")
    assert dims["layers[1].weight"] is None
    given = ld.from_equinox(mlp, log_likelihood, jnp.ones((3, 1)), priors=priors,
                            dims={"layers[0].bias": ("hidden",)})  # fmt: skip
    assert given.variables["layers[0].bias"].dims == ("hidden",)
