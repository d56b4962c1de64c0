"""An example logdensity adapter plugin: a NumPyro `Distribution` object as a model.

`logdensity.adapt(numpyro.distributions.Dirichlet(alpha))` finds this adapter through
the entry point `distribution` in the group `logdensity.adapters`. This module stays
light (it is loaded whenever `adapt` looks through the plugins): it names the type it
takes and where the build function lives; NumPyro is imported only when it is used.
"""

from logdensity.adapters import Adapter

__all__ = ["adapter"]

adapter = Adapter(
    name="distribution",
    build="logdensity_distribution._build:from_distribution",
    types=("numpyro.distributions:Distribution",),
    description="a NumPyro Distribution object, sampled on the unconstrained space",
)
