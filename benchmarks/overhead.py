"""Adapter overhead against hand-written JAX, measured side by side in one process.

For each model and backend: time to the first `jit(value_and_grad)` result (trace +
compile + run) and steady-state gradient evaluations per second for one position and
for vmapped batches, each as a ratio to the hand-written JAX density of the same model.
Repeats are interleaved across backends (A B A B ...) so machine noise hits all alike;
every figure is the min and median over repeats. Models from `logdensity.zoo` at the
sizes of issue #7 (logistic regression 100,000 x 50, exact GP N = 200), float64. Every
program compiles as the sampling loop's do (on CPU with its XLA options).

    python -m benchmarks overhead [--quick]
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from logdensity import zoo
from logdensity._sample._compiled import jit as _jit  # the loop's XLA options on CPU
from logdensity.testing import random_positions

from ._common import data, installed_backends, machine, summary


def _backends() -> dict[str, dict[str, Callable[[], Any]]]:
    """model -> backend -> builder, from `logdensity.zoo`. "jax" (hand-written plain
    JAX) is the reference; a backend that is not installed is left out."""
    available = installed_backends()
    return {
        model: {b: functools.partial(zoo.build, model, b, **d) for b in available}
        for model, d in data().items()
    }


def _value_and_grad(model: Any, position: Any) -> Any:
    return jax.value_and_grad(lambda m, p: m(p), argnums=1)(model, position)


def _first_result_seconds(build: Callable[[], Any]) -> float:
    """Wall time from building the model to the first value_and_grad result."""
    start = time.perf_counter()
    model = build()
    f = _jit(lambda m, p: _value_and_grad(m, p))  # a fresh function: compiles anew
    jax.block_until_ready(f(model, model.initial_position))
    return time.perf_counter() - start


def _throughput(model: Any, batch: int) -> Callable[[float], float]:
    """Compile once; the returned `measure(seconds)` gives evaluations per second."""
    points = random_positions(model, jax.random.key(0), max(batch, 1))
    if batch == 1:
        point = jax.tree.map(lambda x: x[0], points)
        f = jax.jit(_value_and_grad)  # nested in `many`, which carries the options
        args = (model, point)
    else:
        f = jax.jit(jax.vmap(_value_and_grad, in_axes=(None, 0)))
        args = (model, points)
    # The calls run inside one jitted scan, so Python dispatch is not measured; each
    # step moves the position by a step-dependent amount so that XLA cannot hoist the
    # (otherwise loop-invariant) evaluation out of the loop. The scan's length is
    # calibrated to about 20 ms: a 10-parameter model evaluates in ~0.1 us, and a
    # short scan would time the dispatch of the model's pytree (34 leaves for the
    # Equinox eight schools) instead of the evaluations.

    def scan_of(inner: int) -> Callable[..., Any]:
        @_jit
        def many(m: Any, p: Any) -> Any:
            def body(carry: Any, i: Any) -> Any:
                moved = jax.tree.map(lambda x: x + 1e-6 * i, p)
                value, grad = f(m, moved)
                total = jnp.sum(value) + jax.tree.reduce(lambda a, b: a + jnp.sum(b), grad, 0.0)
                return carry + total, None

            steps = jnp.arange(inner, dtype=jax.tree.leaves(p)[0].dtype)
            return jax.lax.scan(body, jnp.zeros((), steps.dtype), steps)[0]

        jax.block_until_ready(many(*args))
        return many

    def seconds_of(many: Callable[..., Any]) -> float:
        start = time.perf_counter()
        jax.block_until_ready(many(*args))
        return time.perf_counter() - start

    # per evaluation: the difference of a 16- and a 272-step scan (dispatch cancels),
    # unless 16 steps already take long enough for dispatch not to matter (the
    # data-heavy models, where 272 steps of a batch of 64 would take about a minute)
    short = seconds_of(scan_of(16))
    if short > 0.05:
        per_eval = short / 16
    else:
        long = seconds_of(scan_of(272))
        per_eval = max(long - short, long / 272 / 16) / 256
    inner = int(min(200_000, max(1, 0.02 / per_eval)))
    many = scan_of(inner)

    def measure(seconds: float) -> float:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            jax.block_until_ready(many(*args))
            count += inner * batch
        return count / (time.perf_counter() - start)

    return measure


def run(quick: bool, models: list[str] | None = None) -> dict[str, Any]:
    repeats = 2 if quick else 3
    seconds = 0.1 if quick else 0.3
    if quick and not models:  # one small and one many-parameter model
        models = ["eight_schools_noncentered", "hierarchical"]
    batches = (1, 4, 64)
    rows = []
    for model_name, backends in _backends().items():
        if models and model_name not in models:
            continue
        print(f"benchmarking {model_name}: {', '.join(backends)}", flush=True)
        samples: dict[str, dict[str, list[float]]] = {b: {} for b in backends}
        built = {b: build() for b, build in backends.items()}
        measures = {(b, n): _throughput(built[b], n) for b in backends for n in batches}
        for _ in range(repeats):
            for backend, build in backends.items():  # interleaved
                s = samples[backend]
                s.setdefault("first_result_s", []).append(_first_result_seconds(build))
                for batch in batches:
                    s.setdefault(f"evals_per_s_b{batch}", []).append(
                        measures[backend, batch](seconds)
                    )
        for backend, s in samples.items():
            row: dict[str, Any] = {"model": model_name, "backend": backend}
            for key, values in s.items():
                row[key] = summary(values)
                ref = statistics.median(samples["jax"][key])
                row[key]["ratio_to_jax"] = statistics.median(values) / ref
            rows.append(row)
    return {
        "mode": "quick" if quick else "full",
        "repeats": repeats,
        "machine": machine(),
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Adapter overhead ({result['mode']} mode; ratios are backend / hand-written JAX, "
        "medians over interleaved repeats; for throughput higher is better, for "
        "first-result time lower is better).",
        "",
        "| model | backend | first result s (ratio) | evals/s b=1 (ratio) | b=4 (ratio) "
        "| b=64 (ratio) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        cells = [r["model"], r["backend"]]
        f = r["first_result_s"]
        cells.append(f"{f['median']:.2f} ({f['ratio_to_jax']:.2f}x)")
        for b in (1, 4, 64):
            e = r[f"evals_per_s_b{b}"]
            cells.append(f"{e['median']:.3g} ({e['ratio_to_jax']:.2f}x)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
