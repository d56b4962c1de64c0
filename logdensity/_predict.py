"""Predictions on the protocol: posterior and prior predictive draws, at the model's own
inputs or at new ones, into ArviZ's groups; and the draws as flat batches."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from jaxtyping import PRNGKeyArray

from ._draws import as_dict, batched, flat_draws, group_name, latent_draws
from ._model import Model, as_model
from ._protocol import LogDensity

__all__ = ["predict"]


def predict(
    model: LogDensity,
    idata: Any = None,
    *args: Any,
    rng_key: PRNGKeyArray,
    fn: Callable[..., Any] | None = None,
    source: str | None = None,
    num_samples: int = 500,
    constant_data: Mapping[str, Any] | None = None,
    dims: Mapping[str, list[str]] | None = None,
    log_likelihood: bool = True,
    batch_size: int = 200,
    model_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Posterior or prior predictive draws of a model, at its own inputs or at new ones,
    added to `idata` in ArviZ's groups (one per call).

    **Which draws** (`source`): `idata`'s `"posterior"` (the default when it has one) or
    `"prior"` group. A NumPyro model with `idata=None` draws `num_samples` from its
    prior first (NumPyro's handlers, as `numpyro.infer.Predictive` does), into a new
    `InferenceData`'s `prior`.

    **What is simulated:**

    - **NumPyro** (`from_numpyro` models, `fn=None`): the sites observed when the model
      was built, simulated per draw with NumPyro's handlers (`condition` on the draw,
      `uncondition`, `seed`: what `numpyro.infer.Predictive` does).
      With no `*args`/`**kwargs`, the model runs on the arguments it was built with,
      and the pointwise `log_likelihood` (`numpyro.infer.util.log_likelihood`) and
      `observed_data` are added too (LOO/WAIC). With new arguments, it runs on exactly
      those, given as to the model function itself (leave the observations out: a
      model written `def model(x, y=None)` is called `predict(model, idata, x_grid,
      rng_key=...)`); the deterministic sites are returned as well (a regression line at
      the new inputs), and the new array arguments go to `predictions_constant_data`.
    - **Any backend, with `fn`**: `fn(point, rng_key)` for every draw, where `point` is
      the rebuilt module for an Equinox model (`model.rebuild(values)`, parameters in
      their own space) and the draw's `{name: constrained value}` otherwise (latents,
      and the deterministics the group holds). It returns an
      array (named `prediction`) or `{name: array}`. New inputs are what `fn` closes
      over; pass them as `constant_data` to store them.
    - **PyMC**: use PyMC's own `pm.set_data` and `pm.sample_posterior_predictive(idata,
      model=pymc_model)` on the `InferenceData` that `sample` returns (its posterior has
      PyMC's names, dims and coords); `fn` works as for any backend.

    **Where it goes:** `posterior_predictive` (posterior draws at the model's own
    inputs), `predictions` (posterior draws at new inputs: new NumPyro arguments, or
    `constant_data` given) with `predictions_constant_data`, or `prior_predictive`
    (prior draws). Each value is `(chain, draw, *shape)` with the model's plate dims
    (NumPyro) or `dims` (`{name: [dim, ...]}`), else `{name}_dim_{i}`.

    Draws are processed `batch_size` at a time in one compiled, vmapped function, so
    memory stays bounded; draw `i` (chain-major) simulates with `fold_in(rng_key, i)`.

    **Returns:** `idata`, extended in place, or the new `InferenceData` when `idata` is
    `None`.

    **Raises:** `ValueError` if `source` names a group `idata` lacks or the group has no
    draws, if a NumPyro model has no observed site and `fn` is not given, or if the
    draws lack one of the model's latent values; `TypeError` if new arguments do not fit
    the NumPyro model's signature, if `fn` is missing for a model that is not NumPyro's,
    or if new arguments are given with `fn`.
    """
    import arviz as az

    model = as_model(model, "predict")
    kwargs = {**(model_kwargs or {}), **kwargs}
    if idata is None:
        source = "prior" if source is None else source
    elif source is None:
        source = "posterior" if "posterior" in idata.groups() else "prior"
    if source not in ("posterior", "prior"):
        raise ValueError(f"source must be 'posterior' or 'prior'; got {source!r}.")
    if fn is None and isinstance(model, Model) and model.backend == "numpyro":
        from .adapters._numpyro import numpyro_predictions

        return numpyro_predictions(
            model, idata, args, kwargs, rng_key=rng_key, source=source,
            num_samples=num_samples, log_likelihood=log_likelihood, batch_size=batch_size,
        )  # fmt: skip
    if fn is None:
        hint = (
            " For PyMC, use pm.sample_posterior_predictive(idata, model=pymc_model)."
            if model.backend in ("pymc", "pytensor")
            else ""
        )
        raise TypeError(
            f"predict needs fn=(point, rng_key) -> array for a {model.backend!r} model: "
            f"only NumPyro models know their observations.{hint}"
        )
    if args or kwargs:
        raise TypeError(
            "new inputs go into fn (it closes over them) when fn is given; got "
            f"{len(args)} positional and {sorted(kwargs)} keyword arguments."
        )
    if idata is None:
        raise ValueError("predict with fn needs idata with a posterior or prior group.")
    draws = latent_draws(model, idata, source)
    present = [n for n in model.variables if n not in draws and n in idata[source]]
    draws.update(flat_draws(idata, source, present))  # the deterministics too
    rebuild = getattr(model, "rebuild", None)

    def one(values: dict[str, Any], key: PRNGKeyArray) -> dict[str, Any]:
        point = rebuild(values) if rebuild is not None else values
        return as_dict(fn(point, key))

    out = batched(one, draws, rng_key, batch_size)
    group = group_name(source, constant_data is not None)
    chains, num = idata[source].sizes["chain"], idata[source].sizes["draw"]
    values = {n: v.reshape(chains, num, *v.shape[1:]) for n, v in out.items()}
    groups: dict[str, Any] = {group: values}
    if constant_data is not None:
        groups["predictions_constant_data"] = {k: np.asarray(v) for k, v in constant_data.items()}
    idata.extend(az.from_dict(**groups, dims=dict(dims or {})))
    return idata
