"""Build a `logdensity.Model` from a NumPyro distribution object."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions.transforms import biject_to

import logdensity as ld


def _transform(distribution: dist.Distribution) -> Any:
    return biject_to(distribution.support)


def _logdensity(u: jnp.ndarray, distribution: dist.Distribution) -> jnp.ndarray:
    # log p(T(u)) + log|det T'(u)|: NumPyro's own bijector for the support and its
    # log-Jacobian (summed over batch dimensions, as NumPyro's potential does)
    t = _transform(distribution)
    x = t(u)
    return jnp.sum(distribution.log_prob(x)) + jnp.sum(t.log_abs_det_jacobian(u, x))


def _constrain(u: jnp.ndarray, distribution: dist.Distribution) -> dict[str, jnp.ndarray]:
    return {"x": _transform(distribution)(u)}


def _unconstrain(values: dict[str, jnp.ndarray], distribution: dist.Distribution) -> Any:
    return _transform(distribution).inv(values["x"])


def from_distribution(distribution: dist.Distribution) -> ld.Model:
    """A `LogDensity` whose model is one draw `x ~ distribution`.

    **Arguments:** `distribution`, any NumPyro `Distribution` with a continuous support
    (batch and event dimensions allowed).

    **Returns:** a `logdensity.Model`; the position is one unconstrained array of shape
    `biject_to(support).inverse_shape(batch_shape + event_shape)`, the log density is
    `sum(log_prob(T(u))) + log|det T'(u)|` (Jacobian included), `constrain` gives
    `{"x": T(u)}`. The distribution travels as data: a new distribution of the same type
    and shapes reuses the compiled code (`model.replace_data(new_distribution)`).

    **Raises:** `TypeError` if the support is discrete (no bijection to R^n).
    """
    if distribution.support.is_discrete:
        raise TypeError(
            f"{type(distribution).__name__} has a discrete support; NUTS needs a continuous one"
        )
    t = _transform(distribution)
    shape = t.inverse_shape(distribution.batch_shape + distribution.event_shape)
    return ld.Model(
        _logdensity,
        jnp.zeros(shape),
        data=distribution,
        constrain_fn=_constrain,
        unconstrain_fn=_unconstrain,
        backend="distribution",
    )
