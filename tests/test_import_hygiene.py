"""`import logdensity` must not import any optional backend (checked in a fresh process)."""

import subprocess
import sys

BACKENDS = ("numpyro", "pytensor", "pymc", "equinox", "parax", "distreqx")


def test_import_loads_no_optional_backend():
    code = (
        "import sys, logdensity, logdensity.adapters, logdensity.testing, logdensity.zoo;"
        f"print(','.join(m for m in {BACKENDS!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at `import logdensity`: {out.stdout}"
