"""The conformance kit: `check_logdensity`, the promises of the `LogDensity` protocol
that every adapter (ours and plugins) must keep."""

from __future__ import annotations

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

__all__ = ["check_logdensity"]


def _fail(check: str, detail: str) -> AssertionError:
    return AssertionError(f"check_logdensity: {check} failed: {detail}")


def check_logdensity(
    logdensity: LogDensity,
    rng_key: PRNGKeyArray | None = None,
    *,
    num_points: int = 8,
    radius: float = RADIUS,
    check_grad: bool = True,
    normalized: bool = False,
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
    4. when `check_grad`: the gradient is finite, and `jax.grad` matches central
       finite differences along random directions (`rtol` 1e-5 in float64, 2e-2 in
       float32);
    5. the flat view (the model's own `flat`, or
       [`FlatView`][logdensity.FlatView]) equals the pytree density,
       `flat.unravel(flat.ravel(p)) == p`, and `flat.dim` is the number of
       unconstrained coordinates;
    6. `unconstrain(constrain(p))` gives back `p` (where `unconstrain` is implemented)
       and `constrain` returns every name in `variables`;
    7. one trace per shape and per structure: a second position of the same shape does
       not retrace a `jit`-compiled call, and, when the model is a pytree (as `sample`
       passes it to its compiled programs), neither does the model rebuilt from its
       own leaves (an equal model, e.g. one with new data of the same shape);
    8. with `normalized=True`, for a model of at most 2 unconstrained coordinates whose
       log density is a normalised one (a prior, or a distribution, with every
       constant): the density on the unconstrained space integrates to 1 (within 1e-3
       in float64, 1e-2 in float32), by the trapezoid rule after `x = x0 + sinh(s)` per
       coordinate (x0 the initial position; 4,001 nodes in 1-D, 801² in 2-D). A
       missing or wrong log-Jacobian breaks it; no other check can see one.

    **Raises:** `AssertionError` naming the failed check and the culprit (leaf, variable,
    expected vs got); `ValueError` for `normalized=True` on more than 2 coordinates.
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

    if normalized and flat0.size > 2:
        raise ValueError(
            f"normalized=True integrates by quadrature over at most 2 coordinates; "
            f"this model has {flat0.size}."
        )
    points = random_positions(logdensity, rng_key, num_points, radius)
    eager = np.array(
        [logdensity(jax.tree.map(lambda x, i=i: x[i], points)) for i in range(num_points)]
    )
    compiled = _check_one_trace(logdensity, points, num_points)
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

    flat = getattr(logdensity, "flat", None) or FlatView(logdensity)
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
    if normalized:
        _check_normalized(logdensity, x64)


def _check_one_trace(logdensity: LogDensity, points: PyTree, num_points: int) -> np.ndarray:
    """The log density at each point through one `jit`-compiled call (the model as an
    argument where it is a pytree), failing if a point or the rebuilt model retraces."""
    traces: list[None] = []
    leaves, treedef = jax.tree.flatten(logdensity)
    is_pytree = not (len(leaves) == 1 and leaves[0] is logdensity)

    def traced(model: Any, p: PyTree) -> Any:
        traces.append(None)
        return (model if is_pytree else logdensity)(p)

    jitted = jax.jit(traced)
    model: Any = logdensity if is_pytree else None
    compiled = np.array(
        [jitted(model, jax.tree.map(lambda x, i=i: x[i], points)) for i in range(num_points)]
    )
    if len(traces) != 1:
        raise _fail(
            "one trace per shape",
            f"jit traced {len(traces)} times for {num_points} positions of one shape",
        )
    if is_pytree:
        jitted(jax.tree.unflatten(treedef, leaves), jax.tree.map(lambda x: x[0], points))
        if len(traces) != 1:
            raise _fail(
                "one trace per structure",
                "the model rebuilt from its own pytree leaves retraced: its static "
                "(auxiliary) data does not compare equal across flattenings",
            )
    return compiled


def _check_normalized(logdensity: LogDensity, x64: bool) -> None:
    flat = FlatView(logdensity)
    x0 = flat.initial_position
    nodes = 4001 if x0.size == 1 else 801
    s = jnp.linspace(-8.0, 8.0, nodes, dtype=x0.dtype)  # sinh(8) ≈ 1490
    grids = jnp.meshgrid(*[s] * x0.size, indexing="ij")
    ss = jnp.stack([g.reshape(-1) for g in grids], axis=1)
    xs = x0 + jnp.sinh(ss)
    log_jac = jnp.sum(jnp.log(jnp.cosh(ss)), axis=1)
    lp = jax.lax.map(flat, xs, batch_size=4096) + log_jac
    f = jnp.exp(jnp.where(jnp.isfinite(lp), lp, -jnp.inf)).reshape([nodes] * x0.size)
    total = f
    for axis in reversed(range(x0.size)):
        total = jnp.trapezoid(total, s, axis=axis)
    tol = 1e-3 if x64 else 1e-2
    if not abs(float(total) - 1.0) < tol:
        raise _fail(
            "normalised on the unconstrained space",
            f"the density integrates to {float(total):.6g}, not 1 (tolerance {tol}): a "
            "log-Jacobian of the constraining transform is missing or wrong, or a constant "
            "of the log density is",
        )


def _check_grad(logdensity: LogDensity, points: PyTree, rng_key: PRNGKeyArray, x64: bool) -> None:
    flat = FlatView(logdensity)
    xs = jax.vmap(flat.ravel)(points)
    grads = jax.vmap(jax.grad(flat))(xs)
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
