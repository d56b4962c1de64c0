"""The draws of an `InferenceData` as flat batches, and a function mapped over them in
compiled, vmapped batches: what `predict` and the adapters' predictions share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ._protocol import LogDensity
from ._sample._compiled import jit

__all__ = ["flat_draws"]


def flat_draws(
    idata: Any, group: str = "posterior", var_names: list[str] | None = None
) -> dict[str, np.ndarray]:
    """The draws of one group of `idata` with `chain` and `draw` merged into one leading
    axis: `{name: (chain * draw, *shape)}`, chain-major (chain 0's draws first), each
    value in its own (constrained) space and dtype.

    This is the batch that `jax.vmap` and `model.rebuild` expect:
    `jax.vmap(lambda v: model.rebuild(v)(x))(flat_draws(idata))`. (Reshaping
    `idata.posterior[k].values` with `reshape(-1)` flattens a vector site's entries too.)

    **Raises:** `KeyError` naming a missing group or variable; `ValueError` if the group
    has no `chain`/`draw` dims.
    """
    if group not in idata.groups():
        raise KeyError(f"idata has no {group!r} group; it has {list(idata.groups())}.")
    ds = idata[group]
    if "chain" not in ds.dims or "draw" not in ds.dims:
        raise ValueError(f"idata.{group} has dims {tuple(ds.dims)}, not (chain, draw, ...).")
    names = list(ds.data_vars) if var_names is None else list(var_names)
    missing = [n for n in names if n not in ds]
    if missing:
        raise KeyError(f"idata.{group} lacks {missing}; it has {list(ds.data_vars)}.")
    out = {}
    for name in names:
        v = ds[name].transpose("chain", "draw", ...).values
        out[name] = v.reshape(-1, *v.shape[2:])
    return out


def batched(
    f: Callable[[dict[str, Any], PRNGKeyArray], dict[str, Any]],
    draws: dict[str, np.ndarray],
    rng_key: PRNGKeyArray,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """`f(draw, key)` over every draw (leading axis), `batch_size` at a time in one
    compiled, vmapped function; draw `i`'s key is `fold_in(rng_key, i)`."""
    total = len(next(iter(draws.values())))
    size = max(1, min(batch_size, total))
    run = jit(jax.vmap(f))
    parts = []
    for start in range(0, total, size):
        stop = min(start + size, total)
        short = size - (stop - start)  # the last batch is padded: one program for all
        chunk = {n: np.concatenate([v[start:stop], np.repeat(v[stop - 1 : stop], short, 0)])
                 for n, v in draws.items()}  # fmt: skip
        index = jnp.minimum(jnp.arange(start, start + size), stop - 1)
        keys = jax.vmap(lambda i: jax.random.fold_in(rng_key, i))(index)
        out = jax.device_get(run(chunk, keys))
        parts.append({n: v[: stop - start] for n, v in out.items()})
    return {n: np.concatenate([p[n] for p in parts]) for n in parts[0]}


def as_dict(out: Any) -> dict[str, Any]:
    if isinstance(out, Mapping):
        return dict(out)
    return {"prediction": out}


def group_name(source: str, new_inputs: bool) -> str:
    if source == "prior":
        return "prior_predictive"
    return "predictions" if new_inputs else "posterior_predictive"


def latent_draws(model: LogDensity, idata: Any, source: str) -> dict[str, np.ndarray]:
    """The draws of `idata[source]` for the model's latents, flat."""
    if source not in idata.groups():
        raise ValueError(f"idata has no {source!r} group to predict from.")
    ds = idata[source]
    if ds.sizes.get("draw", 0) == 0:
        raise ValueError(f"idata.{source} has no draws to predict from (an interrupted run?).")
    latents = [n for n, v in model.variables.items() if not v.deterministic]
    missing = [n for n in latents if n not in ds]
    if missing:
        raise ValueError(f"idata.{source} lacks the model's latent values {missing}.")
    return flat_draws(idata, source, latents)
