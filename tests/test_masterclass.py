"""Seed tutorial 2, the "regression masterclass": NumPyro models whose sampled weights are
injected into Equinox modules with `eqx.tree_at`, sampled with `logdensity.sample`.

Noisy sinc, 100 training points in [-10, 10], noise sd 0.05, R² of the posterior-mean
function on a 400-point test grid against the noiseless sinc, and the noise sd recovered.
4 chains of 1,000 draws (R-hat over the grid's 400 values needs them); the thresholds
are the tutorial's: linear < 0.3 (a negative control: a line cannot fit a sinc),
MLP > 0.7, RFF > 0.8, hierarchical-amplitude RFF GP > 0.8, deep RFF > 0.7.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

numpyro = pytest.importorskip("numpyro")
eqx = pytest.importorskip("equinox")
import numpyro.distributions as dist  # noqa: E402

import logdensity as ld  # noqa: E402

X_SCALE = 10.0  # inputs enter the networks as x / 10, in [-1, 1]


def sinc(x):
    return jnp.sinc(x / jnp.pi)  # sin(x) / x


def data():
    key_x, key_e = jax.random.split(jax.random.key(0))
    x = jax.random.uniform(key_x, (100,), minval=-10.0, maxval=10.0)
    y = sinc(x) + 0.05 * jax.random.normal(key_e, (100,))
    return np.asarray(x), np.asarray(y), np.linspace(-10.0, 10.0, 400)


class RFF(eqx.Module):
    """Random Fourier features sqrt(2/D) cos(omega x + phase) (fixed), then a linear readout."""

    omega: jax.Array
    phase: jax.Array
    readout: eqx.nn.Linear

    def __init__(self, in_size, num_features, out_size, lengthscale, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.omega = jax.random.normal(k1, (num_features, in_size)) / lengthscale
        self.phase = jax.random.uniform(k2, (num_features,), maxval=2 * jnp.pi)
        self.readout = eqx.nn.Linear(num_features, out_size, key=k3)

    def __call__(self, x):
        d = self.phase.shape[0]
        return self.readout(jnp.sqrt(2.0 / d) * jnp.cos(self.omega @ x + self.phase))


def _inject(net, where, values):
    return eqx.tree_at(where, net, values)


def _likelihood(net, x, y, x_grid):
    f = jax.vmap(net)(x[:, None] / X_SCALE)[:, 0]
    numpyro.deterministic("f_grid", jax.vmap(net)(x_grid[:, None] / X_SCALE)[:, 0])
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.2))
    with numpyro.plate("point", x.shape[0]):
        numpyro.sample("y", dist.Normal(f, sigma), obs=y)


def _normal_like(name, leaf, scale=1.0):
    return numpyro.sample(name, dist.Normal(0.0, scale).expand(leaf.shape).to_event(leaf.ndim))


def linear_model(net, x, y, x_grid):
    w = _normal_like("weight", net.weight)
    b = _normal_like("bias", net.bias)
    _likelihood(_inject(net, lambda n: (n.weight, n.bias), (w, b)), x, y, x_grid)


def mlp_model(net, x, y, x_grid):
    layers = net.layers
    values = tuple(
        _normal_like(f"{kind}{i}", getattr(layer, kind), 2.0 if kind == "weight" else 1.0)
        for i, layer in enumerate(layers)
        for kind in ("weight", "bias")
    )
    where = lambda n: tuple(getattr(l, k) for l in n.layers for k in ("weight", "bias"))  # noqa: E731, E741
    _likelihood(_inject(net, where, values), x, y, x_grid)


def rff_model(net, x, y, x_grid):
    w = _normal_like("weight", net.readout.weight)
    b = _normal_like("bias", net.readout.bias)
    _likelihood(_inject(net, lambda n: (n.readout.weight, n.readout.bias), (w, b)), x, y, x_grid)


def rff_gp_model(net, x, y, x_grid):
    # hierarchical amplitude: w ~ N(0, amplitude²), the RFF approximation of a GP whose
    # prior variance is amplitude²; non-centered so NUTS sees a unit-scale geometry
    amplitude = numpyro.sample("amplitude", dist.HalfNormal(1.0))
    w_raw = _normal_like("weight_raw", net.readout.weight)
    b = _normal_like("bias", net.readout.bias)
    w = amplitude * w_raw
    _likelihood(_inject(net, lambda n: (n.readout.weight, n.readout.bias), (w, b)), x, y, x_grid)


class DeepRFF(eqx.Module):
    first: RFF
    second: RFF

    def __call__(self, x):
        return self.second(self.first(x))


def deep_rff_model(net, x, y, x_grid):
    w1 = _normal_like("weight1", net.first.readout.weight)
    w2 = _normal_like("weight2", net.second.readout.weight)
    b2 = _normal_like("bias2", net.second.readout.bias)
    where = lambda n: (n.first.readout.weight, n.second.readout.weight, n.second.readout.bias)  # noqa: E731
    net = _inject(net, where, (w1, w2, b2))
    _likelihood(net, x, y, x_grid)


def _networks():
    keys = jax.random.split(jax.random.key(1), 5)
    first = RFF(1, 40, 4, lengthscale=0.3, key=keys[3])
    # the first layer's bias is fixed at zero: it only shifts the second layer's phases
    first = eqx.tree_at(lambda n: n.readout.bias, first, jnp.zeros(4))
    return {
        "linear": (linear_model, eqx.nn.Linear(1, 1, key=keys[0])),
        "mlp": (mlp_model, eqx.nn.MLP(1, 1, 15, 1, activation=jnp.tanh, key=keys[1])),
        "rff": (rff_model, RFF(1, 40, 1, lengthscale=0.3, key=keys[2])),
        "rff_gp": (rff_gp_model, RFF(1, 40, 1, lengthscale=0.3, key=keys[2])),
        "deep_rff": (deep_rff_model, DeepRFF(first, RFF(4, 40, 1, lengthscale=1.0, key=keys[4]))),
    }


def r2(f_grid, x_grid):
    truth = np.asarray(sinc(jnp.asarray(x_grid)))
    return 1 - np.sum((f_grid - truth) ** 2) / np.sum((truth - truth.mean()) ** 2)


def fit(name, num_warmup=400, num_samples=1000, **kwargs):
    x, y, x_grid = data()
    model_fn, net = _networks()[name]
    model = ld.from_numpyro(model_fn, net, x, y, x_grid)
    idata = ld.sample(model, jax.random.key(2), num_warmup=num_warmup, num_samples=num_samples,
                      progress_bar=False, **kwargs)  # fmt: skip
    f_mean = idata.posterior["f_grid"].mean(("chain", "draw")).values
    return r2(f_mean, x_grid), idata


# the divergence warning alone may come; any other warning still fails the test
RARE_DIVERGENCES = pytest.mark.filterwarnings(
    r"ignore:Sampling diagnostics. [0-9]+ divergent transitions after warmup\.$"
    ":logdensity.SamplingWarning"
)
# at most one divergence per 2,000 draws where the warning is let through (the bar of
# the posteriordb tests)
MAX_DIVERGENCES = {"rff_gp": 2}


@pytest.mark.parametrize(
    ("name", "min_r2", "kwargs", "warns"),
    [
        pytest.param("rff", 0.8, {}, None, marks=pytest.mark.slow),
        # the amplitude's hierarchy is a funnel: 7 divergences in 4,000 draws at 0.8; at
        # 0.95 none in the CI run of 15d3ed1, 1 on another machine at the same commit and
        # seed, with the compilation cache off too (XLA's code, so the draws, follow
        # the machine)
        pytest.param(
            "rff_gp",
            0.8,
            {"target_acceptance_rate": 0.95},
            None,
            marks=[pytest.mark.slow, RARE_DIVERGENCES],
        ),
        # hidden units permute and flip sign: chains settle in different modes
        pytest.param("mlp", 0.7, {}, "R-hat", marks=pytest.mark.slow),
        # two layers: 9-10 divergences in 4,000 draws in one process, none in another
        # (the draws follow XLA's compilation of the chunk at this level of detail)
        pytest.param("deep_rff", 0.7, {}, None, marks=[pytest.mark.slow, RARE_DIVERGENCES]),
    ],
)
def test_masterclass_fits_the_sinc(name, min_r2, kwargs, warns):
    """The tutorial's R² threshold, and the noise: the true sd 0.05 lies in the 99%
    posterior interval of sigma, so the fit neither misses the signal (sigma too
    large) nor chases the noise (too small)."""
    if warns:
        with pytest.warns(ld.SamplingWarning, match=warns):
            score, idata = fit(name, **kwargs)
    else:
        score, idata = fit(name, **kwargs)
    assert score > min_r2, f"{name}: R² = {score:.3f}"
    if name in MAX_DIVERGENCES:
        assert int(idata.sample_stats["diverging"].sum()) <= MAX_DIVERGENCES[name]
    lo, hi = np.quantile(idata.posterior["sigma"].values, [0.005, 0.995])
    assert lo < 0.05 < hi, (name, lo, hi)
    # the module's weights came back under their site names
    assert idata.posterior["f_grid"].shape[-1] == 400


def test_a_line_cannot_fit_the_sinc():
    """The negative control: R² under 0.3, and the noise sd takes up what the line
    misses (the sinc's sd about the best line, about 0.3, measured; the noise is 0.05)."""
    score, idata = fit("linear")
    assert score < 0.3, f"R² = {score:.3f}"
    assert float(idata.posterior["sigma"].mean()) > 0.2


@pytest.mark.parametrize(
    "name", ["linear", pytest.param("rff", marks=pytest.mark.slow),
             pytest.param("rff_gp", marks=pytest.mark.slow)],
)  # fmt: skip
def test_map_models_match_numpyro_svi_autodelta(name, x64):
    """The masterclass's MAP models: `find_map` (the mode of the constrained density,
    L-BFGS) against NumPyro's SVI with `AutoDelta` (which maximises the same log joint
    of the constrained values), run until its loss stops moving (Adam, 20,000 steps
    with a decaying rate). Ours reaches at least SVI's objective, and the modes agree
    within the optimiser's tolerance: the function on the grid within 1e-3, every
    latent within 2e-3 where the mode is well determined (in the RFF GP the amplitude
    and the weights' scale trade along a nearly flat ridge). The MLP and
    deep RFF are left out: their hidden units make many modes, and two optimisers
    may find different ones."""
    import optax
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoDelta

    x, y, x_grid = data()
    model_fn, net = _networks()[name]
    model = ld.from_numpyro(model_fn, net, x, y, x_grid)
    mode = ld.find_map(model)
    assert bool(mode.converged)
    guide = AutoDelta(model_fn)
    schedule = optax.exponential_decay(0.01, 20_000, 0.01)
    svi = SVI(model_fn, guide, optax.adam(schedule), Trace_ELBO())
    result = svi.run(jax.random.key(0), 20_000, net, x, y, x_grid, progress_bar=False)
    theirs = guide.median(result.params)
    # both maximise the same objective: ours is at least as high
    flat = model.flat
    x_svi = flat.ravel(model.unconstrain(theirs))
    objective_svi = flat(x_svi) - ld.log_jacobian(model)(x_svi)
    assert float(mode.logdensity) >= float(objective_svi) - 1e-6
    if name != "rff_gp":  # its amplitude trades against the weights' scale: a flat ridge
        for site, value in theirs.items():
            np.testing.assert_allclose(mode.values[site], value, atol=2e-3, err_msg=site)
    f_svi = model.constrain(model.unconstrain(theirs))["f_grid"]
    np.testing.assert_allclose(mode.values["f_grid"], f_svi, atol=1e-3)
