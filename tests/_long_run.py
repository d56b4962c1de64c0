"""A child process for the long-run tests:
`python -m tests._long_run MODE PATH METHOD [PHASE]`.

- `run`: sample with `checkpoint=PATH`; once two chunks of `PHASE` are committed it
  waits (on the host, between chunks) for the parent's signal, so that the kill lands
  mid-run however loaded the machine is;
- `resume`: `logdensity.resume(PATH, model)`, the posterior saved to `PATH.npz`.
"""

import signal
import sys
import time
import warnings

import jax
import numpy as np

import logdensity as ld
from logdensity._sample import _host
from tests import models

KWARGS = {"num_chains": 2, "num_warmup": 60, "num_samples": 60, "chunk_size": 10}


def model():
    return models.conjugate_normal(models.draws())[0]


def main(mode: str, path: str, chain_method: str, phase: str = "sampling") -> None:
    # Ctrl-C as in a user's shell: pytest-xdist's workers ignore SIGINT, and an ignored
    # signal is inherited across exec (Python then leaves it ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    jax.config.update("jax_enable_x64", True)
    warnings.simplefilter("ignore")
    if mode == "run":
        update = _host.Progress.update
        steps = {"warmup": 0, "sampling": 0}

        def waiting(self, this_phase, n, stats):
            update(self, this_phase, n, stats)
            steps[this_phase] += n
            if this_phase == phase and steps[phase] >= 20:
                time.sleep(120)  # the parent signals us here

        _host.Progress.update = waiting  # type: ignore[method-assign]
        ld.sample(
            model(),
            jax.random.key(3),
            chain_method=chain_method,
            checkpoint=path,
            progress_bar=False,
            **KWARGS,
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
