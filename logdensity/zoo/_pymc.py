"""The zoo in PyMC, through `from_pymc` (rat tumors: the demo's fifth backend)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm

from .._model import Model
from ..adapters._pymc import from_pymc


def rat_tumors_model(y: Any, n: Any) -> pm.Model:
    """The rat-tumor model as a PyMC model: `HalfFlat` `alpha`, `beta` with a
    `Potential` for `(alpha + beta)^(-5/2)`, `theta` (dim `experiment`) `Beta`, `y`
    `Binomial`."""
    with pm.Model(coords={"experiment": np.arange(len(y))}) as model:
        alpha = pm.HalfFlat("alpha")
        beta = pm.HalfFlat("beta")
        pm.Potential("hyperprior", -2.5 * pm.math.log(alpha + beta))
        theta = pm.Beta("theta", alpha, beta, dims="experiment")
        pm.Binomial(
            "y",
            n=np.asarray(n).astype(int),
            p=theta,
            observed=np.asarray(y).astype(int),
            dims="experiment",
        )
    return model


def rat_tumors(y: Any, n: Any) -> Model:
    """`rat_tumors_model` through [`from_pymc`][logdensity.from_pymc] (PyMC's log and
    logodds transforms)."""
    return from_pymc(rat_tumors_model(y, n))
