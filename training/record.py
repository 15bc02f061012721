"""The run record (DESIGN.md §7): what a run directory holds besides its checkpoints.

config.json (resolved config), environment.json (versions, devices, git commit and dirty diff),
metrics.jsonl (one JSON object per logged step), TensorBoard events under tb/, and summary.json
(final metrics, wall time, throughput, and the sha256 fingerprint of the final parameters).
Only process 0 writes.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jax
import numpy as np

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "tensorflow-datasets",
            "ml-collections", "numpy", "scikit-learn")


def params_sha256(params) -> str:
    """Fingerprint of the parameters: sha256 over each leaf's path, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree.leaves_with_path(jax.device_get(params)):
        leaf = np.ascontiguousarray(leaf)
        digest.update(f"{jax.tree_util.keystr(path)}|{leaf.dtype}|{leaf.shape}".encode())
        digest.update(leaf.tobytes())
    return digest.hexdigest()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def environment() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    diff = _git("diff", "HEAD")
    commit = _git("rev-parse", "HEAD")
    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "packages": versions,
        "backend": jax.default_backend(), "process_count": jax.process_count(),
        "devices": [str(d) for d in jax.devices()],
        "device_kinds": sorted({d.device_kind for d in jax.devices()}),
        "git_commit": commit.strip() if commit else None,
        "git_dirty": bool(diff), "git_diff": diff or "",
        "command": sys.argv,
    }


def _summary_writer(logdir: Path):
    """tensorboardX's SummaryWriter, imported without PyTorch where torch is not loaded yet.

    tensorboardX imports torch whenever it is installed (only to accept torch tensors, which
    we never log), and that import alone took 10 of the 11.6 s of `import tensorboardX` on the
    shared 2-core CPU (1.0 s without). A None entry in sys.modules makes its guarded `import
    torch` fail as if torch were absent; the entry is removed again straight after.
    """
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None
    try:
        from tensorboardX import SummaryWriter
    finally:
        if blocked:
            del sys.modules["torch"]
    return SummaryWriter(str(logdir))


class RunRecord:
    """Appends metrics and writes the record files of one run directory."""

    def __init__(self, workdir: Path, writer_enabled: bool):
        self.workdir, self.enabled = workdir, writer_enabled
        self._tb = None

    def write_json(self, name: str, obj: dict) -> None:
        if self.enabled:
            (self.workdir / name).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")

    def start(self, config_json: str, resumed_at: int | None) -> None:
        if not self.enabled:
            return
        (self.workdir / "config.json").write_text(config_json + "\n")
        self.write_json("environment.json", environment())
        if resumed_at is not None:
            self._truncate_metrics_after(resumed_at)
        self._tb = _summary_writer(self.workdir / "tb")

    def _truncate_metrics_after(self, step: int) -> None:
        """Drops lines logged after the checkpoint we resume from: they will be logged again."""
        path = self.workdir / "metrics.jsonl"
        if path.exists():
            kept = [line for line in path.read_text().splitlines()
                    if line and json.loads(line)["step"] <= step]
            path.write_text("".join(line + "\n" for line in kept))

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.workdir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        for name, value in values.items():
            self._tb.add_scalar(name, value, step)

    def finish(self, summary: dict) -> None:
        self.write_json("summary.json", summary)
        if self._tb is not None:
            self._tb.close()
