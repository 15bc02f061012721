"""Surviving what clusters do to runs: stop signals, two writers, a bad run directory.

- `StopRequest`: SIGTERM (what SLURM and preemptible VMs send) and SIGINT (Ctrl-C) only set a
  flag; the loop finishes the step it is in, writes a checkpoint there and exits 0, so the same
  command resumes bit-identically.
- `RunLock`: an exclusive `flock` on `RUN/.lock` for the life of the process, so a second
  launch on the same directory is refused instead of becoming a second writer. The kernel
  drops the lock when the process dies, even by SIGKILL, so a stale lock never blocks a resume.
- `check_workdir`: a run directory that is a file, is not writable or cannot be created is one
  line, before anything is written (one holding something else than a run: `loop.check_resumable`).
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
from pathlib import Path

from errors import UserError



def check_workdir(workdir: Path) -> None:
    """UserError unless `workdir` is a writable directory, or absent and creatable."""
    if workdir.exists() and not workdir.is_dir():
        raise UserError(f"--workdir {workdir} is a file, not a directory; give a new directory")
    if workdir.is_dir():
        if not os.access(workdir, os.W_OK):
            raise UserError(f"--workdir {workdir} is not writable; give a directory you can write")
        return
    parent = next(p for p in workdir.absolute().parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"--workdir {workdir} cannot be created ({parent} is not a writable "
                        "directory); give a directory you can write")


class RunLock:
    """Exclusive lock on a run directory; `acquire` raises UserError if another process holds
    it. A lock this process already holds (a run in it that ended in an exception) is reused."""

    FILE = ".lock"
    _held: dict[Path, object] = {}   # resolved directory -> its open lock file, in this process

    def __init__(self, workdir: Path):
        self.key = workdir.resolve()
        self.path = workdir / self.FILE

    def acquire(self) -> "RunLock":
        import jax

        # Only process 0 writes the run's records; the others of a multi-host run share its
        # directory (and Orbax coordinates their checkpoint writes).
        if self.key in self._held or jax.process_index() != 0:
            return self
        file = open(self.path, "a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            raise UserError(f"{self.path.parent} is in use by another training run; wait for it "
                            "to finish, or give another --workdir") from None
        file.truncate(0)
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._held[self.key] = file
        return self

    def release(self) -> None:
        file = self._held.pop(self.key, None)
        if file is not None:
            fcntl.flock(file, fcntl.LOCK_UN)
            file.close()


class StopRequest:
    """While active, SIGTERM and SIGINT set `signal_name` instead of ending the process; the
    previous handlers come back on exit. Signals can only be caught on the main thread, so
    elsewhere (a test runner's worker thread) this does nothing."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
