"""The compiled train and eval steps kept on disk whole, so a second launch of the same run
neither traces nor lowers them.

JAX's persistent cache (training/compile_cache.py) is keyed on the lowered program, so even a
warm launch traces the step and lowers it to StableHLO before it can look the program up:
0.45-0.5 s of the default experiment's 2.3 s warm start-up on the 2-core CPU (trace 0.27,
lower 0.20, load 0.08), against 0.1 s to load the executable serialized here
(`jax.experimental.serialize_executable`). No library keys a compiled function on its source,
so this module does, on everything the trace can read:

- every Python file of this project's packages (any edit invalidates every entry);
- the run's config, the dataset's description, the kind of step (train or eval);
- the arguments' tree structure, shapes, dtypes and shardings;
- the versions of Python, JAX, jaxlib, Flax, Optax and NumPy, the devices, the host CPU's
  instruction sets, the processes, JAX's config and the JAX_*, XLA_* and CONVJAX_* environment
  variables.

A change to any of them is a new entry; a missing or unreadable entry is compiled as before,
and a damaged one is reported in one line and replaced. Only one-process runs use it (a
multi-host executable is one program across processes). An executable that JAX itself loaded
from its persistent cache is not saved: re-serialized, it lacks its compiled kernels and fails
when run (jaxlib 0.10.2: "Function ... not found"), so only a fresh compilation is kept.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import pickle
import platform
import sys
from pathlib import Path

import jax
from jax.experimental import serialize_executable

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_NOT_TRACED = {"tests", "benchmarks"}  # packages no train step imports
_LIBRARIES = ("jax", "jaxlib", "flax", "optax", "numpy")
_ENV_PREFIXES = ("JAX_", "XLA_", "CONVJAX_")
_JAX_CACHE_HITS = "/jax/compilation_cache/cache_hits"
_hits = [0]  # persistent-cache hits so far in this process (a mutable cell)


def _count_jax_cache_hits(event: str, **_) -> None:
    if event == _JAX_CACHE_HITS:
        _hits[0] += 1


jax.monitoring.register_event_listener(_count_jax_cache_hits)


def project_sources() -> list[Path]:
    """The project's top-level Python files and those of its packages (directories with an
    __init__.py), tests and benchmarks aside: not a walk of the root, which holds the
    environment and the runs."""
    packages = [d for d in PROJECT_ROOT.iterdir()
                if (d / "__init__.py").exists() and d.name not in _NOT_TRACED]
    return sorted([*PROJECT_ROOT.glob("*.py"), *(p for d in packages for p in d.rglob("*.py"))])


@functools.cache
def source_digest() -> str:
    """sha256 of `project_sources()`, names and contents."""
    digest = hashlib.sha256()
    for path in project_sources():
        digest.update(f"{path.relative_to(PROJECT_ROOT)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def _cpu_features() -> str:
    """The host CPU's instruction sets: XLA compiles CPU code for the host it runs on, and a
    cache directory can be shared by machines that differ (an AVX-512 program on an AVX2-only
    host stops at its first instruction). JAX names a CPU device just "cpu"."""
    try:
        with open("/proc/cpuinfo") as info:
            return next((line for line in info if line.startswith("flags")), "")
    except OSError:  # not Linux
        return f"{platform.machine()} {platform.processor()}"


def _environment() -> list:
    versions = [(name, importlib.metadata.version(name)) for name in _LIBRARIES]
    devices = [(d.platform, d.device_kind, d.id, d.process_index) for d in jax.devices()]
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES))
    config = sorted((k, repr(v)) for k, v in jax.config.values.items())
    return [sys.version, versions, devices, jax.process_count(), _cpu_features(), env, config]


def _signature(args) -> list:
    leaves, tree = jax.tree.flatten(args)
    return [str(tree)] + [(tuple(x.shape), str(x.dtype), repr(getattr(x, "sharding", None)),
                           getattr(x, "weak_type", False)) for x in leaves]


def key(context: str, args) -> str:
    """The entry's name: everything the compiled step depends on, hashed."""
    parts = [source_digest(), context, _environment(), _signature(args)]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def load(path: Path):
    """The executable saved at `path`, or None when there is none; a damaged file is removed
    with a one-line note on stderr (it is recompiled and saved again)."""
    if not path.exists():
        return None
    try:
        payload, in_tree, out_tree, device_ids = pickle.loads(path.read_bytes())
        _register_ffi_targets(payload)
        by_id = {d.id: d for d in jax.devices()}
        return serialize_executable.deserialize_and_load(
            payload, in_tree, out_tree, execution_devices=[by_id[i] for i in device_ids])
    except Exception as err:  # a truncated or foreign file: compile instead
        print(f"note: compiled-step cache entry {path} is unreadable ({type(err).__name__}); "
              "compiling again", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None


def _register_ffi_targets(payload: bytes) -> None:
    """A step calling oneDNN's convolutions (models/onednn_conv.py) needs their handlers
    registered before it loads ("No FFI handler registered" otherwise); a traced step
    registers them while tracing, a loaded one is never traced."""
    from models import onednn_conv

    if any(name.encode() in payload for name in onednn_conv.TARGETS.values()):
        onednn_conv.available()


def save(path: Path, compiled) -> None:
    """Writes `compiled` to `path` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    # The devices it runs on, in order: loaded onto all of them it would expect a shard each
    device_ids = [d.id for d in compiled.runtime_executable().local_devices()]
    data = pickle.dumps((*serialize_executable.serialize(compiled), device_ids))
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # a full disk leaves no partial file behind


class CachedStep:
    """`jitted` (a jax.jit step), compiled at its first call from the entry in `directory`
    keyed on `context` and the call's arguments, or compiled and saved there. Later calls go
    straight to the executable, or to `jitted` when their shapes differ from the first's."""

    def __init__(self, jitted, directory: Path, context: str):
        self._jitted, self._directory, self._context = jitted, directory, context
        self._compiled = None

    def __call__(self, *args):
        if self._compiled is None:
            self._compiled = self._load_or_compile(args)
        try:
            return self._compiled(*args)
        except TypeError:  # arguments unlike the first call's (checked before running, so
            return self._jitted(*args)  # nothing was donated): compiled for them, as jit does

    def _load_or_compile(self, args):
        path = self._directory / f"{key(self._context, args)}.executable"
        compiled = load(path)
        if compiled is None:
            hits = _hits[0]
            compiled = self._jitted.lower(*args).compile()
            if _hits[0] == hits:  # compiled here, not loaded from JAX's cache: whole
                try:
                    save(path, compiled)
                except (OSError, ValueError, NotImplementedError) as err:  # full disk, or a
                    # step JAX cannot serialize (closed-over constants): the run goes on
                    print(f"note: the compiled step was not cached ({err})", file=sys.stderr)
        return compiled


def cached(jitted, directory: Path | None, context: str):
    """`jitted` behind a `CachedStep` in `directory`; `jitted` itself when `directory` is None
    (the cache is off) or the run spans several processes."""
    if directory is None or jax.process_count() > 1:
        return jitted
    return CachedStep(jitted, directory, context)
