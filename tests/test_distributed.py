"""Multi-host start-up: the flags, and two processes on localhost (4 fake CPU devices each)
training one run over JAX's distributed runtime (heavy: CONVJAX_HEAVY=1, run by .ci/run)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT, launch_env, run_launch

TINY = ["--config.train.steps=20", "--config.train.batch_size=32",
        "--config.train.log_every_steps=10", "--config.eval.every_steps=20",
        "--config.eval.batch_size=64", "--config.checkpoint.every_steps=20",
        "--config.schedule.warmup_steps=4"]


@pytest.mark.parametrize("args, message", [
    (["--coordinator", "localhost:1234"], "need --distributed"),
    (["--distributed", "--coordinator", "localhost:1234"], "go together"),
    (["--distributed", "--coordinator", "localhost:1234", "--num-processes", "2",
      "--process-id", "2"], "must be in [0, --num-processes 2)"),
])
def test_distributed_flags_are_checked(args, message, tmp_path):
    result = run_launch("train", "--workdir", str(tmp_path / "run"), *args)
    assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _final_params(workdir) -> dict:
    """The last checkpoint's parameters, as NumPy arrays keyed by path."""
    import jax
    import orbax.checkpoint as ocp

    step = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    path, checkpointer = workdir / "checkpoints" / str(step) / "state", ocp.PyTreeCheckpointer()
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                            checkpointer.metadata(path).item_metadata.tree)
    state = checkpointer.restore(path, restore_args=as_numpy)
    return {jax.tree_util.keystr(k): v for k, v in
            jax.tree_util.tree_flatten_with_path(state["params"])[0]}


def _train_losses(workdir) -> list[float]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [r["train/loss"] for r in map(json.loads, lines) if "train/loss" in r]


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="two training processes")
def test_two_processes_on_localhost_train_one_run(tmp_path):
    workdir, port = tmp_path / "run", _free_port()
    single = tmp_path / "single"
    alone = run_launch("train", "--workdir", str(single), *TINY, devices=8, timeout=600)
    assert alone.returncode == 0, alone.stderr[-2000:]
    procs = [subprocess.Popen(
        [sys.executable, str(ROOT / "launch.py"), "train", "--workdir", str(workdir),
         "--distributed", f"--coordinator=localhost:{port}", "--num-processes=2",
         f"--process-id={i}", *TINY],
        cwd=ROOT, env=launch_env(devices=4), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True) for i in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "8 cpu devices in 2 processes" in outputs[0]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["steps"] == 20 and summary["devices"] == 8
    assert json.loads((workdir / "environment.json").read_text())["process_count"] == 2
    assert (workdir / "checkpoints" / "20").is_dir()
    # The same global batches, augmentation draws and maths as one process with 8 devices.
    assert _train_losses(workdir) == pytest.approx(_train_losses(single), rel=1e-5)
    ours, theirs = _final_params(workdir), _final_params(single)
    assert ours.keys() == theirs.keys()
    for path in ours:
        np.testing.assert_allclose(ours[path], theirs[path], rtol=1e-5, atol=1e-6, err_msg=path)
