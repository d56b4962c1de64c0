"""XLA's CPU runtime and two programs at once: the memory behind `leapfrogs_per_call`.

BlackJAX's NUTS alone (no logdensity loop), on the zoo's hierarchical model through
NumPyro, one compiled scan of `--steps` NUTS steps at a fixed step size, run twice:
one after the other in one thread, then side by side in two (what `"threaded"` chains
do). Printed: the leapfrog steps taken and the peak resident memory over the resident
memory before the runs. Measured on this machine (2 cores, jaxlib 0.10.2, 10,003
parameters, 50 steps, step size 0.005, started at 1 in every coordinate): one thread
+6 MiB, two threads +540 MiB for 49,068 leapfrog steps (11 KiB each, held until the
programs return). A one-off variant running the same steps in calls of 5 held +61 MiB;
a plain 10,000-dimensional normal holds about 1.2 KiB per leapfrog step.

    python -m benchmarks.threads_memory [--groups 10000] [--steps 50]
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise KeyError("VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--step-size", type=float, default=0.005)
    args = parser.parse_args()

    import blackjax
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    jax.config.update("jax_enable_x64", True)
    from logdensity import zoo

    m = zoo.build("hierarchical", "numpyro", y=zoo.data("hierarchical")["y"][: args.groups])
    flat0, unravel = ravel_pytree(m.initial_position)
    nuts = blackjax.nuts(
        lambda x: m(unravel(x)), step_size=args.step_size, inverse_mass_matrix=jnp.ones_like(flat0)
    )

    def run(key: jax.Array) -> jax.Array:
        def body(state: object, k: jax.Array) -> tuple[object, jax.Array]:
            state, info = nuts.step(k, state)
            return state, info.num_integration_steps

        start = jnp.ones_like(flat0)  # the repro's start: deep trees at this step size
        return jax.lax.scan(body, nuts.init(start), jax.random.split(key, args.steps))[1]

    program = jax.jit(run).lower(jax.random.key(0)).compile()
    program(jax.random.key(0)).block_until_ready()

    for threads in (1, 2):
        peak, done = [0.0], threading.Event()

        def watch(peak: list[float] = peak, done: threading.Event = done) -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_mib())
                time.sleep(0.02)

        before = _rss_mib()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        with ThreadPoolExecutor(threads) as pool:
            keys = jax.random.split(jax.random.key(1), 2)
            steps = sum(int(n.sum()) for n in pool.map(program, keys))
        done.set()
        watcher.join()
        print(f"{threads} thread(s): {steps} leapfrog steps, peak +{peak[0] - before:.0f} MiB")


if __name__ == "__main__":
    main()
