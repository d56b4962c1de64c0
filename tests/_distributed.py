"""A child process for the scaling-out tests, JAX on the CPU with forced devices.

- `python -m tests._distributed agree OUT DEVICES`: every zoo model whose data are
  traced inputs, sharded by rows over `DEVICES` devices (`shard_data`): its log
  density and gradient at random positions against the unsharded model's, and
  whether the compiled gradient holds an all-reduce (the rows were split); the worst
  difference per model goes to `OUT.json`;
- `python -m tests._distributed sample OUT [PROCESS PORT]`, on 4 devices, or with
  `PROCESS` and `PORT` as one of two processes under `jax.distributed` on localhost
  (2 devices each, Gloo collectives): the logistic regression sampled with chains over every device
  (`"parallel"`), with chains × data (a 2 × 2 mesh), and checkpointed; the draws go to
  `OUT-<process>.npz`, with the number of store writes this process made.
"""

import json
import sys

import jax

jax.config.update("jax_enable_x64", True)


def setup(devices: int, process: int | None = None, port: str | None = None) -> None:
    jax.config.update("jax_num_cpu_devices", devices)
    if process is None:
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process)


def agree(out: str) -> None:
    import jax.numpy as jnp

    import logdensity as ld
    from logdensity import zoo

    worst: dict[str, float | str] = {}
    for name in zoo.MODELS:
        for backend in zoo.BACKENDS:
            model = zoo.build(name, backend)
            try:
                sharded = ld.shard_data(model)
            except ValueError as e:  # data baked into the program: said, not sharded
                worst[f"{name}/{backend}"] = str(e)
                continue
            flat, flat_sharded = model.flat, sharded.flat
            x0 = flat.initial_position
            points = x0 + 0.5 * jax.random.normal(jax.random.key(1), (3, x0.size), x0.dtype)
            grad = jax.vmap(jax.value_and_grad(lambda x, m: m(x)), in_axes=(0, None))
            lp, g = jax.jit(grad)(points, flat)
            lp_s, g_s = jax.jit(grad)(points, flat_sharded)
            hlo = jax.jit(grad).lower(points, flat_sharded).compile().as_text()
            err = max(
                float(jnp.max(jnp.abs(a - b) / (1 + jnp.abs(a)))) for a, b in ((lp, lp_s), (g, g_s))
            )
            worst[f"{name}/{backend}"] = err if "all-reduce" in hlo else f"no all-reduce ({err})"
    with open(f"{out}.json", "w") as f:
        json.dump(worst, f)


def sample(out: str) -> None:
    import numpy as np
    import xarray as xr
    from jax.sharding import Mesh

    import logdensity as ld
    from logdensity import zoo

    writes = {"n": 0}
    to_zarr = xr.Dataset.to_zarr

    def counted(self, *args, **kwargs):
        writes["n"] += 1
        return to_zarr(self, *args, **kwargs)

    xr.Dataset.to_zarr = counted
    model = zoo.build("logistic_regression", "numpyro")
    kw = {"num_chains": 4, "num_warmup": 40, "num_samples": 30, "chunk_size": 20}
    mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("chain", "data"))
    # a short run: process 0 warns about its diagnostics (the test reads it)
    runs = {
        "parallel": ld.sample(model, jax.random.key(0), chain_method="parallel", **kw),
        "chains_by_data": ld.sample(
            ld.shard_data(model, mesh), jax.random.key(0), chain_method="parallel", **kw
        ),
        "checkpointed": ld.sample(
            model,
            jax.random.key(0),
            chain_method="parallel",
            checkpoint=f"{out}-store",
            **kw,
        ),
    }
    arrays = {k: idata.posterior["weights"].values for k, idata in runs.items()}
    np.savez(f"{out}-{jax.process_index()}.npz", writes=writes["n"], **arrays)


if __name__ == "__main__":
    mode, out, *rest = sys.argv[1:]
    if mode == "agree":
        setup(int(rest[0]))
        agree(out)
    else:
        setup(2, int(rest[0]), rest[1]) if rest else setup(4)
        sample(out)
