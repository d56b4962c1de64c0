"""The NumPyro adapter: `from_numpyro`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Scalar

from .._model import Model
from .._tree import check_names, check_structure, leaf_names
from ._helpers import Frozen, default_float, require, require_values, static_key

__all__ = ["add_numpyro_predictive", "from_numpyro"]


def _is_data(leaf: Any) -> bool:
    """Array leaves of the model's arguments are data (traced); the rest is static."""
    return isinstance(leaf, np.ndarray | jax.Array)


def _bind(
    model: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    ours_given: dict[str, Any],
) -> inspect.BoundArguments:
    """The model's arguments by parameter name (`inspect.Signature.bind`).

    **Raises:** `TypeError` when a keyword meant for us (`coords=`, ...) has the name of
    a model parameter left unbound (say which was meant), or the arguments do not fit
    the model's signature.
    """
    signature = inspect.signature(model)
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"the arguments do not fit {model.__name__}{signature}: {e}") from None
    for name, value in ours_given.items():
        if value is not None and name in signature.parameters and name not in bound.arguments:
            raise TypeError(
                f"{model.__name__} has a parameter {name!r}, and {name}= is logdensity's own "
                f"keyword; pass the model's {name!r} through model_kwargs={{{name!r}: ...}}."
            )
    try:
        return signature.bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"the arguments do not fit {model.__name__}{signature}: {e}") from None


class _Bound(Frozen):
    """The model and its static arguments, with the data slots left open.

    Two bounds of the same model function, argument structure and static values compare
    equal, so `from_numpyro(model, new_data)` reuses the code compiled for the old data.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        signature: inspect.Signature,
        treedef: Any,
        is_data: tuple[bool, ...],
        static: tuple[Any, ...],
    ):
        self.model, self.signature, self.treedef = model, signature, treedef
        self.is_data, self.static = is_data, static
        self.key = (model, treedef, is_data, tuple(static_key(s) for s in static))

    def arguments(self, data: tuple[Any, ...]) -> dict[str, Any]:
        """`{parameter: value}` with the data leaves in place."""
        leaves, dynamic, static = [], iter(data), iter(self.static)
        for is_data in self.is_data:
            leaves.append(next(dynamic) if is_data else next(static))
        return jax.tree.unflatten(self.treedef, leaves)

    def args(self, data: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        bound = inspect.BoundArguments(self.signature, self.arguments(data))
        return bound.args, bound.kwargs


class _LogDensity(_Bound):
    """`-potential_energy`, traced with NumPyro's distribution validation on only if
    `validate_args` (it is part of the compilation key)."""

    def __init__(self, *args: Any, validate_args: bool):
        super().__init__(*args)
        self.validate_args = validate_args
        self.key = (*self.key, validate_args)

    def __call__(self, position: dict[str, Array], data: tuple[Any, ...]) -> Scalar:
        from numpyro.distributions.distribution import validation_enabled
        from numpyro.infer.util import potential_energy

        args, kwargs = self.args(data)
        # distributions read the flag when they are built, here while tracing
        with validation_enabled(self.validate_args):
            return -potential_energy(self.model, args, kwargs, position)


class _Constrain(_Bound):
    """The constrained values and deterministics, traced without NumPyro's distribution
    validation: the positions are in the support by construction, and the data were
    validated when the model was built (its checks on concrete data would compile small
    programs of their own at every trace)."""

    def __call__(self, position: dict[str, Array], data: tuple[Any, ...]) -> dict[str, Array]:
        from numpyro.distributions.distribution import validation_enabled
        from numpyro.infer.util import constrain_fn

        args, kwargs = self.args(data)
        with validation_enabled(False):
            return constrain_fn(self.model, args, kwargs, position, return_deterministic=True)


class _Unconstrain(_Bound):
    def __init__(self, *args: Any, latents: tuple[str, ...]):
        super().__init__(*args)
        self.latents = latents
        self.key = (*self.key, latents)

    def __call__(self, values: Mapping[str, Any], data: tuple[Any, ...]) -> dict[str, Array]:
        from numpyro.infer.util import unconstrain_fn

        require_values(self.latents, values, "latent site")
        args, kwargs = self.args(data)
        latent = {n: jnp.asarray(values[n]) for n in self.latents}
        return unconstrain_fn(self.model, args, kwargs, latent)


class _ArgumentData(_Bound):
    """The data form of a NumPyro model: `{parameter name: argument}` for every argument
    holding an array (the arrays traced; any other leaf in them static)."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        full = self.arguments(tuple(None for d in self.is_data if d))
        marked = jax.tree.unflatten(self.treedef, list(self.is_data))
        self.names = tuple(n for n in full if any(jax.tree.leaves(marked[n])))
        self.key = (*self.key, self.names)

    def unpack(self, stored: tuple[Any, ...]) -> dict[str, Any]:
        arguments = self.arguments(stored)
        return {n: arguments[n] for n in self.names}

    def pack(self, data: Any, current: tuple[Any, ...]) -> tuple[Any, ...]:
        if not isinstance(data, Mapping):
            raise TypeError(
                f"replace_data takes {{argument name: value}} for {list(self.names)} "
                f"(as model.data gives them); got {type(data).__name__}."
            )
        check_names(
            self.names,
            data,
            f"replace_data needs the data arguments {list(self.names)} of "
            f"{self.model.__name__} (the others are static: build the model again to "
            "change them)",
        )
        arguments = self.arguments(current)
        for name in self.names:
            check_structure(arguments[name], data[name], f"data[{name!r}]")
            arguments[name] = data[name]
        stored, static = [], []
        for path_name, leaf, is_data in zip(
            leaf_names(arguments), jax.tree.leaves(arguments), self.is_data, strict=True
        ):
            if not is_data:
                static.append(leaf)
                continue
            try:
                stored.append(jnp.asarray(leaf))
            except TypeError as e:
                raise TypeError(f"data leaf {path_name!r} is not an array: {e}") from None
        if tuple(map(static_key, static)) != tuple(map(static_key, self.static)):
            raise ValueError(
                f"replace_data changed a static (non-array) part of {list(self.names)}; "
                "build the model again with from_numpyro to change it."
            )
        return tuple(stored)


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


def _abstract_trace(
    model: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """`_trace`, run under `jax.eval_shape`: the model's operations are traced, not
    compiled and run one small program each (a dozen on eight schools, most of the cost
    of building a small model). The latent and deterministic values are
    `jax.ShapeDtypeStruct`s; the observed ones are the data. A model whose observed
    values are computed inside it (`obs=y.astype(...)`), or that cannot be traced
    abstractly (NumPy on its values), is run again eagerly: its observed values are
    checked against their support, and its errors are its own."""
    from numpyro.distributions.distribution import Unit

    recorded: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        recorded.update(_trace(model, args, kwargs))
        return {
            name: site["value"]
            for name, site in recorded.items()
            if site["type"] in ("sample", "deterministic")
        }

    try:
        types = jax.eval_shape(run)
    except Exception:  # a model that needs concrete values (NumPy on them): run it eagerly
        return _trace(model, args, kwargs)
    tr = {}
    for name, site in recorded.items():
        traced = isinstance(site.get("value"), jax.core.Tracer)
        observed = site["type"] == "sample" and site["is_observed"]
        if traced and observed and not isinstance(site["fn"], Unit):  # Unit: a factor
            return _trace(model, args, kwargs)
        tr[name] = {**site, "value": types[name]} if traced and name in types else site
    return tr


def _ndim(value: Any) -> int:
    return len(value.shape) if hasattr(value, "shape") else int(np.ndim(value))


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


def _check_observed(site: dict[str, Any]) -> None:
    """An observed value outside its distribution's support, refused once at build
    time (the log density skips NumPyro's per-evaluation checks)."""
    if site.get("mask") is not None:  # masked entries may hold placeholders
        return
    try:
        inside = np.asarray(site["fn"].support(site["value"]))
    except Exception:  # a support that cannot check this value: leave it to NumPyro
        return
    if not inside.all():
        bad = int(inside.size - inside.sum())
        raise ValueError(
            f"observed site {site['name']!r} has {bad} of {inside.size} values outside "
            f"the support of its {type(site['fn']).__name__} distribution "
            f"({site['fn'].support}); its log density would be -inf or NaN there."
        )


def from_numpyro(
    model: Callable[..., Any],
    *model_args: Any,
    dims: Mapping[str, tuple[str, ...]] | None = None,
    coords: Mapping[str, Any] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    validate_args: bool = False,
    **kwargs: Any,
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
      are static. `model.data` is `{parameter name: argument}` for every argument that
      holds an array, and `model.replace_data` takes the same dict (every key, by
      name, never by position).
    - Dims: a site's batch axes inside `numpyro.plate("school", 8)` get the dim
      `school`; other axes are `{site}_dim_{i}`. `coords` (per dim) and `dims` (per site)
      add or override labels.

    The initial position is zero in the unconstrained space (the centre of NumPyro's
    and Stan's `uniform(-2, 2)` initialisation, which `logdensity.sample` applies).

    **Arguments:**

    - `model`: a function containing NumPyro primitives.
    - `*model_args`, `**kwargs`: what to call it with (data included).
    - `dims`, `coords`: ArviZ labels (keyword-only; they are not passed to the model).
    - `model_kwargs`: more keyword arguments of the model, for a model parameter named
      like one of ours (`dims`, `coords`, `model_kwargs`, `validate_args`): those
      keywords always mean ours, and a model parameter of that name left unbound raises.
    - `validate_args`: trace the log density with NumPyro's distribution validation
      (`numpyro.enable_validation`, on by default in NumPyro 0.22), which checks every
      value against its support and parameters for NaN at every evaluation, and puts
      `-inf` outside the support. Off by default: the positions' values are in the
      support by construction (`biject_to`), and the observed values are checked once
      here instead; the checks double the operations of a small model's gradient. What
      is lost without it: the `-inf` (and NumPyro's warnings) for parameters outside
      their constraints, e.g. a scale computed to be negative inside the model.

    **Raises:**

    - `ImportError` if NumPyro is not installed (`pip install "logdensity[numpyro]"`).
    - `ValueError` naming the site for a latent discrete site, a subsampled plate, a
      `numpyro.param` site, or observed values outside their distribution's support.
    - `TypeError` if the arguments do not fit the model's signature, or one of our
      keywords has the name of an unbound model parameter.
    """
    require("numpyro", "numpyro")
    model_kwargs = {**(model_kwargs or {}), **kwargs}
    ours = {"dims": dims, "coords": coords, "validate_args": validate_args or None}
    parts, data = _parts(model, model_args, model_kwargs, ours)

    tr = _abstract_trace(model, model_args, model_kwargs)
    for site in tr.values():
        _check_site(site)
        if site["type"] == "sample" and site["is_observed"]:
            _check_observed(site)
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
        name: jnp.zeros(s.shape, default_float()) for name, s in unconstrained.items()
    }

    site_dims: dict[str, tuple[str, ...]] = {}
    site_coords: dict[str, Any] = {}
    for name, site in tr.items():
        if site["type"] == "plate":
            site_coords[name] = np.arange(site["args"][0])
        if name in latents:
            event_ndim = len(site["fn"].event_shape)
            site_dims[name] = _site_dims(site, _ndim(site["value"]), event_ndim)
        elif site["type"] == "deterministic":
            site_dims[name] = _site_dims(site, _ndim(site["value"]), 0)
    site_dims.update(dims or {})
    used = {d for ds in site_dims.values() for d in ds}
    all_coords = {k: v for k, v in site_coords.items() if k in used}
    all_coords.update(coords or {})

    deterministics = tuple(n for n, s in tr.items() if s["type"] == "deterministic")
    return Model(
        _LogDensity(*parts, validate_args=bool(validate_args)),
        initial_position,
        data=data,
        constrain_fn=_Constrain(*parts),
        unconstrain_fn=unconstrain,
        dims={k: v for k, v in site_dims.items() if k in latents or k in deterministics},
        coords=all_coords,
        deterministics=deterministics,
        backend="numpyro",
        data_form=_ArgumentData(*parts),
    )


def _parts(
    model: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    ours_given: dict[str, Any],
) -> tuple[tuple[Any, ...], tuple[Array, ...]]:
    """What every `_Bound` of the model is built from, and the data leaves."""
    bound = _bind(model, args, kwargs, ours_given)
    leaves, treedef = jax.tree.flatten(dict(bound.arguments))
    is_data = tuple(_is_data(leaf) for leaf in leaves)
    data = tuple(jnp.asarray(leaf) for leaf, d in zip(leaves, is_data, strict=True) if d)
    static = tuple(leaf for leaf, d in zip(leaves, is_data, strict=True) if not d)
    return (model, bound.signature, treedef, is_data, static), data


def add_numpyro_predictive(
    idata: Any,
    model: Callable[..., Any],
    *model_args: Any,
    rng_key: Array,
    log_likelihood: bool = True,
    batch_size: int = 200,
    model_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Add `posterior_predictive`, `log_likelihood` and `observed_data` to `idata`.

    `logdensity.predict(from_numpyro(model, *model_args, **kwargs), idata, rng_key=...)`
    with the model function: for every draw of `idata.posterior`, the observed sites of
    `model` are simulated (NumPyro's handlers on `handlers.uncondition(model)`) and
    their pointwise log-likelihood is evaluated (`numpyro.infer.util.log_likelihood`),
    as ArviZ's LOO/WAIC expect. Draws are processed `batch_size` at a time in one
    compiled function, so memory stays bounded. `numpyro.factor` sites are not
    observations and are skipped. Call with the same arguments (data included) used for
    inference; for new inputs, use `logdensity.predict` on the built model.

    **Arguments:** `idata` from `logdensity.sample` on `from_numpyro(model, ...)`;
    `rng_key` for the simulations; `model_kwargs` for a model parameter named like one
    of our keywords (`rng_key`, `log_likelihood`, `batch_size`, `model_kwargs`), as in
    [`from_numpyro`][logdensity.from_numpyro].

    **Returns:** `idata`, extended in place (and returned) with the new groups, each
    `(chain, draw, *site shape)` with the model's plate dims.

    **Raises:** `ValueError` if the model has no observed site, the posterior lacks a
    latent site or has no draws; `TypeError` as `from_numpyro` for arguments.
    """
    require("numpyro", "numpyro")
    model_kwargs = {**(model_kwargs or {}), **kwargs}
    _bind(model, model_args, model_kwargs, {"rng_key": rng_key})
    built = from_numpyro(model, *model_args, model_kwargs=model_kwargs)
    return numpyro_predictions(
        built, idata, (), {}, rng_key=rng_key, source="posterior", num_samples=0,
        log_likelihood=log_likelihood, batch_size=batch_size,
    )  # fmt: skip


def _observed(tr: Any) -> dict[str, Any]:
    """The observed sample sites of a trace (`numpyro.factor`'s auxiliaries left out)."""
    return {
        name: site
        for name, site in tr.items()
        if site["type"] == "sample"
        and site["is_observed"]
        and not site["infer"].get("is_auxiliary", False)
    }


def _dims_and_coords(tr: Any, names: list[str]) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Plate dims of the named sites of a trace, and the coords of the plates they use."""
    dims = {}
    for name in names:
        site = tr[name]
        event_ndim = len(site["fn"].event_shape) if site["type"] == "sample" else 0
        dims[name] = list(_site_dims(site, jnp.ndim(site["value"]), event_ndim))
    used = {d for ds in dims.values() for d in ds}
    coords = {
        name: np.arange(site["args"][0])
        for name, site in tr.items()
        if site["type"] == "plate" and name in used
    }
    return dims, coords


def numpyro_predictions(
    model: Model,
    idata: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    rng_key: Array,
    source: str,
    num_samples: int,
    log_likelihood: bool,
    batch_size: int,
) -> Any:
    """`logdensity.predict` for a `from_numpyro` model (see its docstring)."""
    require("numpyro", "numpyro")
    import arviz as az
    from numpyro import handlers
    from numpyro.infer.util import log_likelihood as numpyro_log_likelihood

    from .._draws import batched, group_name, latent_draws

    form = model._data_form
    if not isinstance(form, _ArgumentData):
        raise TypeError("predict's NumPyro route needs a model built by from_numpyro.")
    fn = form.model
    built_args, built_kwargs = form.args(model._data)
    built = _trace(fn, built_args, built_kwargs)
    observed = list(_observed(built))
    if not observed:
        raise ValueError(
            f"{fn.__name__} has no observed sample site (obs=...) when called with the "
            "arguments it was built with, so there is nothing to predict. To predict at "
            "new inputs, build the model with its observations and call "
            "logdensity.predict(model, idata, *new_inputs, rng_key=...); pass fn= to "
            "predict a function of the draws."
        )
    new_inputs = bool(args or kwargs)
    bound = _bind(fn, args, kwargs, {}) if new_inputs else None
    call_args, call_kwargs = (args, kwargs) if new_inputs else (built_args, built_kwargs)
    tr = _trace(fn, call_args, call_kwargs) if new_inputs else built
    missing = [n for n in observed if n not in tr]
    if missing:
        raise ValueError(f"{fn.__name__} has no site {missing} when called with the new arguments.")
    deterministic = [n for n, s in tr.items() if s["type"] == "deterministic"]
    sites = observed + (deterministic if new_inputs else [])
    unconditioned = handlers.uncondition(fn)

    def simulate(values: dict[str, Array], key: Array) -> dict[str, Array]:
        run = handlers.trace(handlers.seed(handlers.condition(unconditioned, data=values), key))
        trace = run.get_trace(*call_args, **call_kwargs)
        return {n: trace[n]["value"] for n in sites}

    if idata is None:  # prior draws first, as NumPyro's Predictive draws them
        latents = [n for n, v in model.variables.items() if not v.deterministic]

        def from_prior(values: dict[str, Array], key: Array) -> dict[str, Array]:
            del values
            run = handlers.trace(handlers.seed(unconditioned, key))
            trace = run.get_trace(*call_args, **call_kwargs)
            return {n: trace[n]["value"] for n in latents + deterministic + observed}

        drawn = batched(from_prior, {"_": np.zeros(num_samples)}, rng_key, batch_size)
        dims, coords = _dims_and_coords(tr, list(drawn))
        return az.from_dict(
            prior={n: drawn[n][None] for n in drawn if n not in observed},
            prior_predictive={n: drawn[n][None] for n in observed},
            observed_data=None if new_inputs else _observed_data(built, observed),
            dims=dims,
            coords=coords,
        )

    draws = latent_draws(model, idata, source)
    out = batched(simulate, draws, rng_key, batch_size)
    chains, num = idata[source].sizes["chain"], idata[source].sizes["draw"]

    def shaped(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {n: v.reshape(chains, num, *v.shape[1:]) for n, v in values.items()}

    group = group_name(source, new_inputs)
    groups: dict[str, Any] = {group: shaped(out)}
    dims, coords = _dims_and_coords(tr, sites)
    if new_inputs:
        assert bound is not None
        constant = {n: np.asarray(v) for n, v in bound.arguments.items() if _is_data(v)}
        groups["predictions_constant_data"] = constant
        for name, value in constant.items():  # an input along one plate takes its dim
            plates = [p for p, labels in coords.items() if value.ndim and len(labels) == len(value)]
            if len(plates) == 1:
                dims[name] = [plates[0], *(f"{name}_dim_{i}" for i in range(1, value.ndim))]
    elif source == "posterior":
        groups["observed_data"] = _observed_data(built, observed)
        if log_likelihood:

            def pointwise(values: dict[str, Array], key: Array) -> dict[str, Array]:
                del key
                one = {n: v[None] for n, v in values.items()}
                ll = numpyro_log_likelihood(fn, one, *call_args, **call_kwargs)
                return {n: v[0] for n, v in ll.items()}

            groups["log_likelihood"] = shaped(batched(pointwise, draws, rng_key, batch_size))
    idata.extend(az.from_dict(**groups, dims=dims, coords=coords))
    return idata


def _observed_data(tr: Any, observed: list[str]) -> dict[str, np.ndarray]:
    return {n: np.asarray(tr[n]["value"]) for n in observed}
