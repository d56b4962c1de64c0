"""The adapter registry: dispatch by type, backends by name, plugins by entry point."""

import subprocess
import sys
from importlib import metadata

import jax.numpy as jnp
import pytest

import logdensity as ld
from logdensity.adapters import Adapter, _registry

BACKENDS = ("numpyro", "pytensor", "pymc", "equinox", "parax", "distreqx")


@pytest.fixture
def fresh_registry(monkeypatch):
    """No installed plugins, nothing registered; the test sets its own entry points."""
    monkeypatch.setattr(_registry, "_registered", {})
    monkeypatch.setattr(_registry, "_plugins", None)

    def use(entry_points):
        monkeypatch.setattr(_registry, "_entry_points", lambda: entry_points)
        monkeypatch.setattr(_registry, "_plugins", None)

    use({})
    return use


def _entry_point(name, value):
    return metadata.EntryPoint(name, value, _registry.ENTRY_POINT_GROUP)


class Box:
    """A stand-in model type for a plugin."""

    def __init__(self, mean):
        self.mean = mean


def _from_box(box, scale=1.0):
    return ld.from_jax(
        lambda p: -0.5 * jnp.sum(((p["x"] - box.mean) / scale) ** 2), {"x": jnp.zeros(2)}
    )


box_adapter = Adapter("box", _from_box, (f"{__name__}:Box",), "a Box")
not_an_adapter = object()


def test_available_and_dispatch_import_no_backend():
    code = (
        "import sys, logdensity as ld\n"
        "names = ld.adapters.available()\n"
        "try:\n"
        "    ld.adapt(lambda p: p)\n"
        "except TypeError as e:\n"
        "    assert \"backend='numpyro'\" in str(e), e\n"
        f"print(sorted(names), [m for m in {BACKENDS!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]"), out.stdout
    for name in ("equinox", "jax", "numpyro", "pymc", "pytensor"):
        assert f"'{name}'" in out.stdout


def test_known_objects_are_dispatched_by_type(x64):
    pytest.importorskip("parax")
    pytest.importorskip("pymc")
    import pymc as pm
    import pytensor.tensor as pt

    from logdensity.zoo import data as zoo_data
    from logdensity.zoo._equinox import RatTumors, rat_tumors_log_likelihood
    from logdensity.zoo._references import log_binom

    y, n = zoo_data("rat_tumors").values()
    data = (jnp.asarray(y, float), jnp.asarray(n, float), log_binom(y, n))
    model = ld.adapt(RatTumors(len(y), jnp.float64), rat_tumors_log_likelihood, *data)
    assert model.backend == "equinox"

    with pm.Model() as pm_model:
        pm.Normal("mu", 0.0, 1.0)
    assert ld.adapt(pm_model).backend == "pymc"

    mu = pt.dscalar("mu")
    assert ld.adapt(-0.5 * mu**2, [mu]).backend == "pytensor"


def test_functions_need_a_backend_name(fresh_registry):
    with pytest.raises(TypeError, match=r"builtins.function.*backend='numpyro' or backend='jax'"):
        ld.adapt(lambda p: -0.5 * p**2)
    model = ld.adapt(lambda p: -0.5 * jnp.sum(p**2), jnp.zeros(3), backend="jax")
    assert model.flat.dim == 3
    with pytest.raises(KeyError, match=r"no adapter named 'stan'; available: \['equinox', 'jax'"):
        ld.adapt(lambda p: p, backend="stan")
    with pytest.raises(TypeError, match=r"no adapter takes a builtins.int"):
        ld.adapt(3)


def test_plugins_come_from_entry_points(fresh_registry):
    fresh_registry({"box": _entry_point("box", f"{__name__}:box_adapter")})
    assert ld.adapters.available()["box"] == f"{__name__}:box_adapter"
    model = ld.adapt(Box(jnp.array([1.0, 2.0])), scale=0.5)
    assert float(model({"x": jnp.array([1.0, 2.0])})) == 0.0
    assert ld.adapt(Box(0.0), backend="box").flat.dim == 2


def test_bad_plugins_warn_and_are_skipped(fresh_registry):
    fresh_registry(
        {
            "jax": _entry_point("jax", f"{__name__}:box_adapter"),
            "broken": _entry_point("broken", "no_such_module_here:adapter"),
            "wrong": _entry_point("wrong", f"{__name__}:not_an_adapter"),
        }
    )
    with (
        pytest.warns(UserWarning, match="plugin adapter") as record,
        pytest.raises(TypeError, match="no adapter takes"),
    ):
        ld.adapt(Box(0.0))
    messages = sorted(str(w.message) for w in record)
    assert [m.split()[2].rstrip(":") for m in messages] == ["'broken'", "'jax'", "'wrong'"]
    assert "failed to load" in messages[0]
    assert "shadows a built-in adapter" in messages[1]
    assert "not a logdensity.adapters.Adapter" in messages[2]


def test_register_at_run_time(fresh_registry):
    ld.adapters.register(box_adapter)
    assert ld.adapters.available()["box"] == "register()"
    assert ld.adapt(Box(0.0)).flat.dim == 2
    with pytest.raises(ValueError, match="an adapter named 'box' exists"):
        ld.adapters.register(box_adapter)
    ld.adapters.register(box_adapter, replace=True)
    with pytest.raises(ValueError, match="'numpyro' is a built-in adapter"):
        ld.adapters.register(Adapter("numpyro", _from_box), replace=True)


def test_the_example_plugin_is_installed():
    """`make install` installs plugins/logdensity-distribution (the plugin template)."""
    pytest.importorskip("numpyro")
    import numpyro.distributions as dist

    assert ld.adapters.available().get("distribution") == "logdensity_distribution:adapter"
    model = ld.adapt(dist.Dirichlet(jnp.ones(3)))
    assert model.backend == "distribution"
    assert model.flat.dim == 2


def test_a_plugin_that_fails_to_load_is_not_listed_and_is_refused_with_its_cause(fresh_registry):
    """Issue 15: a broken plugin was listed by `available()`, then `adapt(backend=...)`
    said "no adapter named"."""
    fresh_registry({"broken": _entry_point("broken", "no_such_module_here:adapter")})
    with pytest.warns(UserWarning, match="failed to load"):
        names = ld.adapters.available()
    assert "broken" not in names
    with pytest.raises(ImportError, match=r"'broken'.*failed to load.*no_such_module_here"):
        ld.adapt(Box(0.0), backend="broken")


def test_dispatch_to_a_built_in_loads_no_plugin(fresh_registry, monkeypatch):
    """Issue 15: `adapt()` on a built-in type imported every plugin."""
    fresh_registry({"box": _entry_point("box", f"{__name__}:box_adapter")})

    def refuse() -> None:
        raise AssertionError("a plugin was loaded")

    monkeypatch.setattr(_registry, "_plugin_adapters", refuse)
    pytest.importorskip("pytensor")
    import pytensor.tensor as pt

    mu = pt.dscalar("mu")
    assert ld.adapt(-0.5 * mu**2, [mu]).backend == "pytensor"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"types": "equinox:Module"}, "adapter 'bad': types must be a tuple"),
        ({"types": ("equinox.Module",)}, "adapter 'bad': each entry of types"),
        ({"types": (3,)}, "adapter 'bad': each entry of types"),
        ({"build": 3}, "adapter 'bad': build must be a callable"),
        ({"build": "no_colon_here"}, "adapter 'bad': build must be a callable"),
    ],
)
def test_a_malformed_adapter_is_refused_naming_it(fields, words):
    with pytest.raises(TypeError, match=words):
        Adapter(**({"name": "bad", "build": _from_box} | fields))
