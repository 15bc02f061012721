"""JAX's persistent compilation cache, on by default for every `launch.py` command.

A second launch of the same experiment then loads its compiled programs (the train and eval
steps, and the small eager ops of parameter initialisation) from disk instead of compiling
them again. The cache lives in the user's cache directory:

    $CONVJAX_COMPILE_CACHE          a directory, or `off` (also 0, false, no, none) to disable
    default                         ${XDG_CACHE_HOME:-~/.cache}/convjax/jax

A `JAX_COMPILATION_CACHE_DIR` set by the user wins over both (JAX's own setting). Entries are
keyed by JAX on the program, the JAX/XLA versions, the devices and XLA's flags, so a stale
entry is never used; deleting the directory is always safe. Its `executables/` holds whole
train and eval steps (training/executable_cache.py), which a second launch uses without
tracing.

`enable()` sets JAX's options through their environment variables before JAX is imported (so
`--help` and bad flags still answer without loading JAX), hence before the first compilation.
Called after JAX is imported (`launch.main` from Python) it does nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_VAR = "CONVJAX_COMPILE_CACHE"
_OFF = {"off", "0", "false", "no", "none"}
_enabled: Path | None = None  # the directory `enable()` turned on in this process


def cache_dir() -> Path | None:
    """The cache directory this process uses, or None when the cache is off."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    value = os.environ.get(ENV_VAR)
    if value is not None:
        return None if value.strip().lower() in _OFF or not value.strip() else Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "convjax" / "jax"


def enable() -> Path | None:
    """Turns the persistent cache on (unless disabled); returns its directory or None."""
    path = cache_dir()
    if path is None:
        return None
    options = {
        "jax_compilation_cache_dir": str(path),
        # JAX's default (1 s) keeps only slow compilations; parameter initialisation is ~30 small
        # eager programs (0.03-0.5 s each) that together cost seconds at every launch.
        "jax_persistent_cache_min_compile_time_secs": 0.0,
    }
    if "jax" in sys.modules:
        # Called from Python (tests, a notebook) after JAX was imported: that process keeps its
        # own settings. Switching a running JAX to a cache shared with other processes is what
        # a launch never does, and in-process test workers sharing one cache crashed in XLA.
        return None
    options = {k: v for k, v in options.items() if k.upper() not in os.environ}  # user's win
    os.environ.update({name.upper(): str(value) for name, value in options.items()})
    global _enabled
    _enabled = path
    return path


def executables_dir() -> Path | None:
    """Where training/executable_cache.py keeps whole compiled steps: beside JAX's entries,
    when `enable()` turned the cache on in this process; None otherwise."""
    return None if _enabled is None else _enabled / "executables"
