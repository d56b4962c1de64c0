"""Run the benchmarks: `python -m benchmarks [--quick] [suite ...]`.

Suites (default: all, in this order): `overhead` (adapters against hand-written JAX),
`endtoend` (`logdensity.sample` against NumPyro's `MCMC(NUTS)` and a hand-rolled
BlackJAX loop), `kernel` (BlackJAX's NUTS transition against NumPyro's on the same
density), `scaling` (chains and data size), `memory` (peak resident memory of the loop),
`nutpie`, `nutpie_seeds` and `metrics` (nutpie as a peer; its ESS per gradient over
seeds; every metric), `firstdraw` (fixed costs in
fresh processes), `starts` (`sample(init=...)` on arma11 and diamonds), `diagnostics`
(the share of `diagnose` in the 10,003-parameter model's run), `chains` (threaded
against vectorized chains, in fresh processes).
Each writes `benchmarks/results/<suite>[_quick].{json,md}`.

The process runs with two forced host devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=2`, unless XLA_FLAGS is set) so
that `chain_method="parallel"` has devices to shard over; single-device work runs on
the first, as it would without the flag.
"""

from __future__ import annotations

import argparse
import os
import time

SUITES = (
    "overhead",
    "endtoend",
    "kernel",
    "scaling",
    "memory",
    "nutpie",
    "nutpie_seeds",
    "metrics",
    "firstdraw",
    "starts",
    "diagnostics",
    "chains",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the few-minute run (tox -e bench)")
    parser.add_argument("--models", nargs="+", help="only these models (default: all)")
    parser.add_argument("suites", nargs="*", help=f"any of {', '.join(SUITES)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suites {sorted(unknown)}; choose from {SUITES}")
    args.suites = args.suites or list(SUITES)
    from ._common import ENDTOEND_SAMPLERS, MODELS
    from .metrics import POSTERIORDB, ZOO
    from .nutpie import SAMPLERS as NUTPIE_SAMPLERS

    # the nutpie and metrics suites take more models: diamonds, the posteriordb names
    known = set(MODELS) | set(ZOO) | set(POSTERIORDB) | {p.split("-")[0] for p in POSTERIORDB}
    known.add("arma11")
    known |= {"chains", "rows", "sharded"}  # the scaling suite's parts
    known |= {"diag", "low_rank"}  # the chains suite's metrics
    known |= set(NUTPIE_SAMPLERS) | set(ENDTOEND_SAMPLERS)  # the samplers of two suites
    unknown = set(args.models or ()) - known
    if unknown:  # e.g. a suite after --models, which takes every name that follows
        parser.error(f"unknown models {sorted(unknown)}; choose from {MODELS}")
    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

    import importlib

    import jax

    jax.config.update("jax_enable_x64", True)  # float64 everywhere, as the tests
    from ._common import write

    for suite in args.suites:
        start = time.perf_counter()
        module = importlib.import_module(f"{__package__}.{suite}")
        result = module.run(args.quick, args.models)
        result["seconds"] = time.perf_counter() - start
        stem = f"{suite}_quick" if args.quick else suite
        if args.models:  # a partial run does not replace the committed tables
            stem += "_" + "_".join(m.replace(" ", "-") for m in args.models)
        write(stem, result, module.markdown(result))
        print(f"{suite}: {result['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
