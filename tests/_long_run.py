"""A child process for the long-run tests: `python -m tests._long_run MODE PATH METHOD`.

- `run`: sample with `checkpoint=PATH`, slowed by a sleep after each chunk (on the
  host, between chunks) so that the parent can kill it with SIGKILL mid-run;
- `resume`: `logdensity.resume(PATH, model)`, the posterior saved to `PATH.npz`.
"""

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


def main(mode: str, path: str, chain_method: str) -> None:
    jax.config.update("jax_enable_x64", True)
    warnings.simplefilter("ignore")
    if mode == "run":
        update = _host.Progress.update

        def slow(self, *args):
            update(self, *args)
            time.sleep(0.4)

        _host.Progress.update = slow  # type: ignore[method-assign]
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
