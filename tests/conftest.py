import contextlib
import warnings

import hypothesis
import pytest

# ArviZ announces its 1.0 refactor on import; nothing to act on in these tests.
warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")

hypothesis.settings.register_profile("default", deadline=None, max_examples=20)
hypothesis.settings.load_profile("default")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Each module's compiled programs are dropped after it: an xdist worker runs
    hundreds of runs, and XLA's CPU code for each stays mapped while a cache holds it
    (three memory mappings per kernel); past Linux's default 65,530 mappings the
    worker crashed ("LLVM compilation error: Cannot allocate memory")."""
    yield
    import gc

    import jax

    from logdensity._sample import _programs

    _programs.release()
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def x64():
    import jax

    with jax.enable_x64(True):
        yield


# A test of mechanics (chunks, starts, layout, compilation) on a run too short to
# diagnose: the closing "Sampling diagnostics" SamplingWarning is expected there, and
# any other SamplingWarning (an interrupt, a bad start) still fails the test.
short_run = pytest.mark.filterwarnings("ignore:Sampling diagnostics:logdensity.SamplingWarning")
# A run without warmup on purpose (a fixed step size and metric): its warning is expected.
no_warmup = pytest.mark.filterwarnings("ignore:num_warmup=0:logdensity.SamplingWarning")


@contextlib.contextmanager
def short_runs():
    """`short_run` and `no_warmup` for the runs inside a `with` block only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sampling diagnostics", UserWarning)
        warnings.filterwarnings("ignore", "num_warmup=0", UserWarning)
        yield
