"""Testing tools for `LogDensity` implementations (our adapters and plugins), by purpose:

- conformance: [`check_logdensity`][logdensity.testing.check_logdensity], the promises
  of the protocol (finite scalar, dtype kept, eager == `jit`, `vmap`, gradients against
  finite differences, flat view == pytree, `constrain`/`unconstrain` round trip, one
  trace per shape). Build the model under `jax.enable_x64(True)` for the gradient check
  to be tight; in float32 it uses looser tolerances.
- agreement: [`agreement`][logdensity.testing.agreement] and
  [`assert_equivalent`][logdensity.testing.assert_equivalent], the same model in two
  backends.
- strategies: [`random_positions`][logdensity.testing.random_positions] and the
  hypothesis strategy [`positions`][logdensity.testing.positions].
- calibration: [`sbc`][logdensity.testing.sbc], simulation-based calibration of a model
  and the sampling loop together.

Every check looks within `RADIUS` (1.5) of the initial position by default.
"""

from ._agreement import (
    agreement as agreement,
    assert_equivalent as assert_equivalent,
    match_names as match_names,
)
from ._conformance import check_logdensity as check_logdensity
from ._sbc import SBCResult as SBCResult, sbc as sbc
from ._strategies import (
    RADIUS as RADIUS,
    positions as positions,
    random_positions as random_positions,
)

__all__ = [
    "RADIUS",
    "SBCResult",
    "agreement",
    "assert_equivalent",
    "check_logdensity",
    "match_names",
    "positions",
    "random_positions",
    "sbc",
]
