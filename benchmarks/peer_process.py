"""A benchmark's PyTorch peer in a process of its own, driven round by round (the train step's
in benchmarks/train_step.py, the speed run's epoch in benchmarks/airbench_epoch.py).

Why: PyTorch and convjax's oneDNN convolutions (models/onednn_conv.py) both run on the
system's libgomp. Once both had run OpenMP teams in one process, PyTorch's steps were 15-35%
slower than in a process of their own (ResNet-20 b128, torch.compile channels-last: 156-171 ms
after convjax's XLA-only step, 176-218 ms after its oneDNN step;
benchmarks/results/train_step_cpu_2core_onednn_separate_processes.json), which flattered the
ratio. Here each library has its process to itself, and the rounds still alternate with
convjax's (never overlapping: the parent waits for each), so machine noise hits both alike.
Each step (or epoch) is timed in the child, without the pipe's latency.

The child inherits this process's malloc (training/malloc.py: launch.py preloads mimalloc,
under which PyTorch's steps are faster too), so both sides run on the same allocator;
`--peer-malloc system` gives the peer the one a plain `python` gets instead (glibc, no
tunables), to see PyTorch as its users run it by default.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
from multiprocessing.connection import Connection
from typing import Callable

import jax

from training.malloc import MIMALLOC_OPTIONS


def _serve(conn: Connection, build: Callable, args: tuple) -> None:
    """The child: `build(*args)` makes and warms up the peer's runners (as benchmarks/
    train_step.py's `Runner`s) and says what it made; then it runs (name, steps) requests,
    timing each step, until it receives None."""
    from benchmarks.train_step import timed

    runners, notes = build(*args)
    conn.send(([(r.name, r.compile_s, r.extra) for r in runners], notes))
    by_name = {r.name: r for r in runners}
    while (request := conn.recv()) is not None:
        name, steps = request
        runner = by_name[name]
        if runner.setup:
            runner.setup()
        conn.send([timed(runner.step) for _ in range(steps)])


class PeerProcess:
    """The runners `build(*args)` returns, in a spawned child (a fresh interpreter: no libgomp
    team, no JAX backend inherited). `build` is a module-level function (the child imports it
    by name) returning (runners, notes on variants that failed to build). Use as a context
    manager; `runners()` are the parent's handles."""

    def __init__(self, build: Callable, *args, malloc: str = "same"):
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, build, args), daemon=True)
        with _environment(SYSTEM_MALLOC if malloc == "system" else {}):
            self._process.start()  # the child gets the environment as it is now
        child.close()
        try:
            self._built, self.notes = self._conn.recv()
        except EOFError:
            raise self._exited("before it was built") from None

    def runners(self) -> list:
        """One Runner per variant the child built; its rounds run in the child."""
        from benchmarks.train_step import Runner

        return [Runner(name, step=None, compile_s=compile_s, extra=extra,
                       timed_round=lambda steps, name=name: self._round(name, steps))
                for name, compile_s, extra in self._built]

    def _round(self, name: str, steps: int) -> list[float]:
        try:
            self._conn.send((name, steps))
            return self._conn.recv()
        except (EOFError, BrokenPipeError):
            raise self._exited(f"during a round of {name}") from None

    def _exited(self, when: str) -> RuntimeError:
        self._process.join(timeout=10)
        return RuntimeError(f"the PyTorch peer's process exited (status "
                            f"{self._process.exitcode}) {when}; its error is above")

    def __enter__(self) -> "PeerProcess":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()


# launch.py's malloc settings (training/malloc.py), removed for `--peer-malloc system`
SYSTEM_MALLOC = {"LD_PRELOAD": None, "GLIBC_TUNABLES": None} | dict.fromkeys(MIMALLOC_OPTIONS)


def _put(key: str, value: str | None) -> None:
    """Sets os.environ[key], or unsets it for None."""
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


@contextlib.contextmanager
def _environment(changes: dict[str, str | None]):
    """os.environ with `changes` (None: unset) for the block, then as it was."""
    saved = {key: os.environ.get(key) for key in changes}
    try:
        for key, value in changes.items():
            _put(key, value)
        yield
    finally:
        for key, value in saved.items():
            _put(key, value)


def add_argument(parser: argparse.ArgumentParser) -> None:
    """`--peer-process auto|separate|same` (`where(args.peer_process)` resolves auto) and
    `--peer-malloc same|system`."""
    parser.add_argument("--peer-process", choices=("auto", "separate", "same"), default="auto",
                        help="where the PyTorch peer runs: its own process, rounds still "
                             "alternating (separate), or this one (same); auto: separate on a "
                             "CPU, where the two would share libgomp, same elsewhere")
    parser.add_argument("--peer-malloc", choices=("same", "system"), default="same",
                        help="the malloc of the peer's own process: this one's (same: "
                             "launch.py's mimalloc), or a plain python's (system: glibc)")


def where(choice: str) -> str:
    """'separate' or 'same' for a --peer-process choice."""
    if choice != "auto":
        return choice
    return "separate" if jax.default_backend() == "cpu" else "same"


@contextlib.contextmanager
def peer_runners(options: argparse.Namespace, build: Callable, *args, enabled: bool = True):
    """(runners, notes) of `build(*args)`, placed as `add_argument`'s parsed `options` say: in
    a PeerProcess (on `--peer-malloc`) for `--peer-process separate`, else built here; none
    when not `enabled` (no peer)."""
    if not enabled:
        yield [], {}
    elif options.peer_process != "separate":
        yield build(*args)
    else:
        with PeerProcess(build, *args, malloc=options.peer_malloc) as peer:
            yield peer.runners(), peer.notes
