"""NUTS kernels: BlackJAX's `nuts.step` (what `logdensity.sample` runs) against
NumPyro's NUTS `sample_kernel`, transition for transition on the same log density.

Separates the cost of the kernel from everything else an end-to-end run does (warmup
schedule, compilation, draws to the host, diagnostics). Both kernels get the NumPyro
model through our adapter (NumPyro's as `potential_fn = -logdensity`), four chains
`vmap`ped, an identity inverse mass matrix, and a step size of 1e-3 with trees capped at
depth 6: every transition then runs the full 2**6 - 1 = 63 leapfrog steps (no U-turn
that early at so small a step), so both do the same number of gradient evaluations and
the time per transition compares the kernels' own bookkeeping (tree building, U-turn
checks, multinomial sampling of the proposal) around the same gradients.

- `ms_per_transition`: one `vmap`ped transition of all chains, inside a compiled
  `lax.scan` of `TRANSITIONS` transitions (compilation excluded);
- `leapfrog_steps`: mean leapfrog steps per transition and chain (63 when the cap held);
- ratio: NumPyro's time / BlackJAX's (above 1: BlackJAX's kernel is faster).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from logdensity import zoo

from ._common import MODELS, data, fmt, machine, summary

CHAINS = 4
STEP_SIZE = 1e-3
MAX_DEPTH = 6
TRANSITIONS = 10


def kernels(model: str, d: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """`{name: (compiled scan of TRANSITIONS transitions, initial states)}`."""
    from numpyro.infer.hmc import hmc

    m = zoo.build(model, "numpyro", **d)
    flat, unravel = ravel_pytree(m.initial_position)
    jitter = jax.random.uniform(jax.random.key(0), (CHAINS, flat.size), flat.dtype, -0.1, 0.1)
    positions = jax.vmap(unravel)(flat + jitter)
    ones = jnp.ones_like(flat)
    keys = jax.random.split(jax.random.key(1), TRANSITIONS)

    nuts = blackjax.nuts(m, STEP_SIZE, ones, max_num_doublings=MAX_DEPTH)

    @jax.jit
    def blackjax_scan(states: Any) -> Any:
        def one(s: Any, k: Any) -> Any:
            s, info = jax.vmap(nuts.step)(jax.random.split(k, CHAINS), s)
            return s, info.num_integration_steps

        return jax.lax.scan(one, states, keys)

    init_kernel, sample_kernel = hmc(potential_fn=lambda p: -m(p), algo="NUTS")

    def numpyro_init(p: Any, k: Any) -> Any:
        return init_kernel(
            p,
            num_warmup=0,
            step_size=STEP_SIZE,
            inverse_mass_matrix=ones,
            adapt_step_size=False,
            adapt_mass_matrix=False,
            max_tree_depth=MAX_DEPTH,
            rng_key=k,
        )

    @jax.jit
    def numpyro_scan(states: Any) -> Any:
        def one(s: Any, _: Any) -> Any:
            s = jax.vmap(sample_kernel)(s)
            return s, s.num_steps

        return jax.lax.scan(one, states, keys)

    return {
        "blackjax": (blackjax_scan, jax.vmap(nuts.init)(positions)),
        "numpyro": (
            numpyro_scan,
            jax.vmap(numpyro_init)(positions, jax.random.split(jax.random.key(2), CHAINS)),
        ),
    }


def run(quick: bool, models: list[str] | None = None) -> dict[str, Any]:
    models = models or (["eight_schools_noncentered"] if quick else list(MODELS))
    repeats = 3 if quick else 5
    rows, datasets = [], data()
    for model in models:
        print(f"kernel: {model}", flush=True)
        ks = kernels(model, datasets[model])
        steps = {}
        for name, (fn, states) in ks.items():  # compile, and count the leapfrog steps
            steps[name] = float(np.mean(jax.block_until_ready(fn(states))[1]))
        times: dict[str, list[float]] = {name: [] for name in ks}
        for _ in range(repeats):
            for name, (fn, states) in ks.items():  # interleaved
                start = time.perf_counter()
                jax.block_until_ready(fn(states))
                times[name].append((time.perf_counter() - start) / TRANSITIONS * 1e3)
        ref = statistics.median(times["blackjax"])
        for name in ks:
            row = {"model": model, "kernel": name, "leapfrog_steps": steps[name]}
            row["ms_per_transition"] = summary(times[name])
            row["ms_per_transition"]["ratio_to_blackjax"] = statistics.median(times[name]) / ref
            rows.append(row)
    return {
        "mode": "quick" if quick else "full",
        "settings": {
            "num_chains": CHAINS,
            "step_size": STEP_SIZE,
            "max_tree_depth": MAX_DEPTH,
            "transitions": TRANSITIONS,
            "repeats": repeats,
        },
        "machine": machine(),
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    st = result["settings"]
    lines = [
        f"NUTS kernels ({result['mode']} mode; {st['num_chains']} chains vmapped, step size "
        f"{st['step_size']}, trees capped at depth {st['max_tree_depth']}; medians over "
        f"{st['repeats']} interleaved repeats of {st['transitions']} transitions; ratio: "
        "time / BlackJAX's time, lower is faster).",
        "",
        "| model | kernel | leapfrog steps / transition | ms / transition (ratio) |",
        "|---|---|---|---|",
    ]
    for r in result["rows"]:
        t = r["ms_per_transition"]
        lines.append(
            f"| {r['model']} | {r['kernel']} | {r['leapfrog_steps']:.1f} "
            f"| {fmt(t['median'])} ({t['ratio_to_blackjax']:.2f}x) |"
        )
    return "\n".join(lines) + "\n"
