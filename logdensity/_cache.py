"""JAX's persistent compilation cache, on for the loop's programs by default: a second
process sampling a model of the same structure loads the compiled programs from disk
instead of compiling them again."""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["ENV", "MAX_SIZE", "compilation_cache_dir", "ensure_compilation_cache"]

ENV = "LOGDENSITY_COMPILATION_CACHE"
MAX_SIZE = 2 * 2**30  # bytes; JAX evicts the least recently used entries beyond it
_OFF = ("0", "off", "false", "no", "")


def compilation_cache_dir() -> Path | None:
    """Where `sample` asks JAX to keep compiled programs: the directory in
    `$LOGDENSITY_COMPILATION_CACHE` if set (`0`, `off`, `false`, `no` or empty: none),
    else `<user cache dir>/jax` (`platformdirs.user_cache_dir("logdensity")`, e.g.
    `~/.cache/logdensity/jax` on Linux)."""
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("logdensity")) / "jax"


def ensure_compilation_cache() -> None:
    """Turn on JAX's persistent compilation cache at `compilation_cache_dir()`, with a
    size limit of `MAX_SIZE`, unless it is switched off or JAX's cache is already
    configured (`jax_compilation_cache_dir` set by the user, or by
    `$JAX_COMPILATION_CACHE_DIR`: theirs is kept). Called by `sample` and `resume`
    before they compile.

    This is JAX's process-wide cache: once on, the user's own `jit`s are cached there
    too. Entries are keyed by the program, the compile options, the devices and the
    JAX/XLA versions, so a stale entry is never used; JAX writes only programs that took
    at least `jax_persistent_cache_min_compile_time_secs` (1 s) to compile.
    """
    if jax.config.jax_compilation_cache_dir is not None:  # type: ignore[attr-defined]
        return
    path = compilation_cache_dir()
    if path is None:
        return
    jax.config.update("jax_compilation_cache_dir", str(path))
    if jax.config.jax_compilation_cache_max_size == -1:  # type: ignore[attr-defined]
        jax.config.update("jax_compilation_cache_max_size", MAX_SIZE)
