"""A child process of the scaling suite: `python -m benchmarks._sharded DEVICES ROWS...`
on `DEVICES` forced host devices. For the logistic regression (50 features) at each row
count, the log density and gradient of 4 chains' positions (vmapped, jitted) with the
data unsharded and split over every device (`logdensity.shard_data`), timed in
alternation (the median of 7 rounds of 10 calls each, after a compiling call); prints
one JSON line."""

from __future__ import annotations

import json
import sys
import time

import jax


def main(devices: int, rows: list[int]) -> None:
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    import logdensity as ld
    from logdensity import zoo

    from ._common import logistic_data

    assert jax.device_count() == devices, jax.devices()
    grad = jax.jit(jax.vmap(jax.value_and_grad(lambda x, m: m(x)), in_axes=(0, None)))
    out = []
    for n in rows:
        model = zoo.build("logistic_regression", "jax", **logistic_data(n)).flat
        sharded = ld.shard_data(model)
        x = model.initial_position + 0.1 * jax.random.normal(
            jax.random.key(0), (4, model.initial_position.size), jnp.float64
        )
        times: dict[str, list[float]] = {"unsharded": [], "sharded": []}
        for m in (model, sharded):
            jax.block_until_ready(grad(x, m))
        for _ in range(7):
            for name, m in (("unsharded", model), ("sharded", sharded)):
                start = time.perf_counter()
                for _ in range(10):
                    jax.block_until_ready(grad(x, m))
                times[name].append((time.perf_counter() - start) / 10)
        med = {k: float(np.median(v)) for k, v in times.items()}
        lp, g = grad(x, model)
        lp_s, g_s = grad(x, sharded)
        out.append(
            {
                "devices": devices,
                "rows": n,
                "unsharded_ms": 1e3 * med["unsharded"],
                "sharded_ms": 1e3 * med["sharded"],
                "ratio": med["sharded"] / med["unsharded"],
                "max_abs_diff": float(max(jnp.max(jnp.abs(lp - lp_s)), jnp.max(jnp.abs(g - g_s)))),
            }
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main(int(sys.argv[1]), [int(n) for n in sys.argv[2:]])
