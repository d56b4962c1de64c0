"""Optimisation on the protocol: `find_map` (L-BFGS from optax) and the chains' starts
that `sample(init=...)` draws from a mode or from Pathfinder's approximation."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree, Scalar

from ._model import as_model
from ._protocol import LogDensity
from ._sample._compiled import jit
from ._tree import leaf_names

__all__ = ["MAP", "find_map", "log_jacobian"]


class MAP(NamedTuple):
    """A mode found by [`logdensity.find_map`][].

    **Attributes** (with `num_starts > 1`, the best start's):

    - `values`: `{name: Array}`, the mode in the model's own **constrained** space, every
      latent and deterministic under its name, each of its `variables` shape.
    - `position`: the same point on the **unconstrained** space (a position pytree).
    - `logdensity`: the maximised objective there, a scalar of the position's dtype: the
      log density of the constrained values (no Jacobian) with `jacobian=False`, or the
      model's own log density on the unconstrained space (Jacobians included) with
      `jacobian=True`. Unnormalised, as the model's.
    - `grad_norm`: the Euclidean norm of the objective's gradient on the unconstrained
      space at the mode.
    - `num_steps`: L-BFGS iterations taken (int32).
    - `converged`: whether the gradient or the objective's change reached its tolerance
      before `max_steps` (see `find_map`).
    """

    values: dict[str, Array]
    position: PyTree
    logdensity: Scalar
    grad_norm: Scalar
    num_steps: Int[Array, ""]
    converged: Bool[Array, ""]


def _leaf_slices(position: PyTree) -> list[slice]:
    sizes = [int(np.size(leaf)) for leaf in jax.tree.leaves(position)]
    ends = np.cumsum(sizes)
    return [slice(int(e - s), int(e)) for s, e in zip(sizes, ends, strict=True)]


def log_jacobian(model: LogDensity) -> Callable[[Float[Array, " dim"]], Scalar]:
    """`x -> log |det J(x)|` of the map from the flat unconstrained position `x` to the
    model's latent values (deterministics left out), for any `LogDensity`, by
    automatic differentiation.

    The model's log density minus this is the log density of the constrained latents,
    whose maximiser is the constrained mode. The Jacobian is built per position leaf:
    each leaf's rows are the latent entries that move with it (found with one random
    `jax.jvp` per leaf). A leaf whose Jacobian two random probes find diagonal (every
    elementwise transform: exp, sigmoid, affine, identity) costs one `jvp`; another
    costs `jax.jacfwd` over its entries, O(size²) memory. Where a leaf has more latent
    entries than coordinates (a simplex: K values from K - 1 coordinates) the volume
    `½ log det(JᵀJ)` is used; for an affine embedding (the simplex) it differs from the
    density's own reference measure by a constant, which moves no mode. If one latent
    entry moves with two leaves, the whole Jacobian is formed at once.

    **Raises:** `ValueError` if a leaf moves fewer latent entries than it has
    coordinates (the map is not injective there).
    """
    model = as_model(model, "log_jacobian")
    x0, unravel = ravel_pytree(model.initial_position)
    latents = [n for n, v in model.variables.items() if not v.deterministic]

    def latent_vector(x: Array) -> Array:
        values = model.constrain(unravel(x))
        return jnp.concatenate([jnp.ravel(values[n]).astype(x.dtype) for n in latents])

    slices = _leaf_slices(model.initial_position)
    key = jax.random.key(0)
    base = x0 + 0.1 * jax.random.normal(jax.random.fold_in(key, 1), x0.shape, x0.dtype)

    def tangent(i: int, k: int, ones: bool = False) -> Array:
        t = jnp.zeros_like(x0)
        s = slices[i]
        r = jax.random.normal(jax.random.fold_in(key, 10 * i + k), (s.stop - s.start,), x0.dtype)
        return t.at[s].set(jnp.ones_like(r) if ones else r)

    probe = jit(lambda x, t: jax.jvp(latent_vector, (x,), (t,))[1])
    blocks: list[tuple[slice, np.ndarray, bool]] = []
    seen = np.zeros(0, bool)
    for i, s in enumerate(slices):
        moved = np.asarray(probe(base, tangent(i, 0)))
        rows = np.flatnonzero(moved != 0)
        if seen.size == 0:
            seen = np.zeros(moved.size, bool)
        n = s.stop - s.start
        if rows.size < n:
            raise ValueError(
                f"position leaf {leaf_names(model.initial_position)[i]!r} ({n} "
                f"coordinates) moves {rows.size} latent entries: "
                "the map to the constrained values is not injective there, so it has no "
                "log-Jacobian; use jacobian=True."
            )
        if np.any(seen[rows]):
            blocks = []  # entries shared between leaves: one full Jacobian
            break
        seen[rows] = True
        diagonal = False
        if rows.size == n:
            ones = np.asarray(probe(base, tangent(i, 0, ones=True)))[rows]
            for k in (0, 1):
                t = tangent(i, k)
                got = np.asarray(probe(base, t))[rows]
                diagonal = bool(np.allclose(got, ones * np.asarray(t[s]), rtol=1e-5, atol=0))
                if not diagonal:
                    break
        blocks.append((s, rows, diagonal))

    def logdet(jac: Array) -> Scalar:
        if jac.shape[0] == jac.shape[1]:
            return jnp.linalg.slogdet(jac)[1]
        return 0.5 * jnp.linalg.slogdet(jac.T @ jac)[1]

    if not blocks:
        return lambda x: logdet(jax.jacfwd(latent_vector)(x))

    def block_logdet(x: Array, s: slice, rows: np.ndarray, diagonal: bool) -> Scalar:
        def part(u: Array) -> Array:
            return latent_vector(x.at[s].set(u))[rows]

        if diagonal:
            d = jax.jvp(part, (x[s],), (jnp.ones_like(x[s]),))[1]
            return jnp.sum(jnp.log(jnp.abs(d)))
        return logdet(jax.jacfwd(part)(x[s]))

    def total(x: Array) -> Scalar:
        return sum(
            (block_logdet(x, s, rows, diagonal) for s, rows, diagonal in blocks),
            start=jnp.zeros((), x.dtype),
        )

    return total


def _lbfgs(
    objective: Callable[[Array], Scalar], x0: Array, max_steps: int, tol: float, ftol: float
) -> tuple[Array, Scalar, Scalar, Array, Array]:
    """Maximise `objective` from `x0` with optax's L-BFGS and its zoom line search
    (`optax.lbfgs`, the loop of optax's documentation). It stops when the gradient's norm
    is below `tol * (1 + |f|)`; when a step changes `f` by at most `ftol * max(|f|, 1)`
    (the test of scipy's L-BFGS-B: an ill-conditioned mode's gradient stalls at its
    rounding floor while `f` no longer moves) and the gradient's norm is below
    `sqrt(tol) * (1 + |f|)`; when `f` stops being finite; or after `max_steps`. The
    first two count as converged. The best finite iterate
    is returned (non-finite only if the start was)."""
    import optax
    import optax.tree_utils as otu

    def loss(x: Array) -> Scalar:
        return -objective(x)

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def small(value: Scalar, grad: Array, tolerance: float = tol) -> Array:
        return otu.tree_norm(grad) < tolerance * (1 + jnp.abs(value))

    def stops(value: Scalar, grad: Array, stalled: Array) -> Array:
        # a stalled objective counts only with a gradient near its floor: far from a
        # mode (a start where the log density is -1e62) a step's relative change can be
        # tiny while the gradient is not
        return small(value, grad) | (stalled & small(value, grad, float(np.sqrt(tol))))

    Carry = tuple[Array, Any, Array, Array, Scalar, Scalar, Array]

    def step(carry: Carry) -> Carry:
        x, state, count, best, best_value, previous, _ = carry
        value, grad = value_and_grad(x, state=state)
        # the best finite iterate is kept: a density unbounded above (a scale going to 0)
        # runs to +inf, and the point before is the answer to report
        better = jnp.isfinite(value) & (value <= best_value)
        best, best_value = jnp.where(better, x, best), jnp.where(better, value, best_value)
        scale = jnp.maximum(jnp.maximum(jnp.abs(value), jnp.abs(previous)), 1.0)
        stalled = jnp.isfinite(previous) & (jnp.abs(previous - value) <= ftol * scale)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=loss)
        x = optax.apply_updates(x, updates)
        return x, state, count + 1, best, best_value, value, stalled

    def keep_going(carry: Carry) -> Array:
        _, state, count, _, _, _, stalled = carry
        value = otu.tree_get(state, "value")
        grad = otu.tree_get(state, "grad")
        stop = stops(value, grad, stalled) | ~jnp.isfinite(value)
        return (count == 0) | ((count < max_steps) & ~stop)

    inf = jnp.asarray(jnp.inf, x0.dtype)
    init = (x0, opt.init(x0), jnp.zeros((), jnp.int32), x0, inf, inf, jnp.zeros((), bool))
    x, _, count, best, best_value, _, stalled = jax.lax.while_loop(keep_going, step, init)
    value, grad = jax.value_and_grad(loss)(x)
    x, value, grad = jax.lax.cond(
        jnp.isfinite(value) & (value <= best_value),
        lambda: (x, value, grad),
        lambda: (best, *jax.value_and_grad(loss)(best)),
    )
    converged = stops(value, grad, stalled) & jnp.isfinite(value)
    return x, -value, otu.tree_norm(grad), count, converged


def _objective(model: LogDensity, jacobian: bool) -> Callable[[Array], Scalar]:
    _, unravel = ravel_pytree(model.initial_position)

    def logdensity(x: Array) -> Scalar:
        return model(unravel(x))

    if jacobian:
        return logdensity
    jac = log_jacobian(model)
    return lambda x: logdensity(x) - jac(x)


def _default_tol(dtype: Any) -> float:
    return float(np.sqrt(np.finfo(dtype).eps))


def _default_ftol(dtype: Any) -> float:
    return float(1e3 * np.finfo(dtype).eps)


def find_map(
    logdensity: LogDensity,
    rng_key: PRNGKeyArray | None = None,
    *,
    jacobian: bool = False,
    initial_position: PyTree | None = None,
    num_starts: int = 1,
    init_jitter: float = 2.0,
    max_steps: int = 1000,
    tol: float | None = None,
) -> MAP:
    """The mode of a model, by L-BFGS on its unconstrained space.

    Two modes, which differ wherever a transform is not affine:

    - `jacobian=False` (default): the mode of the density of the **constrained** values,
      the usual maximum a posteriori (Stan's `optimize`, NumPyro's SVI with `AutoDelta`).
      The objective is the model's log density minus the log-Jacobian of its transforms
      ([`logdensity.log_jacobian`][]), maximised over the unconstrained position.
    - `jacobian=True`: the mode of the density that `sample` explores, the model's own
      log density on the unconstrained space **with** the Jacobians (Stan's
      `optimize(jacobian=true)`; the centre of a Laplace approximation there).

    A hierarchical model's constrained mode may not exist (the density grows without
    bound as a scale goes to 0); `converged` is then `False`.

    The optimiser is optax's L-BFGS (`optax.lbfgs`, with its zoom line search satisfying
    the strong Wolfe conditions; Nocedal & Wright 2006, Alg. 7.5), run in one compiled
    `lax.while_loop` until the gradient's norm is below `tol * (1 + |objective|)`, or a
    step changes the objective by at most `1000 eps` relatively (`eps` the dtype's
    machine epsilon; scipy's L-BFGS-B test, for modes whose gradient stalls at its
    rounding floor) with the gradient's norm below `sqrt(tol) * (1 + |objective|)`.

    **Arguments:**

    - `logdensity`: any `LogDensity`.
    - `rng_key`: with it, the starts are `initial_position + uniform(-init_jitter,
      init_jitter)` (as `sample`'s); without it, one start at the initial position.
    - `initial_position`: an unconstrained position to start from instead of the
      model's (jittered if `rng_key` is given).
    - `num_starts`: starts optimised at once (vmapped); the best finite one is returned.
      Needs `rng_key` when above 1.
    - `max_steps`: the most L-BFGS iterations per start.
    - `tol`: the relative gradient tolerance; default the square root of the dtype's
      machine epsilon (1.5e-8 in float64, 3.5e-4 in float32).

    **Returns:** a [`MAP`][logdensity.MAP]. A start that did not converge is returned
    with `converged=False` and a `RuntimeWarning` giving its gradient norm.

    **Raises:** `ValueError` if `num_starts > 1` without `rng_key`, if `num_starts` or
    `max_steps` is not a positive integer, or if every start's objective is non-finite
    (naming the start's log density); `TypeError` if `logdensity` does not satisfy the
    protocol.
    """
    model = as_model(logdensity, "find_map")
    if int(num_starts) != num_starts or num_starts < 1:
        raise ValueError(f"num_starts must be a positive integer; got {num_starts!r}.")
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer; got {max_steps!r}.")
    if num_starts > 1 and rng_key is None:
        raise ValueError("num_starts > 1 needs rng_key to jitter the starts.")
    start = model.initial_position if initial_position is None else initial_position
    x0, unravel = ravel_pytree(start)
    ref, _ = ravel_pytree(model.initial_position)
    if x0.shape != ref.shape:
        raise ValueError(
            f"initial_position ravels to {x0.shape[0]} coordinates; the model has {ref.shape[0]}."
        )
    x0 = x0.astype(ref.dtype)
    if rng_key is None:
        starts = x0[None]
    else:
        starts = x0 + jax.random.uniform(
            rng_key, (int(num_starts), x0.size), x0.dtype, -init_jitter, init_jitter
        )
    tol = _default_tol(x0.dtype) if tol is None else float(tol)
    ftol = _default_ftol(x0.dtype)
    objective = _objective(model, jacobian)
    run = jit(jax.vmap(lambda x: _lbfgs(objective, x, int(max_steps), tol, ftol)))
    xs, values, norms, counts, converged = run(starts)
    finite = np.isfinite(np.asarray(values))
    if not finite.any():
        raise ValueError(
            f"the objective is not finite at any of the {starts.shape[0]} starts' ends "
            f"(log density at the first start: {float(objective(starts[0]))}); check the "
            "model at its initial position or give initial_position."
        )
    best = int(np.argmax(np.where(finite, np.asarray(values), -np.inf)))
    position = unravel(xs[best])
    result = MAP(
        values=model.constrain(position),
        position=position,
        logdensity=values[best],
        grad_norm=norms[best],
        num_steps=counts[best],
        converged=converged[best],
    )
    if not bool(result.converged):
        warnings.warn(
            f"find_map stopped after {int(result.num_steps)} L-BFGS steps with gradient "
            f"norm {float(result.grad_norm):.3g} (tolerance {tol:.3g} x (1 + |f|)); "
            "the mode may not exist (a scale going to 0) or need more max_steps.",
            RuntimeWarning,
            stacklevel=2,
        )
    return result


def map_starts(model: LogDensity, positions: PyTree, max_steps: int = 1000) -> tuple[PyTree, Array]:
    """Each chain's start moved to the mode of the unconstrained density (Jacobians
    included: the density `sample` explores) by L-BFGS from its jittered start;
    `(positions, finite)` with `finite` `(chain,)` bool."""
    _, unravel = ravel_pytree(model.initial_position)
    flat = jax.vmap(lambda p: ravel_pytree(p)[0])(positions)
    objective = _objective(model, jacobian=True)
    tol = _default_tol(flat.dtype)
    ftol = _default_ftol(flat.dtype)
    xs, values, *_ = jax.vmap(lambda x: _lbfgs(objective, x, max_steps, tol, ftol))(flat)
    return jax.vmap(unravel)(xs), jnp.isfinite(values)


def pathfinder_starts(
    model: LogDensity, keys: PRNGKeyArray, positions: PyTree
) -> tuple[PyTree, Array]:
    """Each chain's start drawn from its own single-path Pathfinder approximation
    (Zhang et al. 2022; `blackjax.vi.pathfinder.approximate` from its jittered start,
    then one draw of `blackjax.vi.pathfinder.sample`); `(positions, finite)`."""
    from blackjax.vi import pathfinder

    def one(key: PRNGKeyArray, position: PyTree) -> tuple[PyTree, Array]:
        k1, k2 = jax.random.split(key)
        state, _ = pathfinder.approximate(k1, model, position, num_samples=50)
        draw, _ = pathfinder.sample(k2, state)
        return draw, jnp.isfinite(model(draw)) & jnp.isfinite(state.elbo)

    return jax.vmap(one)(keys, positions)
