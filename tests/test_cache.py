"""JAX's persistent compilation cache: a second process sampling the same model loads
the loop's compiled programs instead of compiling them."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import warnings
    import jax
    from jax import monitoring

    hits = []
    monitoring.register_event_listener(
        lambda name, **kw: hits.append(name)
        if name == "/jax/compilation_cache/cache_hits" else None
    )
    import logdensity as ld
    from tests import models

    model, _ = models.conjugate_normal(models.draws())
    warnings.simplefilter("ignore")
    ld.sample(model, jax.random.key(0), num_chains=2, num_warmup=50, num_samples=50,
              progress_bar=False)
    print(len(hits), jax.config.jax_compilation_cache_dir)
    """
)


def _run(cache):
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "LOGDENSITY_COMPILATION_CACHE": str(cache),
        # small programs compile in under JAX's 1 s threshold for writing an entry
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    hits, where = out.stdout.split()[-2:]
    return int(hits), where


def test_a_second_process_loads_the_compiled_programs(tmp_path):
    cache = tmp_path / "jax-cache"
    assert _run(cache) == (0, str(cache))
    written = {p.name.split("-")[0] for p in cache.iterdir()}
    assert {"jit_start", "jit_chunk"} <= written, written
    hits, _ = _run(cache)
    assert hits >= 2  # the start and the chunk, at least


def test_the_cache_can_be_switched_off(tmp_path):
    assert _run("off") == (0, "None")
