"""Mutation testing of the loop, the adapters and the test kit with cosmic-ray.

`make mutation` runs this: for each target below (a module, and the fast tests that
should kill its mutants), cosmic-ray mutates a scratch copy of the committed tree (a
`git worktree` under `--work`, never the checkout you are editing), runs the target's
tests against each mutant (`pytest -x`, so a killed mutant costs only up to its first
failing test) and records the outcome in `<work>/<target>.sqlite`. Then it prints the
score (killed over killed + survived) and the survivors, each a diff, to be triaged in
docs/testing.md as killed by a new test or equivalent to the original.

Hours for every target (each mutant pays a JAX import and a compile), so it is not in
CI. `--sample N` runs a seeded sample of N mutants per target (the rest are marked
skipped), for a score in minutes; `--targets` picks targets by name.

    python tools/mutation.py [--targets kit kernel ...] [--sample N] [--seed S]
        [--work DIR] [--ref REV]
    python tools/mutation.py --listed   # the audit's mutants, each against its test

Needs cosmic-ray (`pip install -e ".[mutation]"`; `make mutation` does it).
"""

from __future__ import annotations

import argparse
import random
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # cosmic-ray's commands, installed beside this Python

# name: (modules to mutate, the tests that should kill their mutants)
TARGETS: dict[str, tuple[list[str], str]] = {
    "kit": (
        ["logdensity/testing/_conformance.py"],
        "tests/test_testing.py tests/test_model.py -k 'conform or normalised'",
    ),
    "kernel": (
        ["logdensity/_sample/_kernel.py", "logdensity/_sample/_starts.py"],
        "tests/test_sample.py",
    ),
    "adaptation": (
        ["logdensity/_sample/_adaptation.py"],
        "tests/test_metrics.py tests/test_sample.py -k 'metric or acceptance or dense'",
    ),
    "loop": (
        ["logdensity/_sample/_sample.py", "logdensity/_sample/_host.py"],
        "tests/test_sample.py tests/test_long_runs.py",
    ),
    "diagnostics": (
        ["logdensity/_inference_data.py"],
        "tests/test_sample.py tests/test_posteriordb.py -m 'not slow'",
    ),
    "numpyro": (["logdensity/adapters/_numpyro.py"], "tests/test_numpyro.py"),
    "pytensor": (["logdensity/adapters/_pytensor.py"], "tests/test_pytensor.py"),
    "equinox": (["logdensity/adapters/_equinox.py"], "tests/test_equinox.py"),
    "model": (["logdensity/_model.py"], "tests/test_model.py tests/test_data.py"),
}

# The mutants the test audit (issue 21) found alive, each with the test that now kills
# it: `--listed` applies each to the scratch tree and runs that test alone.
LISTED: list[tuple[str, str, str, str, str]] = [
    (
        "max_tree_depth ignored",
        "logdensity/_sample/_kernel.py",
        "max_num_doublings=config.max_tree_depth,",
        "max_num_doublings=10,",
        "tests/test_sample.py::test_max_tree_depth_caps_the_trajectories",
    ),
    (
        "a non-finite starting gradient ignored",
        "logdensity/_sample/_starts.py",
        "redraw = ~(np.isfinite(lp) & np.all(grad_ok, axis=0))",
        "redraw = ~np.isfinite(lp)",
        "tests/test_sample.py::test_non_finite_start_names_the_leaves",
    ),
    (
        "the R-hat/ESS warning removed",
        "logdensity/_inference_data.py",
        "    if found:\n",
        "    if False:\n",
        "tests/test_sample.py::test_chains_in_separate_modes_warn_naming_rhat_and_ess",
    ),
    (
        "check_logdensity: the dtype check disabled",
        "logdensity/testing/_conformance.py",
        "if jnp.result_type(lp0) != dtype:",
        "if False:",
        "tests/test_testing.py::test_each_conformance_check_fails_on_a_model_that_breaks_it",
    ),
    (
        "check_logdensity: the vmap check disabled",
        "logdensity/testing/_conformance.py",
        "if not np.allclose(batched, eager, rtol=tol, atol=tol):",
        "if False:",
        "tests/test_testing.py::test_each_conformance_check_fails_on_a_model_that_breaks_it",
    ),
    (
        "check_logdensity: the round-trip check disabled",
        "logdensity/testing/_conformance.py",
        "if round_trip is not None:",
        "if False:",
        "tests/test_testing.py::test_each_conformance_check_fails_on_a_model_that_breaks_it",
    ),
    (
        "check_logdensity: the one-trace check disabled",
        "logdensity/testing/_conformance.py",
        "    if len(traces) != 1:\n        raise",
        "    if False:\n        raise",
        "tests/test_testing.py::test_each_conformance_check_fails_on_a_model_that_breaks_it",
    ),
    (
        "check_logdensity: the one-trace-per-structure check disabled",
        "logdensity/testing/_conformance.py",
        "    if is_pytree:\n        jitted(",
        "    if False:\n        jitted(",
        "tests/test_testing.py::test_each_conformance_check_fails_on_a_model_that_breaks_it",
    ),
    (
        "given initial positions shifted by 0.5",
        "logdensity/_sample/_starts.py",
        "out.append(got)",
        "out.append(got + 0.5)",
        "tests/test_sample.py::test_given_initial_positions_are_validated",
    ),
    (
        "an interrupt returning zero-filled rows",
        "logdensity/_sample/_host.py",
        "{k: v[:, :n] for k, v in self.draws.items()},",
        "{k: np.zeros_like(v[:, :n]) for k, v in self.draws.items()},",
        "tests/test_sample.py::test_interrupt_returns_the_draws_so_far",
    ),
]


def listed(tree: Path) -> int:
    """Apply each of `LISTED` to `tree` alone and run its test: the mutant must fail
    it. Prints each outcome and the test's wall time; returns how many survived."""
    import time

    survived = 0
    for what, path, old, new, test in LISTED:
        file = tree / path
        original = file.read_text()
        if original.count(old) != 1:
            raise SystemExit(f"{what}: {old!r} is not once in {path}; update LISTED")
        file.write_text(original.replace(old, new))
        began = time.perf_counter()
        try:
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", test],
                cwd=tree,
                capture_output=True,
                text=True,
            )
        finally:
            file.write_text(original)
        took = time.perf_counter() - began
        killed = result.returncode != 0
        survived += not killed
        print(f"{'killed' if killed else 'SURVIVED'} in {took:.0f} s: {what} ({test})", flush=True)
    return survived


CONFIG = """\
[cosmic-ray]
module-path = {modules}
timeout = {timeout}
excluded-modules = []
test-command = "{python} -m pytest -x -q -p no:cacheprovider -p no:randomly {tests}"

[cosmic-ray.distributor]
name = "local"
"""


def _run(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def _skip_all_but(db: Path, keep: int, seed: int) -> None:
    """Mark every pending job but a seeded sample of `keep` as skipped."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(db)) as work_db:
        jobs = sorted(item.job_id for item in work_db.pending_work_items)
        chosen = set(random.Random(seed).sample(jobs, min(keep, len(jobs))))
        for job_id in jobs:
            if job_id not in chosen:
                work_db.set_result(job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))


def summary(db: Path) -> str:
    """The score of a session (killed over killed + survived, skipped jobs left out;
    a timeout counts as killed, as cosmic-ray counts it) and each survivor's diff."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    killed, survivors, other = 0, [], 0
    with use_db(str(db), WorkDB.Mode.open) as work_db:
        for item, result in work_db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            if result.test_outcome == TestOutcome.KILLED:
                killed += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                survivors.append((item, result))
            else:
                other += 1  # incompetent (the mutant does not import) or no test
    run = killed + len(survivors)
    lines = [
        f"{db.stem}: {killed} of {run} mutants killed "
        f"({100 * killed / max(run, 1):.0f}%), {len(survivors)} survived, {other} incompetent"
    ]
    for item, result in survivors:
        (mutation,) = item.mutations
        lines.append(f"-- survivor {item.job_id}: {mutation.operator_name}")
        lines.append(result.diff or "")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="*", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--sample", type=int, default=None, help="mutants per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / ".mutation")
    parser.add_argument("--ref", default="HEAD", help="the commit to mutate")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant")
    parser.add_argument(
        "--listed", action="store_true", help="only the audit's mutants, each against its test"
    )
    args = parser.parse_args(argv)

    work = args.work.resolve()
    tree = work / "tree"
    if tree.exists():
        _run("git", "worktree", "remove", "--force", str(tree), cwd=ROOT)
    work.mkdir(parents=True, exist_ok=True)
    _run("git", "worktree", "add", "--detach", str(tree), args.ref, cwd=ROOT)
    try:
        if args.listed:
            return 1 if listed(tree) else 0
        for name in args.targets:
            modules, tests = TARGETS[name]
            config, db = work / f"{name}.toml", work / f"{name}.sqlite"
            config.write_text(
                CONFIG.format(
                    modules="[" + ", ".join(f'"{m}"' for m in modules) + "]",
                    timeout=args.timeout,
                    # the tests import the mutated tree (the working directory comes
                    # first on sys.path), with this environment's packages
                    python=shlex.quote(sys.executable),
                    tests=tests.replace('"', '\\"'),
                )
            )
            db.unlink(missing_ok=True)
            _run(str(BIN / "cosmic-ray"), "init", str(config), str(db), cwd=tree)
            if args.sample is not None:
                _skip_all_but(db, args.sample, args.seed)
            print(f"== {name}: {', '.join(modules)} against {tests}", flush=True)
            subprocess.run(
                [str(BIN / "cosmic-ray"), "exec", str(config), str(db)], cwd=tree, check=True
            )
            print(summary(db), flush=True)
    finally:
        _run("git", "worktree", "remove", "--force", str(tree), cwd=ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
