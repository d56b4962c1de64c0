"""`jax.jit` with ahead-of-time compilation in worker threads and XLA's cheaper CPU
options: every program the loop compiles."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jax

__all__ = ["Compiled", "jit", "release"]


# XLA's CPU options for the loop's programs. The first two cut compilation (the time
# to first draw) and, measured on the benchmark models, nothing off the sampling speed:
# - without LLVM's expensive passes: 10-20% off the loop's compilation;
# - with XLA's classic elemental emitters instead of its MLIR fusion emitters (the
#   default since jaxlib 0.5): a fresh process's first `sample` call 25% shorter on
#   eight schools, 18% on rat tumors, the same draws bit for bit
#   (`python -m benchmarks firstdraw`).
# The third makes sampling faster: reductions stay with XLA's own emitters instead of
# YNNPACK's fusions (jaxlib 0.10's default). A value and gradient of the 10,003-parameter
# hierarchical model in a loop, one chain: 343 -> 197 us (plain JAX), 398 -> 140 us
# (PyTensor), 346 -> 197 us (NumPyro); the logistic regression 1.08x faster, the GP
# 1.07x, four chains vectorized 1.1-1.65x; rat tumors and eight schools unchanged, their
# draws bit for bit. Compilation takes up to 0.1 s longer on the large models.
_CPU_COMPILER_OPTIONS = {
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
    "xla_cpu_experimental_ynn_fusion_type": "",
}
# For the programs that run once and compute little (the threaded chains' split and
# join, pure copies; the end of warmup, a few `exp`s per chain), where only their
# compilation counts: XLA's backend optimisation off cuts it (the end of warmup's from
# 1.5 s to 0.03 s beside the chunk's), with the same draws bit for bit (checked on eight
# schools and rat tumors, every chain method and metric). The start compiles in half
# the time this way too, rat tumors' 1.9 -> 0.86 s alone, but its rounding then
# differs, and so do every later draw: not taken (see docs/benchmarks.md).
_CPU_ONCE_OPTIONS = {**_CPU_COMPILER_OPTIONS, "xla_backend_optimization_level": 0}


def jit(f: Callable, **kwargs: Any) -> Any:
    """`jax.jit(f, **kwargs)`, with the loop's `_CPU_COMPILER_OPTIONS` where JAX's
    default backend is the CPU: for the programs outside the loop (MAP and Pathfinder's
    optimisations, predictions), which gain the same."""
    options = _CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
    return jax.jit(f, compiler_options=options, **kwargs)


class Compiled:
    """`jax.jit(f)` with the arguments at `static_argnums` static (by default the
    second, the loop's `config`); on CPU with `_CPU_COMPILER_OPTIONS`, which make
    compilation cheaper, or with `once`, `_CPU_ONCE_OPTIONS`, cheaper still for a
    program whose run time does not count.

    `precompile(*args)` compiles ahead of time (`jit(f).lower(...).compile()`, JAX's AOT
    API) for arguments given as `jax.ShapeDtypeStruct`s: traced and lowered in the
    caller's thread, compiled by XLA in a worker thread (it releases the GIL), so a
    program compiles while the caller traces, compiles and runs another. A later call
    whose arguments have those types (structure, shapes, dtypes, weak types) runs the
    AOT executable; any other goes through `jit`. `_cache_size()` counts the programs
    compiled so far either way (tests read it: one per model structure and settings)."""

    def __init__(self, f: Callable, static_argnums: tuple[int, ...] = (1,), *, once: bool = False):
        self.static = static_argnums
        options = _CPU_ONCE_OPTIONS if once else _CPU_COMPILER_OPTIONS
        self.cpu = jax.jit(f, static_argnums=static_argnums, compiler_options=options)
        self.other = jax.jit(f, static_argnums=static_argnums)
        # the newest executables, least recently used first: each holds its model's
        # data and XLA's code (thousands of memory mappings over a test suite) alive
        self._ahead: OrderedDict[Any, tuple[Future, Any]] = OrderedDict()
        self._compiles = 0
        _PROGRAMS.append(self)

    def _jit(self) -> Any:
        return self.cpu if jax.default_backend() == "cpu" else self.other

    def _dynamic(self, args: tuple[Any, ...]) -> list[Any]:
        return [a for i, a in enumerate(args) if i not in self.static]

    def _key(self, args: tuple[Any, ...]) -> Any:
        static = tuple(args[i] for i in self.static)
        leaves, treedef = jax.tree.flatten(self._dynamic(args))
        types = tuple(
            (tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False)))
            if hasattr(x, "shape") and hasattr(x, "dtype")
            else (type(x).__name__,)
            for x in leaves
        )
        return static, treedef, types

    def _ahead_of_time(self, args: tuple[Any, ...]) -> tuple[Future, Any]:
        key = self._key(args)
        if key in self._ahead:
            self._ahead.move_to_end(key)
            return self._ahead[key]
        # traced and lowered here, under this thread's JAX config (x64 and the other
        # context managers are thread-local); only XLA's compilation moves to the worker
        traced = self._jit().trace(*args)
        future = _WORKERS.submit(traced.lower().compile)
        self._ahead[key] = future, traced.out_info
        self._compiles += 1
        while len(self._ahead) > _KEPT_EXECUTABLES:
            self._ahead.popitem(last=False)
        return self._ahead[key]

    def precompile(self, *args: Any) -> Any:
        """Start compiling for `args` (the static ones, then concrete or
        `ShapeDtypeStruct` leaves) in a worker thread, unless it already was (and is among the
        `_KEPT_EXECUTABLES` used last).

        **Returns:** the types of the program's outputs (`jax.ShapeDtypeStruct` leaves),
        known once it is traced, before it compiles."""
        return self._ahead_of_time(args)[1]

    def compiled(self, *args: Any) -> Callable[..., Any]:
        """The AOT executable for `args`, compiled if it was not: called with the
        arguments but the static ones, it traces nothing, so it can run in any
        thread whatever that thread's JAX config (`"threaded"` chains)."""
        return self._ahead_of_time(args)[0].result()

    def __call__(self, *args: Any) -> Any:
        ahead = self._ahead.get(self._key(args)) if self._ahead else None
        if ahead is not None:
            return ahead[0].result()(*self._dynamic(args))
        return self._jit()(*args)

    def _cache_size(self) -> int:
        jitted = sum(f._cache_size() for f in (self.cpu, self.other))  # type: ignore[attr-defined]
        return jitted + self._compiles


def release() -> None:
    """Drop every kept AOT executable (with `jax.clear_caches()`, what a long-lived
    process that samples many models calls to give their code and data back)."""
    for program in _PROGRAMS:
        program._ahead.clear()


_PROGRAMS: list[Compiled] = []
# Per program (start, chunk): enough for the programs of a few runs (warmup and
# sampling chunks, each chain method); older ones are dropped, and compiled again (or
# loaded from the persistent cache) if a run needs them.
_KEPT_EXECUTABLES = 8
_WORKERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="logdensity-compile")
