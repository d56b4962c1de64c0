"""The explicit sampler state: everything that continues a run."""

from __future__ import annotations

from typing import Any, NamedTuple

from jaxtyping import Array, PRNGKeyArray

__all__ = ["SamplerState"]


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
    rng_key: PRNGKeyArray
    step: Array
