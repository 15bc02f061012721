"""The persistent compilation cache: where it lives, how it is turned off, and that a launch
leaves its compiled train step there for the next one."""

import json
import os
from pathlib import Path

import pytest

from tests.helpers import run_launch
from training import compile_cache

TINY = ("--config.train.steps=2", "--config.schedule.warmup_steps=0",
        "--config.train.batch_size=16", "--config.eval.every_steps=2",
        "--config.checkpoint.every_steps=2")


@pytest.fixture
def env(monkeypatch):
    for name in ("JAX_COMPILATION_CACHE_DIR", compile_cache.ENV_VAR, "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_default_is_the_users_cache_directory(env):
    assert compile_cache.cache_dir() == Path.home() / ".cache" / "convjax" / "jax"
    env.setenv("XDG_CACHE_HOME", "/somewhere")
    assert compile_cache.cache_dir() == Path("/somewhere/convjax/jax")


@pytest.mark.parametrize("value", ["off", "0", "False", "none", ""])
def test_turned_off_by_the_environment(env, value):
    env.setenv(compile_cache.ENV_VAR, value)
    assert compile_cache.cache_dir() is None
    assert compile_cache.enable() is None


def test_a_directory_of_ones_own_and_jaxs_own_setting_wins(env):
    env.setenv(compile_cache.ENV_VAR, "/mine")
    assert compile_cache.cache_dir() == Path("/mine")
    env.setenv("JAX_COMPILATION_CACHE_DIR", "/jax")
    assert compile_cache.cache_dir() == Path("/jax")


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="a launch in a subprocess (.ci/run runs it)")
def test_a_launch_writes_its_train_step_to_the_cache(tmp_path, monkeypatch):
    """What a second launch then loads: JAX's entry (keyed on the program, versions, devices
    and flags, named after the jitted function) and the whole executable
    (training/executable_cache.py), which the second launch uses as it is and trains the same
    with."""
    monkeypatch.setenv(compile_cache.ENV_VAR, str(tmp_path / "cache"))
    summaries = []
    for run in ("first", "second"):
        result = run_launch("train", f"--workdir={tmp_path / run}", *TINY)
        assert result.returncode == 0, result.stderr[-2000:]
        summaries.append(json.loads((tmp_path / run / "summary.json").read_text()))
        steps = list((tmp_path / "cache").glob("jit_step-*"))  # the train and eval steps
        if run == "first":
            assert len(steps) == 2, steps
            entries = sorted((tmp_path / "cache" / "executables").glob("*.executable"))
            assert len(entries) == 2, entries  # the train and eval steps
            saved = [p.stat().st_mtime_ns for p in entries]
            for path in steps:  # what the second launch compiles comes back
                path.unlink()
    assert not steps  # neither step was traced nor compiled
    assert sorted((tmp_path / "cache" / "executables").iterdir()) == entries
    assert [p.stat().st_mtime_ns for p in entries] == saved  # loaded, not written again
    assert summaries[0]["steps"] == summaries[1]["steps"] == 2
    assert summaries[0]["final_metrics"] == summaries[1]["final_metrics"]
    assert summaries[0]["params_sha256"] == summaries[1]["params_sha256"]
