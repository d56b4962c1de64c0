"""Conformance checks for `LogDensity` implementations (our adapters and plugins).

Run `check_logdensity(model)` in your adapter's tests: it checks the protocol's
promises (finite scalar, dtype kept, eager == `jit`, `vmap`, gradients against finite
differences, flat view == pytree, `constrain`/`unconstrain` round trip, one trace per
shape). Build the model under `jax.enable_x64(True)` for the gradient check to be
tight; in float32 it uses looser tolerances.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import PRNGKeyArray, PyTree

from ._model import leaf_names
from ._protocol import LogDensity
from ._sbc import SBCResult, sbc

__all__ = [
    "SBCResult",
    "agreement",
    "assert_equivalent",
    "check_logdensity",
    "positions",
    "random_positions",
    "sbc",
]


def random_positions(
    logdensity: LogDensity, rng_key: PRNGKeyArray, num_points: int, radius: float = 1.0
) -> PyTree:
    """`num_points` unconstrained positions near the initial one, batched on a leading axis.

    Each is `initial_position + uniform(-radius, radius)` per coordinate, in the
    position's dtype.
    """
    flat0, unravel = ravel_pytree(logdensity.initial_position)
    u = jax.random.uniform(rng_key, (num_points, flat0.size), flat0.dtype, -radius, radius)
    return jax.vmap(unravel)(flat0 + u)


def positions(logdensity: LogDensity, *, radius: float = 3.0, num_points: int | None = None) -> Any:
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


def _fail(check: str, detail: str) -> AssertionError:
    return AssertionError(f"check_logdensity: {check} failed: {detail}")


def check_logdensity(
    logdensity: LogDensity,
    rng_key: PRNGKeyArray | None = None,
    *,
    num_points: int = 8,
    radius: float = 1.0,
    check_grad: bool = True,
) -> None:
    """Assert that `logdensity` keeps every promise of the `LogDensity` protocol.

    Checks, at `initial_position` and at `num_points` positions drawn by
    [`random_positions`][logdensity.testing.random_positions]:

    1. the log density at the initial position is a finite scalar of the position's
       floating dtype;
    2. eager evaluation equals `jax.jit` evaluation;
    3. `jax.vmap` over a batch gives shape `(num_points,)`, equal to the loop of single
       evaluations; `constrain` under `vmap` gives every variable with shape
       `(num_points, *variables[name].shape)`;
    4. `jax.grad` matches central finite differences along random directions
       (`rtol` 1e-5 in float64, 2e-2 in float32) when `check_grad`;
    5. the flat view equals the pytree density, `flat.unravel(flat.ravel(p)) == p`, and
       `flat.dim` is the number of unconstrained coordinates;
    6. `unconstrain(constrain(p))` gives back `p` (where `unconstrain` is implemented)
       and `constrain` returns every name in `variables`;
    7. a second position of the same shape does not retrace a `jit`-compiled call.

    **Raises:** `AssertionError` naming the failed check and the culprit (leaf, variable,
    expected vs got).
    """
    rng_key = jax.random.key(0) if rng_key is None else rng_key
    p0 = logdensity.initial_position
    flat0 = ravel_pytree(p0)[0]
    dtype = flat0.dtype
    x64 = dtype == jnp.float64
    tol = 1e-10 if x64 else 1e-5

    lp0 = logdensity(p0)
    if jnp.shape(lp0) != ():
        raise _fail("scalar", f"log density at initial_position has shape {jnp.shape(lp0)}")
    if not np.isfinite(lp0):
        raise _fail("finite", f"log density at initial_position is {lp0}")
    if jnp.result_type(lp0) != dtype:
        raise _fail("dtype", f"position dtype {dtype} but log density dtype {jnp.result_type(lp0)}")

    points = random_positions(logdensity, rng_key, num_points, radius)
    traces: list[None] = []

    def traced(p: PyTree) -> Any:
        traces.append(None)
        return logdensity(p)

    jitted = jax.jit(traced)
    eager = np.array(
        [logdensity(jax.tree.map(lambda x, i=i: x[i], points)) for i in range(num_points)]
    )
    compiled = np.array(
        [jitted(jax.tree.map(lambda x, i=i: x[i], points)) for i in range(num_points)]
    )
    if len(traces) != 1:
        raise _fail(
            "one trace per shape",
            f"jit traced {len(traces)} times for {num_points} positions",
        )
    if not np.allclose(eager, compiled, rtol=tol, atol=tol):
        raise _fail("eager == jit", f"eager {eager} vs jit {compiled}")
    batched = np.asarray(jax.vmap(logdensity)(points))
    if batched.shape != (num_points,):
        raise _fail("vmap", f"expected shape {(num_points,)}, got {batched.shape}")
    if not np.allclose(batched, eager, rtol=tol, atol=tol):
        raise _fail("vmap", f"vmap {batched} vs loop {eager}")

    values = jax.vmap(logdensity.constrain)(points)
    for name, info in logdensity.variables.items():
        if name not in values:
            raise _fail("constrain", f"variable {name!r} is missing from constrain's output")
        expected = (num_points, *info.shape)
        if values[name].shape != expected:
            raise _fail(
                "constrain under vmap",
                f"{name!r}: expected {expected}, got {values[name].shape}",
            )

    flat = logdensity.flat
    if flat.dim != flat0.size:
        raise _fail("flat view", f"dim {flat.dim} but the position has {flat0.size} coordinates")
    p_first = jax.tree.map(lambda x: x[0], points)
    x_first = flat.ravel(p_first)
    if not np.allclose(flat(x_first), logdensity(p_first), rtol=tol, atol=tol):
        raise _fail("flat view", f"flat {flat(x_first)} vs pytree {logdensity(p_first)}")
    back = flat.unravel(x_first)
    for name, a, b in zip(
        leaf_names(p0), jax.tree.leaves(back), jax.tree.leaves(p_first), strict=True
    ):
        if not np.array_equal(a, b):
            raise _fail("flat view", f"unravel(ravel(p)) differs at leaf {name!r}")

    try:
        round_trip = jax.vmap(lambda p: logdensity.unconstrain(logdensity.constrain(p)))(points)
    except NotImplementedError:
        round_trip = None
    if round_trip is not None:
        rt_tol = 1e-6 if x64 else 1e-3
        for name, a, b in zip(
            leaf_names(p0),
            jax.tree.leaves(round_trip),
            jax.tree.leaves(points),
            strict=True,
        ):
            if np.shape(a) != np.shape(b) or not np.allclose(a, b, rtol=rt_tol, atol=rt_tol):
                raise _fail(
                    "unconstrain(constrain(p)) == p",
                    f"leaf {name!r}: max error {np.max(np.abs(np.asarray(a) - np.asarray(b)))}",
                )

    if check_grad:
        _check_grad(logdensity, points, rng_key, x64)


def _check_grad(logdensity: LogDensity, points: PyTree, rng_key: PRNGKeyArray, x64: bool) -> None:
    flat = logdensity.flat
    xs = jax.vmap(flat.ravel)(points)
    grads = jax.vmap(jax.grad(flat))(xs)
    dirs = jax.random.normal(jax.random.fold_in(rng_key, 1), xs.shape, xs.dtype)
    dirs = dirs / jnp.linalg.norm(dirs, axis=1, keepdims=True)
    h = 1e-6 if x64 else 1e-2
    fd = (jax.vmap(flat)(xs + h * dirs) - jax.vmap(flat)(xs - h * dirs)) / (2 * h)
    ad = jnp.sum(grads * dirs, axis=1)
    rtol, atol = (1e-5, 1e-6) if x64 else (2e-2, 2e-2)
    if not np.allclose(ad, fd, rtol=rtol, atol=atol * (1 + np.abs(np.asarray(fd)))):
        worst = int(np.argmax(np.abs(np.asarray(ad - fd))))
        raise _fail(
            "grad vs finite differences",
            f"at point {worst}: directional derivative {ad[worst]} (grad) vs {fd[worst]} "
            f"(central differences, h={h})",
        )
    if not np.all(np.isfinite(np.asarray(grads))):
        bad = [
            n
            for n, g in zip(
                leaf_names(logdensity.initial_position),
                jax.tree.leaves(jax.vmap(flat.unravel)(grads)),
                strict=True,
            )
            if not np.all(np.isfinite(g))
        ]
        raise _fail("finite gradient", f"non-finite gradient in leaves {bad}")


def agreement(
    a: LogDensity,
    b: LogDensity,
    rng_key: PRNGKeyArray | None = None,
    *,
    num_points: int = 20,
    radius: float = 1.5,
    points: PyTree | None = None,
) -> dict[str, Any]:
    """How far two versions of one model agree, whatever raw space each backend picked.

    At `num_points` points `x` of `a`'s unconstrained space (`a`'s initial position plus
    uniform(-radius, radius) per coordinate; or the given `points`, a batch of `a`'s
    positions on a leading axis, e.g. drawn by [`positions`][logdensity.testing.positions]),
    `T(x) = b.unconstrain(a.constrain(x))`
    maps `x` to `b`'s space through the named model-space values. If the two models
    are the same, `log p_a(x) = log p_b(T(x)) + log|det T'(x)| + const` (change of
    variables; the Jacobian term is 0 where both backends use the same bijectors).

    **Returns:** `{"offset_spread": max - min of log p_a(x) - log p_b(T(x)) - log|det T'(x)|,
    "offset": its median, "max_grad_diff": max |∇_x log p_a - ∇_x (log p_b∘T + log|det T'|)|,
    "max_lp": max |log p_a(x)|, "worst_point": index of the point furthest from the
    median offset, "worst_variable": the leaf of `a`'s position with the largest gradient
    difference, "points": the points (a pytree batched on axis 0)}`.

    **Raises:** `KeyError` if `b.unconstrain` needs a value `a.constrain` does not give
    (the two models do not name their variables alike).
    """
    rng_key = jax.random.key(0) if rng_key is None else rng_key
    flat_a, flat_b = a.flat, b.flat
    if points is None:
        points = random_positions(a, rng_key, num_points, radius)
    xs = jax.vmap(flat_a.ravel)(points)

    def to_b(x: jax.Array) -> jax.Array:
        return flat_b.unconstrain(flat_a.constrain(x))

    def lp_b(x: jax.Array) -> jax.Array:
        return flat_b(to_b(x)) + jnp.linalg.slogdet(jax.jacfwd(to_b)(x))[1]

    lp_a_val, grad_a = jax.vmap(jax.value_and_grad(flat_a))(xs)
    lp_b_val, grad_b = jax.vmap(jax.value_and_grad(lp_b))(xs)
    diff = np.asarray(lp_a_val - lp_b_val)
    grad_diff = np.abs(np.asarray(grad_a) - np.asarray(grad_b))
    offset = float(np.median(diff))
    per_leaf = jax.tree.leaves(jax.vmap(flat_a.unravel)(jnp.asarray(grad_diff)))
    names = leaf_names(a.initial_position)
    worst_leaf = int(np.argmax([np.max(g, initial=0.0) for g in per_leaf]))
    return {
        "offset_spread": float(diff.max() - diff.min()),
        "offset": offset,
        "max_grad_diff": float(grad_diff.max()),
        "max_lp": float(np.max(np.abs(np.asarray(lp_a_val)))),
        "worst_point": int(np.argmax(np.abs(diff - offset))),
        "worst_variable": names[worst_leaf],
        "points": points,
    }


def assert_equivalent(
    a: LogDensity,
    b: LogDensity,
    rng_key: PRNGKeyArray | None = None,
    *,
    num_points: int = 20,
    radius: float = 1.5,
    rtol: float | None = None,
    points: PyTree | None = None,
) -> None:
    """Assert that `a` and `b` are the same model: equal log densities up to one
    constant, and equal gradients, at points of `a`'s space mapped to `b`'s through the
    named values (see [`agreement`][logdensity.testing.agreement]; the log-Jacobian
    between the two raw spaces is accounted for). The points are random near `a`'s
    initial position, or the given `points` (batched on axis 0, e.g. hypothesis-drawn
    with [`positions`][logdensity.testing.positions]).

    Tolerance: `rtol · max(1, max |log p|)` on the spread of the offsets and on the
    gradient differences; default `rtol` 1e-8 in float64 and 1e-3 in float32.

    **Raises:** `AssertionError` naming the worst point (its model-space values) and the
    variable whose gradient differs most.
    """
    result = agreement(a, b, rng_key, num_points=num_points, radius=radius, points=points)
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
