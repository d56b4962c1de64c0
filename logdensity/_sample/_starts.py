"""The chains' starts: given positions validated, jittered ones redrawn while the log
density or its gradient is not finite, and a report naming the chain and the leaves."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._protocol import LogDensity
from .._tree import leaf_names
from ._programs import chain_keys, jittered, start
from ._settings import Settings
from ._state import SamplerState
from ._warnings import SamplingWarning

__all__ = ["start_chains"]


def _validate_user_positions(model: LogDensity, positions: PyTree, num_chains: int) -> PyTree:
    reference = model.initial_position
    ref_def: Any = jax.tree.structure(reference)
    got_def = jax.tree.structure(positions)
    if ref_def != got_def:
        raise ValueError(
            f"initial_positions must have the structure of the model's initial_position "
            f"with a leading chain axis: expected {ref_def}, got {got_def}."
        )
    out = []
    for name, ref, got in zip(
        leaf_names(reference), jax.tree.leaves(reference), jax.tree.leaves(positions), strict=True
    ):
        got = jnp.asarray(got, dtype=jnp.result_type(ref))
        expected = (num_chains, *jnp.shape(ref))
        if got.shape != expected:
            raise ValueError(
                f"initial_positions leaf {name!r} has shape {got.shape}; expected "
                f"{expected} (num_chains={num_chains} then the leaf's shape {jnp.shape(ref)})."
            )
        out.append(got)
    return jax.tree.unflatten(ref_def, out)


def _non_finite_report(
    model: LogDensity,
    lp: np.ndarray,
    grad_ok: list[np.ndarray],
    bad: np.ndarray,
    positions: PyTree,
) -> str:
    names = leaf_names(model.initial_position)
    pos_leaves = jax.device_get(jax.tree.leaves(positions))
    lines = []
    for c in np.flatnonzero(bad):
        grad_bad = [n for n, ok in zip(names, grad_ok, strict=True) if not ok[c]]
        pos_bad = [
            n for n, x in zip(names, pos_leaves, strict=True) if not np.all(np.isfinite(x[c]))
        ]
        parts = [f"log density = {lp[c]}"]
        if pos_bad:
            parts.append(f"non-finite position in {pos_bad}")
        if grad_bad:
            parts.append(f"non-finite gradient in {grad_bad}")
        lines.append(f"  chain {c}: " + "; ".join(parts))
    return "\n".join(lines)


@partial(jax.jit, static_argnames="init")
def _moved(model: LogDensity, init: str, keys: PRNGKeyArray, jitter: float) -> tuple[PyTree, Array]:
    from .._optimize import map_starts, pathfinder_starts

    # the jittered starts of the first try (`start` draws the same ones)
    positions = jax.vmap(lambda k: jittered(model, jax.random.fold_in(k, 0), jitter))(keys)
    if init == "map":
        return map_starts(model, positions)
    return pathfinder_starts(model, jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys), positions)


def _moved_starts(
    model: LogDensity, init: str, keys: PRNGKeyArray, jitter: float
) -> tuple[PyTree, np.ndarray]:
    """The chains' starts moved by `init` ("map" or "pathfinder") from their jittered
    ones, in one compiled program, and which chains must start jittered instead."""
    positions, finite = _moved(model, init, keys, jnp.asarray(jitter))
    redraw = ~np.asarray(finite)
    if redraw.any():
        warnings.warn(
            f"init={init!r} ended at a non-finite log density for chains "
            f"{np.flatnonzero(redraw).tolist()}; they start from their jittered starts.",
            SamplingWarning,
            stacklevel=6,
        )
    return positions, redraw


def start_chains(
    model: LogDensity,
    settings: Settings,
    rng_key: PRNGKeyArray,
    given: PyTree | None,
    then: Callable[[SamplerState], None] | None = None,
) -> SamplerState:
    """The state of every chain at a validated start, never non-finite.

    The chains' keys are `chain_keys(rng_key, num_chains)`. `then(types)`, if given, is
    called with the types of the state (`jax.ShapeDtypeStruct` leaves) once the start
    program is traced and its compilation submitted, and before it runs: the caller
    compiles the next program meanwhile.

    **Raises:** `ValueError` for given positions of the wrong structure or shape, or
    non-finite there; or when no finite jittered start is found in `max_init_tries`.
    """
    num_chains, jitter, tries = settings.num_chains, settings.init_jitter, settings.max_init_tries
    if given is not None:
        positions = _validate_user_positions(model, given, num_chains)
        redraw = np.zeros(num_chains, bool)
    elif settings.init != "jitter":
        keys = chain_keys(rng_key, num_chains)[0]
        positions, redraw = _moved_starts(model, settings.init, keys, jitter)
    else:  # stacked on the host: no small program compiled for it
        positions = jax.tree.map(
            lambda x: np.broadcast_to(np.asarray(x), (num_chains, *np.shape(x))),
            model.initial_position,
        )
        redraw = np.ones(num_chains, bool)
    types = start.precompile(model, settings.config, rng_key, positions, redraw, 0, jitter)
    if then is not None:
        then(types[-1])
    for attempt in range(tries if given is None else 1):
        positions, lp, grad_ok, state = start(
            model, settings.config, rng_key, positions, redraw, attempt, jitter
        )
        lp, grad_ok = jax.device_get((lp, grad_ok))
        redraw = ~(np.isfinite(lp) & np.all(grad_ok, axis=0))
        if not redraw.any():
            return state
        if given is not None:
            raise ValueError(
                "The given initial_positions have a non-finite log density or gradient "
                "(BlackJAX would warm up from there and freeze):\n"
                + _non_finite_report(model, lp, grad_ok, redraw, positions)
            )
    raise ValueError(
        f"No finite starting point found in {tries} tries of initial_position + "
        f"uniform(-{jitter}, {jitter}) for {int(redraw.sum())} of {num_chains} chains "
        "(BlackJAX would warm up from there and freeze). At the last try:\n"
        + _non_finite_report(model, lp, grad_ok, redraw, positions)
        + "\nCheck the model at its initial position, give initial_positions, or lower "
        "init_jitter."
    )
