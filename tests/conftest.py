import warnings

import hypothesis
import pytest

# ArviZ announces its 1.0 refactor on import; nothing to act on in these tests.
warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")

hypothesis.settings.register_profile("default", deadline=None, max_examples=20)
hypothesis.settings.load_profile("default")


@pytest.fixture
def x64():
    import jax

    with jax.enable_x64(True):
        yield
