"""The adapter registry: built-in adapters by name, plugins through entry points.

An adapter is described by an [`Adapter`][logdensity.adapters.Adapter]: a name, the
types of model objects it takes (as `"module:QualName"` strings) and its build function
(a callable, or a `"module:function"` string imported on first use). Dispatch by type
never imports a backend: a type is only looked up when its top-level package is already
in `sys.modules` (an object of that type cannot exist otherwise).

Third-party adapters register under the entry-point group `logdensity.adapters`; each
entry point names an `Adapter` instance, in a module that imports nothing heavy:

```toml
[project.entry-points."logdensity.adapters"]
mybackend = "logdensity_mybackend:adapter"
```
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from .._protocol import LogDensity

__all__ = ["ENTRY_POINT_GROUP", "Adapter", "adapt", "available", "register"]

ENTRY_POINT_GROUP = "logdensity.adapters"


def _load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Adapter:
    """One way of writing a model, and how to turn it into a `LogDensity`.

    **Fields:**

    - `name`: the registry key (`logdensity.adapt(obj, backend=name)`).
    - `build`: `build(obj, *args, **kwargs) -> LogDensity`, or a `"module:function"`
      string imported only when the adapter is used (keep backends out of the module
      the entry point names).
    - `types`: the model types this adapter takes, as `"module:QualName"` strings (e.g.
      `"equinox:Module"`); `adapt(obj)` picks the adapter whose type `obj` is an instance
      of. Empty for adapters that take plain callables (they need `backend=`).
    - `description`: one line for [`available`][logdensity.adapters.available].
    """

    name: str
    build: Callable[..., LogDensity] | str
    types: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        """**Raises:** `TypeError` naming the adapter for a malformed field: a `types`
        that is not a tuple (or list) of `"module:QualName"` strings, a `build` that is
        neither callable nor a `"module:function"` string."""
        types = self.types
        if isinstance(types, str) or not isinstance(types, tuple | list):
            raise TypeError(
                f"adapter {self.name!r}: types must be a tuple of 'module:QualName' "
                f"strings; got {types!r}"
            )
        bad = [t for t in types if not isinstance(t, str) or t.count(":") != 1]
        if bad:
            raise TypeError(
                f"adapter {self.name!r}: each entry of types must be a 'module:QualName' "
                f"string; got {bad!r}"
            )
        object.__setattr__(self, "types", tuple(types))
        build = self.build
        if not callable(build) and not (isinstance(build, str) and build.count(":") == 1):
            raise TypeError(
                f"adapter {self.name!r}: build must be a callable or a 'module:function' "
                f"string; got {build!r}"
            )

    def accepts(self, obj: Any) -> bool:
        """Whether `obj` is an instance of one of `types`, importing nothing new."""
        for spec in self.types:
            module, _, qualname = spec.partition(":")
            if module.split(".")[0] not in sys.modules:
                continue
            try:
                cls = _load(f"{module}:{qualname}")
            except (ImportError, AttributeError):
                continue
            if isinstance(obj, cls):
                return True
        return False

    def __call__(self, obj: Any, *args: Any, **kwargs: Any) -> LogDensity:
        build = _load(self.build) if isinstance(self.build, str) else self.build
        return build(obj, *args, **kwargs)


_BUILTIN = (
    # order matters for dispatch: a PyMC model before PyTensor variables
    Adapter(
        "pymc",
        "logdensity.adapters._pymc:from_pymc",
        ("pymc:Model",),
        "a pymc.Model (continuous free variables)",
    ),
    Adapter(
        "pytensor",
        "logdensity.adapters._pytensor:from_pytensor",
        ("pytensor.graph.basic:Variable",),
        "a PyTensor scalar log-density variable and its input variables",
    ),
    Adapter(
        "equinox",
        "logdensity.adapters._equinox:from_equinox",
        ("equinox:Module",),
        "an Equinox module with parax variables, and a log-likelihood function",
    ),
    Adapter(
        "numpyro",
        "logdensity.adapters._numpyro:from_numpyro",
        (),
        "a NumPyro model function (pass backend='numpyro')",
    ),
    Adapter(
        "jax",
        "logdensity.adapters._jax:from_jax",
        (),
        "a plain JAX log-density function and an initial position (pass backend='jax')",
    ),
)

_registered: dict[str, Adapter] = {}
_plugins: dict[str, Adapter] | None = None
_failed: dict[str, str] = {}  # plugin name -> why it did not load


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _plugin_adapters() -> dict[str, Adapter]:
    """Load every plugin's `Adapter` once (the entry points' modules only)."""
    global _plugins
    if _plugins is None:
        builtin = {a.name for a in _BUILTIN}
        loaded: dict[str, Adapter] = {}
        _failed.clear()
        for name, ep in _entry_points().items():
            why = None
            if name in builtin:
                why = f"plugin adapter {name!r} ({ep.value}) shadows a built-in adapter; ignored"
            else:
                try:
                    adapter = ep.load()
                except Exception as e:
                    why = f"plugin adapter {name!r} ({ep.value}) failed to load: {e!r}"
                else:
                    if not isinstance(adapter, Adapter):
                        why = (
                            f"plugin adapter {name!r}: {ep.value} is a "
                            f"{type(adapter).__name__}, not a logdensity.adapters.Adapter; "
                            "ignored"
                        )
            if why is None:
                loaded[name] = adapter
            else:
                _failed[name] = why
                warnings.warn(why, stacklevel=3)
        _plugins = loaded
    return _plugins


def register(adapter: Adapter, *, replace: bool = False) -> None:
    """Add an adapter at run time (what an entry point does at install time).

    **Raises:** `ValueError` if `adapter.name` is taken (a built-in, a plugin, or one
    registered before) and not `replace`.
    """
    if adapter.name in {a.name for a in _BUILTIN}:
        raise ValueError(f"{adapter.name!r} is a built-in adapter and cannot be replaced")
    if adapter.name in set(_entry_points()) | set(_registered) and not replace:
        raise ValueError(f"an adapter named {adapter.name!r} exists; pass replace=True")
    _registered[adapter.name] = adapter


def available() -> dict[str, str]:
    """Every adapter that can be used, and where it comes from, without importing any
    backend.

    **Returns:** `{name: origin}` with origin `"logdensity"` for the built-in adapters,
    the entry point's value (`"package.module:adapter"`) for installed plugins, and
    `"register()"` for adapters added at run time. Plugins are loaded (their entry
    points' modules, which by contract import no backend) so that one that fails to load
    is left out, with a `UserWarning` saying why, instead of listed and then refused.
    """
    out = {a.name: "logdensity" for a in _BUILTIN}
    points = _entry_points()
    for name in _plugin_adapters():
        out.setdefault(name, points[name].value)
    for name in _registered:
        out.setdefault(name, "register()")
    return out


def _adapters() -> Iterator[Adapter]:
    """In dispatch order; the plugins are loaded only if no earlier adapter matched."""
    yield from _BUILTIN
    yield from tuple(_registered.values())
    yield from _plugin_adapters().values()


def adapt(obj: Any, *args: Any, backend: str | None = None, **kwargs: Any) -> LogDensity:
    """A `LogDensity` from any model object a registered adapter knows.

    `adapt(obj, *args, **kwargs)` calls the adapter's build function with the same
    arguments, e.g. `adapt(pymc_model)` is `from_pymc(pymc_model)`,
    `adapt(module, log_likelihood, x, y)` is `from_equinox(module, log_likelihood, x, y)`
    and `adapt(logp, [mu, log_tau])` is `from_pytensor(logp, [mu, log_tau])`.

    With `backend=None` the adapter is picked by the type of `obj`: built-in adapters
    first (PyMC model, PyTensor variable, Equinox module), then adapters added by
    [`register`][logdensity.adapters.register], then installed plugins. No backend that
    is not already imported gets imported to decide. Plain functions are ambiguous (a
    NumPyro model and a JAX log density are both callables): pass `backend="numpyro"` or
    `backend="jax"`.

    **Raises:** `KeyError` for an unknown `backend` (listing the available ones);
    `ImportError` for a plugin `backend` that failed to load (saying why);
    `TypeError` when no adapter takes an object of this type (naming the type, and for
    callables the `backend=` to pass).
    """
    if backend is not None:
        by_name = {a.name: a for a in _BUILTIN} | _registered
        if backend not in by_name:
            by_name = _plugin_adapters() | by_name
        if backend not in by_name and backend in _failed:
            raise ImportError(_failed[backend])
        if backend not in by_name:
            raise KeyError(f"no adapter named {backend!r}; available: {sorted(available())}")
        return by_name[backend](obj, *args, **kwargs)
    for adapter in _adapters():
        if adapter.accepts(obj):
            return adapter(obj, *args, **kwargs)
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    hint = (
        "; a function could be a NumPyro model or a JAX log density: pass "
        "backend='numpyro' or backend='jax'"
        if callable(obj)
        else ""
    )
    raise TypeError(f"no adapter takes a {kind}{hint}. Available adapters: {sorted(available())}")
