"""Adapters: each turns one way of writing a model into a `logdensity.Model`.

A backend is imported only inside its adapter, never at `import logdensity`.
"""

from ._equinox import EquinoxModel as EquinoxModel, from_equinox as from_equinox
from ._jax import from_jax as from_jax
from ._numpyro import add_numpyro_predictive as add_numpyro_predictive, from_numpyro as from_numpyro
from ._pymc import from_pymc as from_pymc
from ._pytensor import from_pytensor as from_pytensor
from ._registry import (
    ENTRY_POINT_GROUP as ENTRY_POINT_GROUP,
    Adapter as Adapter,
    adapt as adapt,
    available as available,
    register as register,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Adapter",
    "EquinoxModel",
    "adapt",
    "add_numpyro_predictive",
    "available",
    "from_equinox",
    "from_jax",
    "from_numpyro",
    "from_pymc",
    "from_pytensor",
    "register",
]
