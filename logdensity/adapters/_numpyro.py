"""The NumPyro adapter: `from_numpyro`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Scalar

from .._model import Model
from ._backends import require, static_key

__all__ = ["add_numpyro_predictive", "from_numpyro"]


def _is_data(leaf: Any) -> bool:
    """Array leaves of the model's arguments are data (traced); the rest is static."""
    return isinstance(leaf, np.ndarray | jax.Array)


class _Bound:
    """The model and its static arguments, with the data slots left open.

    Two bounds of the same model function, argument structure and static values compare
    equal, so `from_numpyro(model, new_data)` reuses the code compiled for the old data.
    """

    def __init__(self, model: Callable[..., Any], treedef: Any, static: tuple[Any, ...]):
        self.model, self.treedef, self.static = model, treedef, static
        self._key: tuple[Any, ...] = (model, treedef, tuple(static_key(s) for s in static))

    def args(self, data: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        leaves, dynamic, static = [], iter(data), iter(self.static)
        for is_data in self.treedef[1]:
            leaves.append(next(dynamic) if is_data else next(static))
        return jax.tree.unflatten(self.treedef[0], leaves)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and other._key == self._key

    def __hash__(self) -> int:
        return hash((type(self), self._key))


class _LogDensity(_Bound):
    def __call__(self, position: dict[str, Array], data: tuple[Any, ...]) -> Scalar:
        from numpyro.infer.util import potential_energy

        args, kwargs = self.args(data)
        return -potential_energy(self.model, args, kwargs, position)


class _Constrain(_Bound):
    def __call__(self, position: dict[str, Array], data: tuple[Any, ...]) -> dict[str, Array]:
        from numpyro.infer.util import constrain_fn

        args, kwargs = self.args(data)
        return constrain_fn(self.model, args, kwargs, position, return_deterministic=True)


class _Unconstrain(_Bound):
    def __init__(self, *args: Any, latents: tuple[str, ...]):
        super().__init__(*args)
        self.latents = latents
        self._key = (*self._key, latents)

    def __call__(self, values: Mapping[str, Any], data: tuple[Any, ...]) -> dict[str, Array]:
        from numpyro.infer.util import unconstrain_fn

        missing = [n for n in self.latents if n not in values]
        if missing:
            raise KeyError(f"unconstrain needs values for the latent sites {missing}.")
        args, kwargs = self.args(data)
        latent = {n: jnp.asarray(values[n]) for n in self.latents}
        return unconstrain_fn(self.model, args, kwargs, latent)


def _site_dims(site: dict[str, Any], value_ndim: int, event_ndim: int) -> tuple[str, ...]:
    """Dim names for a site's value: plate names on batch axes, `{site}_dim_{i}` else."""
    names = [f"{site['name']}_dim_{i}" for i in range(value_ndim)]
    batch_ndim = value_ndim - event_ndim
    for frame in site.get("cond_indep_stack", []):
        axis = batch_ndim + frame.dim  # frame.dim counts from the right of the batch shape
        if frame.dim < 0 and 0 <= axis < batch_ndim:
            names[axis] = frame.name
    return tuple(names)


def _trace(model: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """One run of the model, recording its sites. Latent values come from NumPyro's own
    `init_to_uniform` (as in `initialize_model`), so improper priors work too."""
    from numpyro import handlers
    from numpyro.infer import init_to_uniform

    seeded = handlers.seed(model, 0)
    return handlers.trace(handlers.substitute(seeded, substitute_fn=init_to_uniform)).get_trace(
        *args, **kwargs
    )


def _check_site(site: dict[str, Any]) -> None:
    name = site["name"]
    if site["type"] == "plate":
        size, subsample_size = site["args"][:2]
        if subsample_size is not None and subsample_size < size:
            raise ValueError(
                f"plate {name!r} subsamples {subsample_size} of {size}: NUTS needs the full "
                "log density at every step (a subsampled one is a noisy estimate). Remove "
                "subsample_size for logdensity.sample."
            )
    elif site["type"] == "param":
        raise ValueError(
            f"site {name!r} is a numpyro.param, a point estimate with no prior; "
            "give it a prior with numpyro.sample to sample it."
        )
    elif site["type"] == "sample" and not site["is_observed"]:
        fn = site["fn"]
        if fn.support.is_discrete:
            raise ValueError(
                f"latent site {name!r} has a discrete distribution "
                f"({type(fn).__name__}): NUTS needs a continuous unconstrained space. "
                "Marginalise it (e.g. a mixture distribution) or observe it (obs=...)."
            )


def from_numpyro(
    model: Callable[..., Any],
    *model_args: Any,
    coords: Mapping[str, Any] | None = None,
    dims: Mapping[str, tuple[str, ...]] | None = None,
    **model_kwargs: Any,
) -> Model:
    """A `LogDensity` from a NumPyro model function and its arguments.

    Built on NumPyro's own machinery (`numpyro.infer.util.potential_energy`,
    `constrain_fn`, `unconstrain_fn`, `biject_to`): each latent sample site's
    unconstrained value is pushed through `biject_to(site.fn.support)` **evaluated at the
    current position**, so a support that depends on other parameters (e.g.
    `Uniform(0, 1 - alpha1)`) moves with them, and every log-Jacobian is included.

    - Position: `{site: unconstrained value}` for every latent sample site (each with
      the shape of its unconstrained space). The log density is `-potential_energy`:
      the log joint (priors, observed sites, `numpyro.factor`s) plus log-Jacobians.
    - Observed sites (`obs=`) stay observed. `constrain` returns every latent in its own
      space plus every `numpyro.deterministic` site.
    - Data: the array arguments (NumPy or JAX) are the `Model`'s data, traced, so new data
      of the same shapes reuse compiled code; other arguments (ints, strings, `None`)
      are static.
    - Dims: a site's batch axes inside `numpyro.plate("school", 8)` get the dim
      `school`; other axes are `{site}_dim_{i}`. `coords` (per dim) and `dims` (per site)
      add or override labels.

    The initial position is zero in the unconstrained space (the centre of NumPyro's
    and Stan's `uniform(-2, 2)` initialisation, which `logdensity.sample` applies).

    **Arguments:**

    - `model`: a function containing NumPyro primitives.
    - `*model_args`, `**model_kwargs`: what to call it with (data included).
    - `coords`, `dims`: ArviZ labels (keyword-only; they are not passed to the model).

    **Raises:**

    - `ImportError` if NumPyro is not installed (`pip install "logdensity[numpyro]"`).
    - `ValueError` naming the site for a latent discrete site, a subsampled plate, or a
      `numpyro.param` site.
    """
    require("numpyro", "numpyro")

    leaves, treedef = jax.tree.flatten((model_args, model_kwargs))
    is_data = tuple(_is_data(leaf) for leaf in leaves)
    data = tuple(jnp.asarray(leaf) for leaf, d in zip(leaves, is_data, strict=True) if d)
    static = tuple(leaf for leaf, d in zip(leaves, is_data, strict=True) if not d)
    parts = (model, (treedef, is_data), static)

    tr = _trace(model, model_args, model_kwargs)
    for site in tr.values():
        _check_site(site)
    latents = {
        name: site["value"]
        for name, site in tr.items()
        if site["type"] == "sample" and not site["is_observed"]
    }
    if not latents:
        raise ValueError("the model has no latent sample site: nothing to sample.")
    unconstrain = _Unconstrain(*parts, latents=tuple(latents))
    unconstrained = jax.eval_shape(unconstrain, latents, data)
    initial_position = {
        name: jnp.zeros(s.shape, jnp.zeros(()).dtype) for name, s in unconstrained.items()
    }

    site_dims: dict[str, tuple[str, ...]] = {}
    site_coords: dict[str, Any] = {}
    for name, site in tr.items():
        if site["type"] == "plate":
            site_coords[name] = np.arange(site["args"][0])
        if name in latents:
            event_ndim = len(site["fn"].event_shape)
            site_dims[name] = _site_dims(site, jnp.ndim(site["value"]), event_ndim)
        elif site["type"] == "deterministic":
            site_dims[name] = _site_dims(site, jnp.ndim(site["value"]), 0)
    site_dims.update(dims or {})
    used = {d for ds in site_dims.values() for d in ds}
    all_coords = {k: v for k, v in site_coords.items() if k in used}
    all_coords.update(coords or {})

    deterministics = tuple(n for n, s in tr.items() if s["type"] == "deterministic")
    return Model(
        _LogDensity(*parts),
        initial_position,
        data=data,
        constrain_fn=_Constrain(*parts),
        unconstrain_fn=unconstrain,
        dims={k: v for k, v in site_dims.items() if k in latents or k in deterministics},
        coords=all_coords,
        deterministics=deterministics,
        backend="numpyro",
    )


def add_numpyro_predictive(
    idata: Any,
    model: Callable[..., Any],
    *model_args: Any,
    rng_key: Array,
    log_likelihood: bool = True,
    batch_size: int = 200,
    **model_kwargs: Any,
) -> Any:
    """Add `posterior_predictive`, `log_likelihood` and `observed_data` to `idata`.

    For every draw of `idata.posterior`, the observed sites of `model` are simulated
    (`numpyro.infer.Predictive` on `numpyro.handlers.uncondition(model)`) and their
    pointwise log-likelihood is evaluated (`numpyro.infer.util.log_likelihood`), as
    ArviZ's LOO/WAIC expect. Draws are processed `batch_size` at a time in one compiled
    function, so memory stays bounded. `numpyro.factor` sites are not observations and
    are skipped. Call with the same arguments (data included) used for inference.

    **Arguments:** `idata` from `logdensity.sample` on `from_numpyro(model, ...)`;
    `rng_key` for the simulations.

    **Returns:** `idata`, extended in place (and returned) with the new groups, each
    `(chain, draw, *site shape)` with the model's plate dims.

    **Raises:** `ValueError` if the model has no observed site or the posterior lacks a
    latent site.
    """
    require("numpyro", "numpyro")
    import arviz as az
    from numpyro import handlers
    from numpyro.infer import Predictive
    from numpyro.infer.util import log_likelihood as numpyro_log_likelihood

    tr = _trace(model, model_args, model_kwargs)
    observed = {
        name: site
        for name, site in tr.items()
        if site["type"] == "sample"
        and site["is_observed"]
        and not site["infer"].get("is_auxiliary", False)
    }
    if not observed:
        raise ValueError("the model has no observed sample site to predict.")
    latents = [n for n, s in tr.items() if s["type"] == "sample" and not s["is_observed"]]
    post = idata["posterior"]
    missing = [n for n in latents if n not in post]
    if missing:
        raise ValueError(f"idata.posterior lacks the latent sites {missing}.")
    samples = {n: jnp.asarray(post[n].values) for n in latents}

    @jax.jit
    def batch(chunk: dict[str, Array], key: Array) -> tuple[dict[str, Array], dict[str, Array]]:
        simulated = Predictive(
            handlers.uncondition(model),
            posterior_samples=chunk,
            batch_ndims=2,
            return_sites=list(observed),
        )(key, *model_args, **model_kwargs)
        loglik = (
            numpyro_log_likelihood(model, chunk, *model_args, batch_ndims=2, **model_kwargs)
            if log_likelihood
            else {}
        )
        return simulated, loglik

    num_draws = post.sizes["draw"]
    parts = []
    for start in range(0, num_draws, batch_size):
        chunk = {n: v[:, start : start + batch_size] for n, v in samples.items()}
        parts.append(jax.device_get(batch(chunk, jax.random.fold_in(rng_key, start))))
    simulated = {n: np.concatenate([p[0][n] for p in parts], axis=1) for n in observed}
    loglik = {n: np.concatenate([p[1][n] for p in parts], axis=1) for n in parts[0][1]}
    dims = {
        n: list(_site_dims(s, jnp.ndim(s["value"]), len(s["fn"].event_shape)))
        for n, s in observed.items()
    }
    coords = {
        name: np.arange(site["args"][0]) for name, site in tr.items() if site["type"] == "plate"
    }
    used = {d for ds in dims.values() for d in ds}
    extra = az.from_dict(
        posterior_predictive=simulated,
        log_likelihood=loglik or None,
        observed_data={n: np.asarray(s["value"]) for n, s in observed.items()},
        dims=dims,
        coords={k: v for k, v in coords.items() if k in used},
    )
    idata.extend(extra)
    return idata
