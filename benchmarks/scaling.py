"""Scaling: ESS/s and wall time as the number of chains grows, per chain method, and as
the logistic regression's data grows.

- chains: `logdensity.sample` on eight schools (non-centered, NumPyro), 1, 4, 16, 64
  chains, `chain_method` vectorized, sequential and parallel (over the process's
  devices: two forced host devices, see `benchmarks/__main__.py`; chain counts that do
  not divide evenly are skipped). `lockstep` (see `endtoend`) is the work a vectorized
  NUTS does per useful leapfrog step: every chain waits for the longest trajectory.
- rows: the logistic regression (50 features) at N = 10^3 ... 10^6 rows, 4 chains,
  `logdensity.sample` (vectorized) against NumPyro's vectorized
  `MCMC(NUTS)`.
- data sharding: the logistic regression's log density and gradient for 4 chains with
  its rows split over 1, 2 and 4 forced host devices (`logdensity.shard_data`) against
  the unsharded model, in one fresh process per device count (`benchmarks/_sharded.py`),
  the two timed in alternation. Forced host devices share this machine's cores: the
  ratio is not what devices with their own compute (GPUs, hosts) give. On one device
  it is the cost of the wrapper (none); on several it mixes the split's overhead (the
  all-reduce, the partitioned program) with the use of more cores (XLA's CPU backend
  runs one device's elementwise work on one thread).

Each run starts from cold caches, so wall time includes compilation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jax

from ._common import fmt, logistic_data, machine, summary
from .endtoend import min_ess, run_logdensity, run_numpyro


def _timed(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    jax.clear_caches()
    out = fn(*args)
    out["min_ess_bulk"] = min_ess(out.pop("draws"))
    out["ess_per_s"] = out["min_ess_bulk"] / out["wall_s"]
    return out


PARTS = ("chains", "rows", "sharded")


def run(quick: bool, models: list[str] | None = None) -> dict[str, Any]:
    """`models` picks parts by name (`--models sharded`: that table only)."""
    parts = set(models or PARTS)
    repeats = 1  # a sweep: the trend is the result, and the time goes to more points
    chain_counts = (1, 4) if quick else (1, 4, 16, 64)
    warmup, draws = (100, 100) if quick else (1000, 1000)
    rows_n = (1_000,) if quick else (1_000, 10_000, 100_000, 1_000_000)
    n_warmup, n_draws = 100, 100
    chains_rows, data_rows = [], []
    if parts & {"chains", "rows"}:
        for fn in (run_logdensity, run_numpyro):  # the process's one-off costs, untimed
            fn("vectorized", "eight_schools_noncentered", {}, jax.random.key(99), 1, 1, 4)
    for chains in chain_counts if "chains" in parts else ():
        for method in ("vectorized", "sequential", "parallel"):
            if method == "parallel" and (jax.device_count() < 2 or chains % jax.device_count()):
                continue
            outs = [
                _timed(
                    run_logdensity,
                    method,
                    "eight_schools_noncentered",
                    {},
                    jax.random.key(r),
                    warmup,
                    draws,
                    chains,
                )
                for r in range(repeats)
            ]
            row: dict[str, Any] = {"chains": chains, "chain_method": method}
            row |= {k: summary([o[k] for o in outs]) for k in _KEYS}
            chains_rows.append(row)
            print(f"  {chains} chains {method}: {row['wall_s']['median']:.1f} s", flush=True)
    for n in rows_n if "rows" in parts else ():
        d = logistic_data(n)
        for name, fn, method in (
            ("logdensity vectorized", run_logdensity, "vectorized"),
            ("numpyro vectorized", run_numpyro, "vectorized"),
        ):
            outs = [
                _timed(
                    fn, method, "logistic_regression", d, jax.random.key(r), n_warmup, n_draws, 4
                )
                for r in range(repeats)
            ]
            row = {"rows": n, "sampler": name}
            row |= {k: summary([o[k] for o in outs]) for k in _KEYS}
            data_rows.append(row)
            print(f"  N={n} {name}: {row['wall_s']['median']:.1f} s", flush=True)
    sharded_rows = []
    if "sharded" in parts:
        sharded_rows = sharded((10_000,) if quick else (100_000, 1_000_000))
    return {
        "mode": "quick" if quick else "full",
        "repeats": repeats,
        "settings": {
            "chains": {
                "model": "eight_schools_noncentered",
                "num_warmup": warmup,
                "num_samples": draws,
            },
            "rows": {
                "model": "logistic_regression",
                "num_chains": 4,
                "num_warmup": n_warmup,
                "num_samples": n_draws,
            },
        },
        "machine": machine(),
        "chains": chains_rows,
        "data": data_rows,
        "sharded": sharded_rows,
    }


def sharded(rows: tuple[int, ...]) -> list[dict[str, Any]]:
    """`benchmarks/_sharded.py` at 1, 2 and 4 forced devices, one process each."""
    out = []
    for devices in (1, 2, 4):
        env = os.environ | {
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
            "JAX_PLATFORMS": "cpu",
        }
        args = [sys.executable, "-m", "benchmarks._sharded", str(devices), *map(str, rows)]
        result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        if result.returncode:
            raise RuntimeError(result.stderr[-3000:])
        out += json.loads(result.stdout.strip().splitlines()[-1])
        print(f"  sharded evaluation, {devices} devices: done", flush=True)
    return out


_KEYS = ("wall_s", "min_ess_bulk", "ess_per_s", "divergences", "lockstep")


def markdown(result: dict[str, Any]) -> str:
    c, r = result["settings"]["chains"], result["settings"]["rows"]
    lines = [
        f"Scaling ({result['mode']} mode; one cold-cache run per point: a sweep, read "
        "for the trend).",
    ]
    chains = [
        "",
        f"Chains: eight schools, `logdensity.sample`, {c['num_warmup']} warmup + "
        f"{c['num_samples']} draws per chain.",
        "",
        "| chains | chain_method | wall s | min bulk ESS | ESS/s | lockstep |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["chains"]:
        lock = "n/a" if row["chain_method"] == "sequential" else f"{row['lockstep']['median']:.2f}"
        chains.append(
            f"| {row['chains']} | {row['chain_method']} | {row['wall_s']['median']:.1f} "
            f"| {row['min_ess_bulk']['median']:.0f} | {fmt(row['ess_per_s']['median'])} | {lock} |"
        )
    rows = [
        "",
        f"Rows: logistic regression (50 features), {r['num_chains']} chains x "
        f"({r['num_warmup']} warmup + {r['num_samples']} draws).",
        "",
        "| rows | sampler | wall s | min bulk ESS | ESS/s | lockstep |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["data"]:
        lock = "n/a" if "sequential" in row["sampler"] else f"{row['lockstep']['median']:.2f}"
        rows.append(
            f"| {row['rows']:,} | {row['sampler']} | {row['wall_s']['median']:.1f} "
            f"| {row['min_ess_bulk']['median']:.0f} | {fmt(row['ess_per_s']['median'])} | {lock} |"
        )
    sharded = [
        "",
        "Data sharding: the logistic regression's log density and gradient for 4 chains "
        "(vmapped), its rows split over the devices (`shard_data`) against unsharded, "
        "one fresh process per device count, medians of 7 alternating rounds. Forced "
        "host devices share the machine's cores: on one device the ratio is the "
        "wrapper's cost; on several it mixes the split's overhead (an all-reduce per "
        "evaluation) with the use of more cores (XLA's CPU backend runs a device's "
        "elementwise work on one thread), so it is not what separate GPUs or hosts give.",
        "",
        "| devices | rows | unsharded ms | sharded ms | sharded / unsharded | max abs diff |",
        "|---|---|---|---|---|---|",
    ]
    for row in result.get("sharded", []):
        sharded.append(
            f"| {row['devices']} | {row['rows']:,} | {row['unsharded_ms']:.2f} "
            f"| {row['sharded_ms']:.2f} | {row['ratio']:.2f} | {row['max_abs_diff']:.1e} |"
        )
    for part, table in (("chains", chains), ("data", rows), ("sharded", sharded)):
        if result.get(part):
            lines += table
    return "\n".join(lines) + "\n"
