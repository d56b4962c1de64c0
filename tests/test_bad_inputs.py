"""The standing table of bad inputs (issue 15): one row per case, with the input and
either the exception it raises and the words its message must contain, or the correct
result. Every refusal of `sample` happens before the first warmup step: the rows run
with the phase loop replaced by one that fails the test if it is ever reached.

Rows that need a backend skip without it. Cases tested at length elsewhere (the +inf
density, PyTensor data order, interrupts, checkpoints) have their own tests; their
one-line forms are here too, so that this table lists what is refused.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import logdensity as ld
from logdensity._sample import _sample as sample_module


def _normal(dim: int = 2) -> ld.Model:
    return ld.from_jax(lambda p: -0.5 * jnp.sum(p["x"] ** 2), {"x": jnp.zeros(dim)})


def _sample(model: Any = None, **kwargs: Any) -> Any:
    args = {"num_chains": 2, "num_warmup": 10**6, "num_samples": 10, "progress_bar": False}
    rng_key = kwargs.pop("rng_key", jax.random.key(0))
    return ld.sample(_normal() if model is None else model, rng_key, **(args | kwargs))


def _with_det(**outputs: Callable[[Any], Any]) -> ld.Model:
    return ld.from_jax(
        lambda p: -0.5 * jnp.sum(p["x"] ** 2),
        {"x": jnp.zeros(2)},
        constrain=lambda p: {"x": p["x"]} | {k: f(p["x"]) for k, f in outputs.items()},
        deterministics=tuple(outputs),
    )


def _dims(**kwargs: Any) -> ld.Model:
    return ld.from_jax(
        lambda p: -0.5 * (jnp.sum(p["a"] ** 2) + jnp.sum(p["b"] ** 2)),
        {"a": jnp.zeros(2), "b": jnp.zeros(3)},
        **kwargs,
    )


def _pytensor_int_input() -> Any:
    pytest.importorskip("pytensor")
    import pytensor.tensor as pt

    k, mu = pt.iscalar("k"), pt.dscalar("mu")
    return ld.from_pytensor(-0.5 * (mu - k) ** 2, [mu, k])


def _equinox(kind: str) -> Any:
    pytest.importorskip("parax")
    import distreqx.distributions as dd
    import equinox as eqx
    import parax as prx

    class Features(eqx.Module):
        w: Any
        features: Any

    prior = {
        "normal": prx.Random(dd.Normal(jnp.zeros(2), jnp.ones(2))),
        "mvn_diag": prx.Random(dd.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2))),
    }
    w = prior["mvn_diag" if kind == "mvn_diag" else "normal"]
    return ld.from_equinox(
        Features(w, jnp.ones(2)),
        lambda m: -jnp.sum((m.w - m.features) ** 2),
        flat_priors=kind != "no_prior",
    )


def _numpyro_deterministic_named_chain() -> Any:
    pytest.importorskip("numpyro")
    import numpyro
    import numpyro.distributions as dist

    def model() -> None:
        mu = numpyro.sample("mu", dist.Normal())
        numpyro.deterministic("chain", 2 * mu)

    return ld.from_numpyro(model)


def _predict_no_draws() -> Any:
    pytest.importorskip("numpyro")
    import arviz as az
    import numpyro
    import numpyro.distributions as dist

    def model(y: Any = None) -> None:
        mu = numpyro.sample("mu", dist.Normal())
        numpyro.sample("y", dist.Normal(mu), obs=y)

    empty = az.from_dict(posterior={"mu": np.zeros((2, 0))})
    return ld.adapters.add_numpyro_predictive(empty, model, jnp.ones(3), rng_key=jax.random.key(0))


@dataclasses.dataclass(frozen=True)
class Refused:
    """The row's input raises `error`, whose message contains every one of `words`."""

    error: type[BaseException]
    words: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Works:
    """The row's input gives a result that `check` accepts."""

    check: Callable[[Any], bool]


def _posterior_has(name: str, dtype: Any, shape: tuple[int, ...]) -> Callable[[Any], bool]:
    def check(idata: Any) -> bool:
        v = idata.posterior[name]
        return v.dtype == dtype and v.shape[2:] == shape and v.sizes["draw"] == 10

    return check


SHORT = {"num_warmup": 20}
ROWS: list[tuple[str, Callable[[], Any], Refused | Works]] = [
    # --- bad settings: refused before anything is traced
    ("num_samples=2.5", lambda: _sample(num_samples=2.5), Refused(ValueError, ("num_samples",))),
    (
        "max_tree_depth=0",
        lambda: _sample(max_tree_depth=0),
        Refused(ValueError, ("max_tree_depth",)),
    ),
    (
        "max_tree_depth=-1",
        lambda: _sample(max_tree_depth=-1),
        Refused(ValueError, ("max_tree_depth",)),
    ),
    ("target 0", lambda: _sample(target_acceptance_rate=0.0), Refused(ValueError, ("(0, 1)",))),
    ("target 1.5", lambda: _sample(target_acceptance_rate=1.5), Refused(ValueError, ("(0, 1)",))),
    ("init_jitter<0", lambda: _sample(init_jitter=-1.0), Refused(ValueError, ("init_jitter",))),
    ("chain_method", lambda: _sample(chain_method="pmap"), Refused(ValueError, ("chain_method",))),
    ("metric", lambda: _sample(metric="full"), Refused(ValueError, ("metric",))),
    ("init", lambda: _sample(init="prior"), Refused(ValueError, ("init",))),
    ("num_chains=0", lambda: _sample(num_chains=0), Refused(ValueError, ("num_chains",))),
    ("bool num_samples", lambda: _sample(num_samples=True), Refused(ValueError, ("num_samples",))),
    # --- bad arguments
    ("integer rng_key", lambda: _sample(rng_key=0), Refused(TypeError, ("jax.random.key(seed)",))),
    (
        "batch of keys",
        lambda: _sample(rng_key=jax.random.split(jax.random.key(0))),
        Refused(TypeError, ("one JAX PRNG key",)),
    ),
    ("not a model", lambda: _sample(model=3), Refused(TypeError, ("LogDensity",))),
    (
        "empty position",
        lambda: ld.from_jax(lambda p: 0.0, {}),
        Refused(ValueError, ("no array leaves",)),
    ),
    (
        "int position",
        lambda: ld.from_jax(lambda p: 0.0, {"k": jnp.zeros(2, int)}),
        Refused(TypeError, ("'k'", "floating point")),
    ),
    (
        "list as data",
        lambda: ld.from_jax(
            lambda p, d: -jnp.sum((p["x"] - d["y"]) ** 2),
            {"x": jnp.zeros(())},
            data={"y": [1.0, 2.0]},
        ),
        Refused(TypeError, ("['y']", "jnp.asarray")),
    ),
    (
        "non-scalar density",
        lambda: ld.from_jax(lambda p: p["x"], {"x": jnp.zeros(2)}),
        Refused(ValueError, ("scalar",)),
    ),
    (
        "bad start shape",
        lambda: _sample(initial_positions={"x": jnp.zeros((2, 3))}),
        Refused(ValueError, ("'x'",)),
    ),
    (
        "non-finite start",
        lambda: _sample(initial_positions={"x": jnp.full((2, 2), jnp.nan)}),
        Refused(ValueError, ("chain 0", "'x'")),
    ),
    # --- names, dims, coords, dtypes of the outputs: checked when the model is built
    (
        "complex deterministic",
        lambda: _with_det(c=lambda x: x + 1j),
        Refused(TypeError, ("'c'", "complex", "jnp.real")),
    ),
    (
        "latent named chain",
        lambda: ld.from_jax(lambda p: -jnp.sum(p["chain"] ** 2), {"chain": jnp.zeros(2)}),
        Refused(ValueError, ("'chain'", "rename")),
    ),
    (
        "NumPyro deterministic named chain",
        _numpyro_deterministic_named_chain,
        Refused(ValueError, ("'chain'",)),
    ),
    (
        "dim with two lengths",
        lambda: _dims(dims={"a": ("i",), "b": ("i",)}),
        Refused(ValueError, ("dim 'i'", "'a'", "'b'")),
    ),
    (
        "variable named like a dim",
        lambda: _dims(dims={"a": ("b",)}),
        Refused(ValueError, ("['b']",)),
    ),
    (
        "coords of the wrong length",
        lambda: _dims(dims={"a": ("i",)}, coords={"i": ["p", "q", "r"]}),
        Refused(ValueError, ("coords['i']", "3 labels")),
    ),
    (
        "dims of the wrong rank",
        lambda: _dims(dims={"a": ("i", "j")}),
        Refused(ValueError, ("'a'", "axes")),
    ),
    # --- adapters
    ("PyTensor integer parameter", _pytensor_int_input, Refused(ValueError, ("'k'", "int32"))),
    (
        "Equinox leaf without a prior",
        lambda: _equinox("no_prior"),
        Refused(ValueError, ("['features']", "parax.Fixed", "flat_priors=True")),
    ),
    ("predictive with no draws", _predict_no_draws, Refused(ValueError, ("has no draws",))),
    # --- what works, and its result
    (
        "Equinox MultivariateNormalDiag prior",
        lambda: _equinox("mvn_diag"),
        Works(lambda m: bool(np.isfinite(m(m.initial_position)))),
    ),
    (
        "bool deterministic",
        lambda: _sample(_with_det(pos=lambda x: x > 0), **SHORT),
        Works(_posterior_has("pos", bool, (2,))),
    ),
    (
        "zero-size leaf",
        lambda: _sample(
            ld.from_jax(
                lambda p: -0.5 * jnp.sum(p["x"] ** 2) + jnp.sum(p["z"]),
                {"x": jnp.zeros(2), "z": jnp.zeros(0)},
            ),
            **SHORT,
        ),
        Works(_posterior_has("z", np.float32, (0,))),
    ),
    (
        "chunk_size=1e9 is clamped",
        lambda: _sample(chunk_size=10**9, **SHORT),
        Works(_posterior_has("x", np.float32, (2,))),
    ),
]


@pytest.fixture
def no_step(monkeypatch):
    """Fail the test if a warmup or sampling step would run."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a refusal came after the first warmup step")

    monkeypatch.setattr(sample_module, "run_phase", refuse)


@pytest.mark.parametrize(("make", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(make, expected, request):
    if isinstance(expected, Refused):
        request.getfixturevalue("no_step")
        with pytest.raises(expected.error) as raised:
            make()
        for word in expected.words:
            assert word in str(raised.value), (word, str(raised.value))
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sampling diagnostics")
        result = make()
    assert expected.check(result)


def test_num_warmup_0_warns_before_the_first_step(no_step):
    with (
        pytest.warns(ld.SamplingWarning, match="num_warmup=0: nothing is adapted"),
        pytest.raises(AssertionError, match="after the first warmup step"),
    ):
        _sample(num_warmup=0)


def test_a_failure_after_sampling_keeps_the_draws(monkeypatch):
    """Whatever fails after sampling cannot lose the draws: they come back on the error
    and in the file it names."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("xarray broke")

    monkeypatch.setattr(sample_module, "to_inference_data", broken)
    with pytest.raises(ld.DrawsSavedError, match="xarray broke") as raised:
        _sample(**SHORT)
    error = raised.value
    assert error.draws["posterior"]["x"].shape == (2, 10, 2)
    assert error.draws["sample_stats"]["lp"].shape == (2, 10)
    assert str(error.path) in str(error)
    saved = np.load(error.path)
    np.testing.assert_array_equal(saved["posterior/x"], error.draws["posterior"]["x"])
    assert isinstance(error.__cause__, RuntimeError)


def test_ctrl_c_while_the_inference_data_is_built_saves_the_draws(monkeypatch):
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(sample_module, "to_inference_data", interrupted)
    with (
        pytest.warns(ld.SamplingWarning, match=r"raw draws are saved in .*draws\.npz") as record,
        pytest.raises(KeyboardInterrupt),
    ):
        _sample(**SHORT)
    path = str(record[0].message).split("saved in ")[1].split(" (np.load")[0]
    assert np.load(path)["posterior/x"].shape == (2, 10, 2)


def test_a_failing_diagnostic_returns_every_draw(monkeypatch):
    def broken(idata: Any) -> Any:
        raise TypeError("a must be an array of real numbers")

    monkeypatch.setattr(sample_module, "diagnose", broken)
    with pytest.warns(ld.SamplingWarning, match="closing diagnostics failed"):
        idata = _sample(**SHORT)
    assert idata.posterior.sizes["draw"] == 10
