"""The README's quickstart runs as written."""

import re
from pathlib import Path

import numpy as np
import pytest

from . import models

README = Path(__file__).parent.parent / "README.md"


def test_quickstart_runs():
    block = re.search(r"## Quickstart\s+```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "README quickstart", "exec"), namespace)
    idata = namespace["idata"]  # no SamplingWarning either: pyproject makes it an error
    assert idata.posterior["theta"].dims == ("chain", "draw", "school")
    assert idata.posterior["tau"].shape == (4, 1000)
    # the posterior of the same model written in NumPyro, sampled by NumPyro's own NUTS:
    # means agree within 4 combined MCSEs, sds within 10%
    pytest.importorskip("numpyro")
    import arviz as az
    import jax
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(models.eight_schools_half_normal), num_warmup=1000, num_samples=1000,
                num_chains=4, chain_method="vectorized", progress_bar=False)  # fmt: skip
    mcmc.run(jax.random.key(1), namespace["y"], namespace["s"])
    theirs = az.from_numpyro(mcmc).posterior
    ours = idata.posterior
    for name in ("mu", "tau"):
        se = np.hypot(float(az.mcse(theirs[[name]])[name]), float(az.mcse(ours[[name]])[name]))
        assert abs(float(theirs[name].mean()) - float(ours[name].mean())) < 4 * se, name
        assert abs(float(theirs[name].std()) / float(ours[name].std()) - 1) < 0.1, name
