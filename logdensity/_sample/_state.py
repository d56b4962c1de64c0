"""The explicit sampler state: everything that continues a run, and its forms on the
host (the `sampler_state` group of an `InferenceData`, the leaves of a checkpoint)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax._src.lax.lax import _convert_element_type
from jax.flatten_util import ravel_pytree
from jaxtyping import Array

from .._protocol import LogDensity
from .._sharding import to_host

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["SamplerState", "continued", "host_leaves", "sampler_state_group", "wrap_keys"]


class SamplerState(NamedTuple):
    """Every chain's state between two steps of [`logdensity.sample`][], batched on a
    leading chain axis; a pytree, so it passes through `jax.jit` and to disk.

    - `kernel`: BlackJAX's `HMCState` (`position`, the unconstrained position pytree;
      `logdensity`, Jacobians included; `logdensity_grad`), each `(chain, ...)`.
    - `adaptation`: the adaptation's state (BlackJAX's `WindowAdaptationState`: the
      dual-averaging and Welford states, `step_size` `(chain,)` and
      `inverse_mass_matrix` `(chain, dim)` or `(chain, dim, dim)`). After warmup its
      `step_size` and `inverse_mass_matrix` are the adapted ones.
    - `rng_key`: `(chain,)`, each chain's key; step `i` uses `fold_in(rng_key, i)`, so
      the draws depend neither on the chunk size nor on where a run was continued.
    - `step`: `(chain,)` int32, the transitions made so far (warmup then sampling).
    """

    kernel: Any
    adaptation: Any
    rng_key: Any  # PRNGKeyArray; a ShapeDtypeStruct or key data in templates
    step: Any  # Array


def as_leaf(value: Any, like: Any) -> Array:
    """`value` as an array of `like`'s dtype and weak type. The weak type is part of
    `jit`'s cache key: a restored state with strong types where the run's were weak
    would compile the chunk again. (JAX has no public constructor of weakly typed
    arrays; `_convert_element_type` is the one `jnp.asarray` calls, kept since 0.4.)"""
    dtype = np.dtype(like.dtype)
    if getattr(like, "weak_type", False):
        return _convert_element_type(np.asarray(value), dtype, weak_type=True)
    return jnp.asarray(value, dtype)


def unwrap_keys(keys: Array) -> tuple[np.ndarray, str]:
    """`(key data as uint32 host array, impl)`; impl `"raw"` for `PRNGKey`-style keys."""
    if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        return np.asarray(to_host(jax.random.key_data(keys))), str(jax.random.key_impl(keys))
    return np.asarray(to_host(keys)), "raw"


def wrap_keys(data: Any, impl: str) -> Array:
    """The inverse of `unwrap_keys`."""
    data = jnp.asarray(data, jnp.uint32)
    return data if impl == "raw" else jax.random.wrap_key_data(data, impl=impl)


def host_leaves(state: SamplerState) -> tuple[list[tuple[str, np.ndarray]], str]:
    """`[(leaf path, host array)]` of the whole state (keys as their data) and the key
    impl: what a checkpoint stores, to rebuild the state exactly."""
    keys, impl = unwrap_keys(state.rng_key)
    flat = jax.tree_util.tree_flatten_with_path(state._replace(rng_key=keys))[0]
    return [(jax.tree_util.keystr(p), np.asarray(v)) for p, v in to_host(flat)], impl


def from_host_leaves(
    template: SamplerState, leaves: list[tuple[str, np.ndarray]], impl: str
) -> SamplerState:
    """The state with `template`'s structure (`jax.ShapeDtypeStruct` leaves; its
    `rng_key` leaf the key data) from `host_leaves`' output.

    **Raises:** `ValueError` naming the first leaf whose path, shape or dtype differs.
    """
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    if len(paths) != len(leaves):
        raise ValueError(
            f"the stored sampler state has {len(leaves)} leaves; this model and metric "
            f"make {len(paths)}."
        )
    out = []
    for (path, like), (name, value) in zip(paths, leaves, strict=True):
        expected = jax.tree_util.keystr(path)
        if name != expected or tuple(value.shape) != tuple(like.shape):
            raise ValueError(
                f"the stored sampler state's leaf {name} {tuple(value.shape)} does not "
                f"match this model's {expected} {tuple(like.shape)}."
            )
        out.append(as_leaf(value, like))
    state = jax.tree.unflatten(treedef, out)
    return state._replace(rng_key=wrap_keys(state.rng_key, impl))


def sampler_state_group(
    model: LogDensity, state: SamplerState, labels: list[str], attrs: dict[str, Any]
) -> xr.Dataset:
    """What continues a run after warmup, as a Dataset over the flattened position's
    coordinates (`labels`): `position`, `logdensity_grad` `(chain, unconstrained)`,
    `logdensity`, `step` `(chain,)`, and `rng_key` `(chain, key_word)` (its impl in the
    attrs). The adapted parameters are in the `adaptation` group."""
    import xarray as xr

    def flat(tree: Any) -> np.ndarray:  # ravel_pytree's order, per chain, on the host
        leaves = [np.asarray(x) for x in to_host(jax.tree.leaves(tree))]
        return np.concatenate([x.reshape(x.shape[0], -1) for x in leaves], axis=1)

    keys, impl = unwrap_keys(state.rng_key)
    position, grad, lp, step = to_host(
        (
            flat(state.kernel.position),
            flat(state.kernel.logdensity_grad),
            state.kernel.logdensity,
            state.step,
        )
    )
    chain = ["chain"]
    return xr.Dataset(
        {
            "position": (["chain", "unconstrained"], position),
            "logdensity_grad": (["chain", "unconstrained"], grad),
            "logdensity": (chain, lp),
            "step": (chain, step),
            "rng_key": (["chain", "key_word"], keys.reshape(keys.shape[0], -1)),
        },
        coords={"chain": np.arange(position.shape[0]), "unconstrained": labels},
        attrs={**attrs, "key_impl": impl},
    )


def continued(
    model: LogDensity,
    template: SamplerState,
    group: xr.Dataset,
    adapted: xr.Dataset,
) -> SamplerState:
    """The state that continues a run from its `sampler_state` and `adaptation`
    groups. `template` gives the structure (`jax.ShapeDtypeStruct` leaves): the
    adaptation state keeps only the adapted `step_size` and `inverse_mass_matrix` (or
    the low-rank factors), every other leaf zero; a run continued from it only samples,
    which reads nothing else.

    **Raises:** `ValueError` when a stored array's shape differs from the model's.
    """
    flat0, unravel = ravel_pytree(model.initial_position)
    kernel_like = template.kernel

    def host(ds: xr.Dataset, name: str, like: Any) -> Array:
        value = np.asarray(ds[name].values)
        if value.shape != tuple(like.shape):
            raise ValueError(
                f"initial_state's {name} has shape {value.shape}; this model needs "
                f"{tuple(like.shape)}."
            )
        return as_leaf(value, like)

    flat_like = jax.ShapeDtypeStruct(
        (template.step.shape[0], flat0.size), kernel_like.logdensity.dtype
    )
    position = jax.vmap(unravel)(host(group, "position", flat_like))
    grad = jax.vmap(unravel)(host(group, "logdensity_grad", flat_like))
    position = jax.tree.map(as_leaf, position, kernel_like.position)
    grad = jax.tree.map(as_leaf, grad, kernel_like.logdensity_grad)
    kernel = kernel_like._replace(
        position=position,
        logdensity=host(group, "logdensity", kernel_like.logdensity),
        logdensity_grad=grad,
    )
    zeros = jax.tree.map(
        lambda like: as_leaf(np.zeros(like.shape, like.dtype), like), template.adaptation
    )
    imm_like: Any = template.adaptation.inverse_mass_matrix
    imm: Any
    if hasattr(imm_like, "_asdict"):  # the low-rank factors, a NamedTuple
        imm = type(imm_like)(*(host(adapted, k, v) for k, v in imm_like._asdict().items()))
    else:
        imm = host(adapted, "inverse_mass_matrix", imm_like)
    adaptation = zeros._replace(
        step_size=host(adapted, "step_size", template.adaptation.step_size),
        inverse_mass_matrix=imm,
    )
    keys = np.asarray(group["rng_key"].values)
    return SamplerState(
        kernel,
        adaptation,
        wrap_keys(keys, group.attrs["key_impl"]),
        host(group, "step", template.step),
    )
