"""A child process for the long-run tests:
`python -m tests._long_run MODE PATH METHOD [PHASE]`.

- `run`: sample with `checkpoint=PATH`; once two chunks of `PHASE` are committed it
  waits (on the host, between chunks) for the parent's signal, so that the kill lands
  mid-run however loaded the machine is;
- `resume`: `logdensity.resume(PATH, model)`, the posterior saved to `PATH.npz`;
- `memory`: sample in memory (no checkpoint, warmup draws kept); once two chunks of
  `PHASE` are done, or the closing diagnostics have begun (`PHASE` = `diagnostics`),
  it writes `PATH.ready` and waits for the parent's Ctrl-C; what `sample` returns is
  saved to `PATH.npz`, with the warnings it gave.
"""

import signal
import sys
import time
import warnings

import jax
import numpy as np

import logdensity as ld
from logdensity._sample import _host, _sample
from tests import models

KWARGS = {"num_chains": 2, "num_warmup": 60, "num_samples": 60, "chunk_size": 10}


def model():
    return models.conjugate_normal(models.draws())[0]


def main(mode: str, path: str, chain_method: str, phase: str = "sampling") -> None:
    # Ctrl-C as in a user's shell: pytest-xdist's workers ignore SIGINT, and an ignored
    # signal is inherited across exec (Python then leaves it ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    jax.config.update("jax_enable_x64", True)
    if mode in ("run", "memory"):
        update = _host.Progress.update
        steps = {"warmup": 0, "sampling": 0}

        def wait() -> None:
            open(path + ".ready", "w").close()
            time.sleep(120)  # the parent signals us here

        def waiting(self, this_phase, n, stats):
            update(self, this_phase, n, stats)
            steps[this_phase] += n
            if this_phase == phase and steps[phase] >= 20:
                wait()

        diagnose = _sample.diagnose

        def diagnose_slowly(idata):
            if phase == "diagnostics":
                wait()
            return diagnose(idata)

        _host.Progress.update = waiting  # type: ignore[method-assign]
        _sample.diagnose = diagnose_slowly  # type: ignore[assignment]
        where = {"checkpoint": path} if mode == "run" else {"save_warmup": True}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            idata = ld.sample(
                model(),
                jax.random.key(3),
                chain_method=chain_method,
                progress_bar=False,
                **KWARGS,
                **where,
            )
        if mode == "memory":
            np.savez(
                path + ".npz",
                mu=idata.posterior["mu"].values,
                lp=idata.sample_stats["lp"].values if "sample_stats" in idata else np.zeros((2, 0)),
                warmup_mu=idata.warmup_posterior["mu"].values,
                interrupted=idata.attrs["interrupted"],
                warnings=[str(w.message) for w in caught],
            )
    else:
        idata = ld.resume(path, model(), progress_bar=False)
        np.savez(
            path + ".npz",
            mu=idata.posterior["mu"].values,
            lp=idata.sample_stats["lp"].values,
            draw=idata.posterior["draw"].values,
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
