"""Positions to test a `LogDensity` at: random near the initial one, or drawn by
hypothesis (which shrinks a failure towards the initial position)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import PRNGKeyArray, PyTree

from .._protocol import LogDensity

__all__ = ["RADIUS", "positions", "random_positions"]

RADIUS = 1.5
"""How far (per unconstrained coordinate) from the initial position every check of
`logdensity.testing` looks by default."""


def random_positions(
    logdensity: LogDensity, rng_key: PRNGKeyArray, num_points: int, radius: float = RADIUS
) -> PyTree:
    """`num_points` unconstrained positions near the initial one, batched on a leading axis.

    Each is `initial_position + uniform(-radius, radius)` per coordinate, in the
    position's dtype.
    """
    flat0, unravel = ravel_pytree(logdensity.initial_position)
    u = jax.random.uniform(rng_key, (num_points, flat0.size), flat0.dtype, -radius, radius)
    return jax.vmap(unravel)(flat0 + u)


def positions(
    logdensity: LogDensity, *, radius: float = RADIUS, num_points: int | None = None
) -> Any:
    """A [hypothesis](https://hypothesis.readthedocs.io) strategy for unconstrained
    positions of `logdensity`.

    Each drawn position is `initial_position + u`, `u` drawn by hypothesis coordinate by
    coordinate in `[-radius, radius]` (finite floats of the position's dtype; hypothesis
    shrinks failures towards the initial position). With `num_points`, positions come
    batched on a leading axis of that length (what `agreement(points=...)` takes).

    **Raises:** `ImportError` if hypothesis is not installed (`pip install hypothesis`).
    """
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    flat0, unravel = ravel_pytree(logdensity.initial_position)
    dtype = np.dtype(flat0.dtype)
    width: Any = 8 * dtype.itemsize  # 16, 32 or 64
    elements = st.floats(-radius, radius, width=width, allow_subnormal=False)
    shape = (flat0.size,) if num_points is None else (num_points, flat0.size)
    unravel_all = unravel if num_points is None else jax.vmap(unravel)
    return hnp.arrays(dtype, shape, elements=elements).map(
        lambda u: unravel_all(flat0 + jnp.asarray(u))
    )
