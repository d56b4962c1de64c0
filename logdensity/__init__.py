"""logdensity: one log-density protocol for JAX models, and one BlackJAX sampling loop.

Adapters turn a model (plain JAX, NumPyro, PyTensor, Equinox/parax) into a
`LogDensity`: a pure function of an unconstrained position with every log-Jacobian,
the map back to named constrained values and an initial point. `sample` runs Stan-style
window adaptation and NUTS on any of them and returns `arviz.InferenceData`.
"""

from ._draws import flat_draws as flat_draws
from ._inference_data import diagnose as diagnose
from ._model import (
    DataForm as DataForm,
    FlatView as FlatView,
    Model as Model,
    SameStructure as SameStructure,
)
from ._optimize import MAP as MAP, find_map as find_map, log_jacobian as log_jacobian
from ._predict import predict as predict
from ._protocol import LogDensity as LogDensity, VariableInfo as VariableInfo
from ._sample import (
    DrawsSavedError as DrawsSavedError,
    SamplerState as SamplerState,
    SamplingWarning as SamplingWarning,
    resume as resume,
    sample as sample,
)
from ._sharding import shard_data as shard_data
from ._tree import leaf_names as leaf_names
from .adapters import (
    adapt as adapt,
    from_equinox as from_equinox,
    from_jax as from_jax,
    from_numpyro as from_numpyro,
    from_pymc as from_pymc,
    from_pytensor as from_pytensor,
)

__version__ = "0.1.0"

__all__ = [
    "MAP",
    "DataForm",
    "DrawsSavedError",
    "FlatView",
    "LogDensity",
    "Model",
    "SameStructure",
    "SamplerState",
    "SamplingWarning",
    "VariableInfo",
    "adapt",
    "diagnose",
    "find_map",
    "flat_draws",
    "from_equinox",
    "from_jax",
    "from_numpyro",
    "from_pymc",
    "from_pytensor",
    "leaf_names",
    "log_jacobian",
    "predict",
    "resume",
    "sample",
    "shard_data",
]
