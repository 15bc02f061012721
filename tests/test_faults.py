"""A run survives what clusters do to it: SIGTERM and SIGKILL then resume give the uninterrupted
weights, a damaged latest checkpoint is skipped, a non-finite step stops the run (or is skipped),
two launches on one directory and a bad --workdir are refused."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from errors import UserError
from tests.helpers import ROOT, launch_env, run_launch
from training import loop, mesh as mesh_lib
from training.health import NonFiniteError

TINY = ["--config.train.steps=24", "--config.train.batch_size=32",
        "--config.train.log_every_steps=6", "--config.eval.every_steps=12",
        "--config.eval.batch_size=64", "--config.checkpoint.every_steps=12",
        "--config.schedule.warmup_steps=4"]


def _train(config, workdir, **kwargs):
    return loop.train(config, workdir, show_progress=False, **kwargs)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    from tests.conftest import tiny_config

    return _train(tiny_config.__wrapped__(), tmp_path_factory.mktemp("runs") / "straight")


def _after_calls(monkeypatch, module, name, n, action):
    """Runs `action()` when `module.name` is called for the n-th time (1-based)."""
    original, calls = getattr(module, name), [0]

    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            args = action(*args) or args
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)


def test_sigterm_checkpoints_the_current_step_and_resume_is_exact(straight, tiny_config, tmp_path,
                                                                   monkeypatch, capsys):
    # global_batch is called once per train step (no evaluation before step 12): the signal
    # arrives during step 7.
    _after_calls(monkeypatch, mesh_lib, "global_batch", 7,
                 lambda *a: signal.raise_signal(signal.SIGTERM))
    stopped = _train(tiny_config, tmp_path / "run")
    assert stopped == {"steps": 7, "stopped_by": "SIGTERM"}
    assert "resume with the same command" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoints" / "7").is_dir()
    monkeypatch.undo()
    resumed = _train(tiny_config, tmp_path / "run")
    assert resumed["resumed_at"] == 7
    assert resumed["params_sha256"] == straight["params_sha256"]


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="three launches (.ci/run runs it)")
def test_sigkill_at_a_random_moment_then_resume_is_exact(tmp_path):
    # The reference is run the same way (a launch.py process), not in this test process.
    reference = run_launch("train", "--workdir", str(tmp_path / "straight"), *TINY, devices=8)
    assert reference.returncode == 0, reference.stderr
    workdir = tmp_path / "killed"
    env_args = ["train", "--workdir", str(workdir), *TINY]
    proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), *env_args], cwd=ROOT,
                            env=launch_env(devices=8), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = workdir / "metrics.jsonl"
    deadline = time.time() + 240
    while not (log.exists() and log.read_text().strip()) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(random.uniform(0, 1.5))  # somewhere after the first logged steps
    proc.kill()
    proc.wait()
    result = run_launch(*env_args, devices=8)
    assert result.returncode == 0, result.stderr
    fingerprint = [json.loads((d / "summary.json").read_text())["params_sha256"]
                   for d in (workdir, tmp_path / "straight")]
    assert fingerprint[0] == fingerprint[1]


def test_a_run_killed_after_its_last_checkpoint_is_recorded_on_resume(straight, tiny_config,
                                                                     tmp_path):
    """Killed between the final checkpoint and summary.json: the resume trains no step and
    writes the summary of the same weights, evaluated."""
    workdir = tmp_path / "run"
    _train(tiny_config, workdir)
    (workdir / "summary.json").unlink()  # as if killed after the last checkpoint
    resumed = _train(tiny_config, workdir)
    assert resumed["params_sha256"] == straight["params_sha256"]
    assert resumed["final_metrics"]["test/accuracy"] == straight["final_metrics"]["test/accuracy"]
    assert json.loads((workdir / "summary.json").read_text())["steps"] == straight["steps"]


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="two runs (.ci/run runs it)")
def test_a_damaged_latest_checkpoint_is_skipped_for_the_one_before(tiny_config, tmp_path, capsys):
    workdir = tmp_path / "run"
    _train(tiny_config, workdir)                        # checkpoints at 12 and 24
    for f in (workdir / "checkpoints" / "24" / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 100:
            f.write_bytes(f.read_bytes()[:50])           # truncated
    tiny_config.train.steps = 36
    resumed = _train(tiny_config, workdir)
    assert resumed["resumed_at"] == 12 and resumed["steps"] == 36
    assert "checkpoints/24 cannot be read" in capsys.readouterr().err


def _poison_train_batch(monkeypatch, n):
    """The n-th train batch (eval batches carry a `mask`) becomes all NaN."""
    original, calls = mesh_lib.global_batch, [0]

    def poisoned(batch, mesh):
        if "mask" not in batch:
            calls[0] += 1
            if calls[0] == n:
                batch = {**batch, "image": np.full_like(batch["image"], np.nan)}
        return original(batch, mesh)

    monkeypatch.setattr(mesh_lib, "global_batch", poisoned)


def test_a_nan_batch_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path,
                                                                      monkeypatch):
    _poison_train_batch(monkeypatch, 15)
    with pytest.raises(NonFiniteError, match="step 15: the loss is not finite"):
        _train(tiny_config, tmp_path / "run")
    steps = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == ["12"]


def test_skip_nonfinite_skips_the_update_and_counts_it(tiny_config, tmp_path, monkeypatch):
    _poison_train_batch(monkeypatch, 15)
    tiny_config.train.skip_nonfinite = True
    summary = _train(tiny_config, tmp_path / "run")
    assert summary["steps"] == 24 and np.isfinite(summary["final_metrics"]["test/loss"])
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    skipped = {x["step"]: x["train/skipped_steps"] for x in lines if "train/skipped_steps" in x}
    assert skipped[18] == 1 and sum(skipped.values()) == 1   # step 15 is in the log at 18
    assert all(x["train/lr"] > 0 and x["train/grad_norm"] > 0 for x in lines if "train/lr" in x)


def test_a_diverging_run_exits_3_naming_the_step(tmp_path, capsys):
    from training import cli

    status = cli.main(["--workdir", str(tmp_path / "run"), *TINY, "--config.optimizer.name=sgd",
                       "--config.optimizer.lr=1e30", "--config.model.act=relu"])
    assert status == 3
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: step ")


def test_a_second_launch_on_a_run_in_use_is_refused(tiny_config, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(60)"), str(workdir / ".lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match="in use by another training run"):
            _train(tiny_config, workdir)
    finally:
        holder.kill()
        holder.wait()


def test_checkpoints_apart_from_evaluation(tiny_config, tmp_path):
    tiny_config.checkpoint.every_steps = 6
    tiny_config.checkpoint.keep = 1
    _train(tiny_config, tmp_path / "run")
    steps = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir()
                   if p.name.isdigit())
    assert steps[-1] == 24 and set(steps) <= {12, 24}  # the latest, and the best evaluated one


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x") and p, "is a file"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")) and p, "not a convjax run"),
    (lambda p: p.write_text("x") and p / "sub", "cannot be created"),
])
def test_bad_workdirs_are_one_line_and_nothing_is_written(tiny_config, tmp_path, make, message):
    workdir = make(tmp_path / "w")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(UserError, match=message):
        _train(tiny_config, workdir)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    shutil.rmtree(tmp_path, ignore_errors=True)
