"""`import logdensity` must not import any optional backend, nor ArviZ and xarray (2 s;
`sample` imports them in the background while XLA compiles): checked in fresh processes."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("numpyro", "pytensor", "pymc", "equinox", "parax", "distreqx")


def test_import_loads_no_optional_backend():
    code = (
        "import sys, logdensity, logdensity.adapters, logdensity.testing, logdensity.zoo;"
        f"print(','.join(m for m in {BACKENDS!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at `import logdensity`: {out.stdout}"


def test_import_leaves_arviz_and_xarray_for_later():
    # ~2 s of a fresh `import logdensity`: imported where needed, or in the background
    # by `sample` while XLA compiles
    heavy = ("arviz", "arviz_stats", "xarray", "pandas", "zarr")
    code = f"import sys, logdensity; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at `import logdensity`: {out.stdout}"


def test_sample_in_a_fresh_process_without_arviz_returns_inference_data():
    code = (
        "import warnings, jax, logdensity as ld\n"
        "from tests import models\n"
        "model, _ = models.conjugate_normal(models.draws())\n"
        "warnings.simplefilter('ignore')\n"
        "idata = ld.sample(model, jax.random.key(0), num_chains=2, num_warmup=20,\n"
        "                  num_samples=20, progress_bar=False)\n"
        "import arviz as az\n"
        "assert isinstance(idata, az.InferenceData), type(idata)\n"
        "print(idata.posterior.sizes['draw'], 'max_rhat' in idata.sample_stats.attrs)\n"
    )
    env = os.environ | {"LOGDENSITY_COMPILATION_CACHE": "off"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["20", "True"]
