"""Agreement between two backends' versions of one model: equal log densities up to a
constant and equal gradients, the Jacobian between their raw spaces included."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import PRNGKeyArray, PyTree

from .._model import FlatView
from .._protocol import LogDensity
from .._tree import leaf_names
from ._strategies import RADIUS, random_positions

__all__ = ["agreement", "assert_equivalent", "match_names"]


def _last(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def match_names(
    a: LogDensity, b: LogDensity, names: Mapping[str, str] | None = None
) -> dict[str, str]:
    """`{a's name: b's name}` for the latents `b.unconstrain` needs: the given `names`,
    then the same name, then the one name of `a` with the same last dotted part
    (`kernel.lengthscale` for `lengthscale`, and the other way round).

    **Raises:** `KeyError` naming `b`'s latents that no name of `a` matches (or matches
    twice), with the names of both models.
    """
    mapping = dict(names or {})
    a_names = list(a.variables)
    unknown = sorted(set(mapping) - set(a_names))
    if unknown:
        raise KeyError(f"names maps {unknown}, which the first model does not have: {a_names}.")
    taken = set(mapping.values())
    missing = []
    for n, info in b.variables.items():
        if info.deterministic or n in taken:
            continue
        if n in a_names and n not in mapping:
            mapping[n] = n
            continue
        candidates = [m for m in a_names if m not in mapping and _last(m) == _last(n)]
        if len(candidates) == 1:
            mapping[candidates[0]] = n
        else:
            missing.append(n)
    if missing:
        raise KeyError(
            f"the second model ({b.backend!r}) needs {missing}, which the first "
            f"({a.backend!r}: {a_names}) does not name alike; pass names={{first's name: "
            "second's name}, or rename one model (Model.rename)."
        )
    return mapping


def agreement(
    a: LogDensity,
    b: LogDensity,
    rng_key: PRNGKeyArray | None = None,
    *,
    num_points: int = 20,
    radius: float = RADIUS,
    points: PyTree | None = None,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """How far two versions of one model agree, whatever raw space each backend picked.

    At `num_points` points `x` of `a`'s unconstrained space (`a`'s initial position plus
    uniform(-radius, radius) per coordinate; or the given `points`, a batch of `a`'s
    positions on a leading axis, e.g. drawn by [`positions`][logdensity.testing.positions]),
    `T(x) = b.unconstrain(a.constrain(x))`
    maps `x` to `b`'s space through the named model-space values, matched by
    [`match_names`][logdensity.testing.match_names] (`names`: `{a's name: b's name}`
    where the backends name a value differently). If the two models
    are the same, `log p_a(x) = log p_b(T(x)) + log|det T'(x)| + const` (change of
    variables; the Jacobian term is 0 where both backends use the same bijectors).

    **Returns:** `{"offset_spread": max - min of log p_a(x) - log p_b(T(x)) - log|det T'(x)|,
    "offset": its median, "max_grad_diff": max |∇_x log p_a - ∇_x (log p_b∘T + log|det T'|)|,
    "max_lp": max |log p_a(x)|, "worst_point": index of the point furthest from the
    median offset, "worst_variable": the leaf of `a`'s position with the largest gradient
    difference, "points": the points (a pytree batched on axis 0)}`.

    **Raises:** `KeyError` if `b.unconstrain` needs a value that no name of `a`
    matches.
    """
    mapping = match_names(a, b, names)
    rng_key = jax.random.key(0) if rng_key is None else rng_key
    flat_a, flat_b = FlatView(a), FlatView(b)
    if points is None:
        points = random_positions(a, rng_key, num_points, radius)
    xs = jax.vmap(flat_a.ravel)(points)

    def to_b(x: jax.Array) -> jax.Array:
        values = flat_a.constrain(x)
        return flat_b.unconstrain({mapping[k]: v for k, v in values.items() if k in mapping})

    def lp_b(x: jax.Array) -> jax.Array:
        return flat_b(to_b(x)) + jnp.linalg.slogdet(jax.jacfwd(to_b)(x))[1]

    lp_a_val, grad_a = jax.vmap(jax.value_and_grad(flat_a))(xs)
    lp_b_val, grad_b = jax.vmap(jax.value_and_grad(lp_b))(xs)
    diff = np.asarray(lp_a_val - lp_b_val)
    grad_diff = np.abs(np.asarray(grad_a) - np.asarray(grad_b))
    offset = float(np.median(diff))
    per_leaf = jax.tree.leaves(jax.vmap(flat_a.unravel)(jnp.asarray(grad_diff)))
    leaves = leaf_names(a.initial_position)
    worst_leaf = int(np.argmax([np.max(g, initial=0.0) for g in per_leaf]))
    return {
        "offset_spread": float(diff.max() - diff.min()),
        "offset": offset,
        "max_grad_diff": float(grad_diff.max()),
        "max_lp": float(np.max(np.abs(np.asarray(lp_a_val)))),
        "worst_point": int(np.argmax(np.abs(diff - offset))),
        "worst_variable": leaves[worst_leaf],
        "points": points,
    }


def assert_equivalent(
    a: LogDensity,
    b: LogDensity,
    rng_key: PRNGKeyArray | None = None,
    *,
    num_points: int = 20,
    radius: float = RADIUS,
    rtol: float | None = None,
    points: PyTree | None = None,
    names: Mapping[str, str] | None = None,
) -> None:
    """Assert that `a` and `b` are the same model: equal log densities up to one
    constant, and equal gradients, at points of `a`'s space mapped to `b`'s through the
    named values (see [`agreement`][logdensity.testing.agreement]; the log-Jacobian
    between the two raw spaces is accounted for). The points are random near `a`'s
    initial position, or the given `points` (batched on axis 0, e.g. hypothesis-drawn
    with [`positions`][logdensity.testing.positions]). Names are matched as by
    [`match_names`][logdensity.testing.match_names]; `names` gives `{a's name: b's}`.

    Tolerance: `rtol · max(1, max |log p|)` on the spread of the offsets and on the
    gradient differences; default `rtol` 1e-8 in float64 and 1e-3 in float32.

    **Raises:** `AssertionError` naming the worst point (its model-space values) and the
    variable whose gradient differs most.
    """
    result = agreement(
        a, b, rng_key, num_points=num_points, radius=radius, points=points, names=names
    )
    x64 = ravel_pytree(a.initial_position)[0].dtype == jnp.float64
    rtol = (1e-8 if x64 else 1e-3) if rtol is None else rtol
    bar = rtol * max(1.0, result["max_lp"])
    worst = jax.tree.map(lambda v: v[result["worst_point"]], result["points"])
    where = {k: np.round(np.asarray(v), 4).tolist() for k, v in a.constrain(worst).items()}
    if not result["offset_spread"] < bar:
        raise AssertionError(
            f"assert_equivalent: log densities of {a.backend!r} and {b.backend!r} differ by "
            f"more than a constant: offsets spread {result['offset_spread']:.3g} > {bar:.3g}; "
            f"worst at {where}; gradients differ most in {result['worst_variable']!r} "
            f"(by {result['max_grad_diff']:.3g})"
        )
    if not result["max_grad_diff"] < bar:
        raise AssertionError(
            f"assert_equivalent: gradients of {a.backend!r} and {b.backend!r} differ by "
            f"{result['max_grad_diff']:.3g} > {bar:.3g}, most in {result['worst_variable']!r}; "
            f"points like {where}"
        )
