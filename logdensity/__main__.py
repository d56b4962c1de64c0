"""Command line: `python -m logdensity demo [--out DIR]` (also the `logdensity` script)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="logdensity", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="sample the rat-tumor model through every installed adapter",
        description="Sample the rat-tumor model (BDA3 5.3: 71 experiments, a Beta "
        "hierarchy over tumor rates) through every installed adapter, check that the "
        "backends' log densities agree up to a constant and that their posteriors agree "
        "with each other and with a quadrature reference, and write a report, the draws "
        "and a figure per backend to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("logdensity-demo"),
        help="directory for the report, the draws (netCDF) and the figures",
    )
    demo.add_argument("--chains", type=int, default=4, help="chains per backend")
    demo.add_argument("--warmup", type=int, default=1000,
                      help="warmup (adaptation) steps per chain")  # fmt: skip
    demo.add_argument("--samples", type=int, default=1000, help="draws kept per chain")
    demo.add_argument("--seed", type=int, default=0, help="the PRNG seed of every run")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    demo.add_argument(
        "--float32", action="store_true", help="sample in float32 instead of float64 (x64)"
    )
    args = parser.parse_args(argv)

    # ArviZ announces its coming 1.0 refactor on import; the demo's reader needs none of it.
    warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
    import jax

    # A program, not a library: it may choose the process's precision. float64 keeps
    # the backends' agreement at 1e-12 rather than float32 rounding.
    jax.config.update("jax_enable_x64", not args.float32)
    from ._demo import run_demo

    run_demo(
        args.out,
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        seed=args.seed,
        progress_bar=not args.no_progress,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
