"""Memory: peak resident memory of sampling the 10,003-parameter hierarchical model,
the shared loop's chunks against all draws kept on device.

Each variant runs in a fresh process (`python -m benchmarks.memory --child ...`):
build the model, sample once (this compiles; `cold`: peak over that first call), then
reset the kernel's peak counter (`/proc/self/clear_refs`) and sample again with the
same shapes (`warm`: the steady state, compilation excluded). Reported: resident memory
before the call, the peak during it, the increase, and the increase as a multiple of
the returned draws (`idata.posterior`, float64). On CPU the device's memory is the
process's memory, so draws held on device count.

- `default`: `logdensity.sample` with its default `chunk_size` (sized by bytes: at
  most 8 MiB of draws a chunk, 26 steps here);
- `chunked`: `logdensity.sample` with `chunk_size=100`: each chunk's draws move to
  preallocated host arrays;
- `one chunk`: `logdensity.sample` with `chunk_size=num_samples`: every draw on device
  until the end, then moved and post-processed at once;
- `blackjax`: the hand-rolled BlackJAX loop (`benchmarks.endtoend.blackjax_loop`, all
  draws on device, constrained at the end), then `az.from_dict` and the same ArviZ
  diagnostics as `logdensity.sample`.

Streaming (`sample(..., checkpoint=path)`, the long-runs issue), 4 x 2000 draws, each
variant one cold call in a fresh process (a second call needs a second store; the
peak is the process's, compilation included):

- `streamed`: the draws go to a zarr store chunk by chunk, the returned InferenceData
  reads them lazily, the end-of-run diagnostics read them block by block;
- `streamed, one chunk`: the same with `num_samples = chunk_size`: what one chunk, the
  model and the compiled program take, the floor that `streamed` is measured against
  (target: peak <= 1.5x this one's);
- `in memory`: `logdensity.sample` without a checkpoint, for contrast.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

VARIANTS = ("default", "chunked", "one chunk", "blackjax")
STREAMED = ("streamed", "streamed, one chunk", "in memory")


def _status(field: str) -> int:
    """`VmRSS` / `VmHWM` of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak() -> None:
    """Give freed heap back to the system, then restart the peak counter at the
    current RSS. Without the trim, the memory the first call freed stays resident
    (glibc keeps it for reuse), and a second call that reuses it shows no increase."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")


def _child(
    variant: str, chains: int, warmup: int, draws: int, groups: int, chunk_size: int = 100
) -> dict[str, Any]:
    import arviz as az
    import jax
    import numpy as np
    from jax.flatten_util import ravel_pytree

    jax.config.update("jax_enable_x64", True)
    import logdensity as ld
    from logdensity import zoo
    from logdensity._inference_data import diagnose

    from .endtoend import blackjax_loop

    m = zoo.build("hierarchical", "numpyro", y=zoo.data("hierarchical")["y"][:groups])

    def sample(key: Any) -> az.InferenceData:
        if variant == "blackjax":
            flat, unravel = ravel_pytree(m.initial_position)
            u = jax.random.uniform(key, (chains, flat.size), flat.dtype, -2.0, 2.0)
            values, div, n_steps = jax.device_get(
                blackjax_loop(m, jax.vmap(unravel)(flat + u), key, warmup=warmup, draws=draws)
            )
            idata = az.from_dict(
                posterior={k: np.swapaxes(v, 0, 1) for k, v in values.items()},
                sample_stats={"diverging": div.T, "n_steps": n_steps.T},
            )
            diagnose(idata)
            return idata
        size = {"one chunk": draws, "default": None}.get(variant, chunk_size)
        stored = variant.startswith("streamed")
        return ld.sample(
            m,
            key,
            num_chains=chains,
            num_warmup=warmup,
            num_samples=chunk_size if variant == "streamed, one chunk" else draws,
            chunk_size=size,
            progress_bar=False,
            checkpoint=Path(tempfile.mkdtemp()) / "run.zarr" if stored else None,
        )

    out: dict[str, Any] = {"variant": variant}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        phases = (("cold", 0),) if variant in STREAMED else (("cold", 0), ("warm", 1))
        for phase, key in phases:
            _reset_peak()
            before = _status("VmRSS")
            start = time.perf_counter()
            idata = sample(jax.random.key(key))
            seconds = time.perf_counter() - start
            peak = _status("VmHWM")
            # from the shapes: a streamed posterior is read from disk when used
            draws_bytes = sum(v.size * v.dtype.itemsize for v in idata.posterior.data_vars.values())
            out[phase] = {
                "rss_before_bytes": before,
                "peak_bytes": peak,
                "increase_bytes": peak - before,
                "draws_bytes": draws_bytes,
                "increase_over_draws": (peak - before) / draws_bytes,
                "seconds": seconds,
            }
            del idata
    return out


def _spawn(variant: str, chains: int, warmup: int, draws: int, groups: int) -> dict[str, Any]:
    """One variant in a fresh process, on one device (a user's default)."""
    cmd = [sys.executable, "-m", "benchmarks.memory", "--child", variant]
    cmd += ["--chains", str(chains), "--warmup", str(warmup), "--draws", str(draws)]
    cmd += ["--groups", str(groups)]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"XLA_FLAGS": ""},
        cwd=Path(__file__).parent.parent,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool, models: list[str] | None = None) -> dict[str, Any]:
    del models
    # quick: the first 1,000 of the 10,000 groups, so that the smoke run takes seconds
    chains, warmup, draws, groups = (4, 50, 200, 1_000) if quick else (4, 300, 1000, 10_000)
    rows = []
    for variant in VARIANTS:
        row = _spawn(variant, chains, warmup, draws, groups)
        rows.append(row)
        print(
            f"  {variant}: warm increase {row['warm']['increase_over_draws']:.2f}x draws",
            flush=True,
        )
    return {
        "mode": "quick" if quick else "full",
        "repeats": 1,
        "settings": {
            "model": "hierarchical",
            "num_parameters": groups + 3,
            "num_chains": chains,
            "num_warmup": warmup,
            "num_samples": draws,
        },
        "rows": rows,
    }


def run_streamed(quick: bool) -> dict[str, Any]:
    """The streaming variants (`STREAMED`), 4 x 2000 draws (quick: 1,000 groups)."""
    chains, warmup, draws, groups = (4, 50, 400, 1_000) if quick else (4, 100, 2000, 10_000)
    rows = []
    for variant in STREAMED:
        rows.append(_spawn(variant, chains, warmup, draws, groups))
        print(f"  {variant}: peak {rows[-1]['cold']['peak_bytes'] / 2**20:.0f} MiB", flush=True)
    floor = rows[1]["cold"]["peak_bytes"]
    for row in rows:
        row["peak_over_one_chunk"] = row["cold"]["peak_bytes"] / floor
    return {
        "mode": "quick" if quick else "full",
        "settings": {
            "model": "hierarchical",
            "num_parameters": groups + 3,
            "num_chains": chains,
            "num_warmup": warmup,
            "num_samples": draws,
            "chunk_size": 100,
        },
        "rows": rows,
    }


def markdown_streamed(result: dict[str, Any]) -> str:
    s = result["settings"]
    mb = 2**20
    lines = [
        f"Streaming to a checkpoint ({result['mode']} mode; hierarchical model, "
        f"{s['num_parameters']:,} parameters, {s['num_chains']} chains x ({s['num_warmup']} "
        f"warmup + {s['num_samples']} draws), chunks of {s['chunk_size']}; one fresh process "
        "and one cold call per variant; peak = the process's peak resident memory, MiB).",
        "",
        "| variant | draws made (MiB) | peak | peak / `streamed, one chunk` | s |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        c = r["cold"]
        lines.append(
            f"| {r['variant']} | {c['draws_bytes'] / mb:.0f} | {c['peak_bytes'] / mb:.0f} "
            f"| {r['peak_over_one_chunk']:.2f}x | {c['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    mb = 2**20
    lines = [
        f"Memory ({result['mode']} mode; hierarchical model, {s['num_parameters']:,} parameters, "
        f"{s['num_chains']} chains x ({s['num_warmup']} warmup + {s['num_samples']} draws); "
        "one fresh process per variant; MiB; `increase` = peak - resident before the call).",
        "",
        "| variant | returned draws | warm: increase (x draws) | cold, incl. compilation: "
        "increase (x draws) | warm s |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        w, c = r["warm"], r["cold"]
        lines.append(
            f"| {r['variant']} | {w['draws_bytes'] / mb:.0f} "
            f"| {w['increase_bytes'] / mb:.0f} ({w['increase_over_draws']:.2f}x) "
            f"| {c['increase_bytes'] / mb:.0f} ({c['increase_over_draws']:.2f}x) "
            f"| {w['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=VARIANTS + STREAMED)
    parser.add_argument("--streamed", action="store_true", help="run the streaming variants")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--chunk-size", type=int, default=100)
    a = parser.parse_args()
    if a.streamed:
        from ._common import write

        result = run_streamed(a.quick)
        write("memory_streamed" + ("_quick" if a.quick else ""), result, markdown_streamed(result))
    else:
        print(json.dumps(_child(a.child, a.chains, a.warmup, a.draws, a.groups, a.chunk_size)))
