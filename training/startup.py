"""A launch's start-up: without Python's cyclic garbage collector rescanning the libraries, and
with a hint when the environment makes Python recompile them at every launch.

JAX, Flax, Grain, Orbax and TFDS leave about 184,000 objects tracked by the collector after
import, and every full collection during start-up rescans them all: collections took 0.55-0.6 s
of a 3.7-4.0 s start-up of the default experiment (to its first step; 0.04-0.05 s after).
Imports make almost no cyclic garbage, so a command imports its libraries with collection off,
then freezes what they made (gc.freeze: never scanned again) and turns collection back on for
everything made after. Only in a process that exists for the command (`launch.py` run as a
script): in a caller's process (tests, a notebook) freezing would also keep any cyclic garbage
it holds at that moment for good.

uv installs packages without their bytecode, which Python writes at a module's first import,
unless PYTHONDONTWRITEBYTECODE is set (containers often set it): then every launch compiles
the ~1,600 library modules it imports again. Measured on the 2-core CPU, the default
experiment's warm start-up was 3.76-3.94 s so, 1.86-2.06 s after `uv sync --compile-bytecode`.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import sys

_own_process = False


def mark_own_process() -> None:
    """Called by `launch.py` run as a script, before the command starts."""
    global _own_process
    _own_process = True


@contextlib.contextmanager
def imports_without_collection():
    """Wraps a command's heavy imports; a no-op outside a process of its own."""
    if not _own_process or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def bytecode_hint() -> str | None:
    """One line for stderr when Python may not write bytecode and the environment has none
    (JAX's package stands for the rest); None otherwise."""
    if not sys.dont_write_bytecode:
        return None
    spec = importlib.util.find_spec("jax")
    if spec is None or not spec.cached or os.path.exists(spec.cached):
        return None
    return ("note: PYTHONDONTWRITEBYTECODE is set and this environment has no bytecode, so "
            "every launch recompiles its libraries (~2 s); `uv sync --locked "
            "--compile-bytecode` compiles them once")
