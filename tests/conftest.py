"""Test setup: eight fake CPU devices (set before jax is imported) and a private TFDS data dir."""

import os
import sys
from pathlib import Path

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def tfds_data_dir(tmp_path_factory):
    """One data dir for the session; the digits set is prepared into it on first use."""
    path = tmp_path_factory.mktemp("tfds")
    os.environ["TFDS_DATA_DIR"] = str(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def compile_cache_dir(tmp_path_factory):
    """launch.py's persistent compilation cache in a private dir: never the user's own."""
    path = tmp_path_factory.mktemp("jax_cache")
    os.environ["CONVJAX_COMPILE_CACHE"] = str(path)
    return path


@pytest.fixture
def tiny_config():
    """The default experiment, shortened: a few seconds on two CPU cores."""
    from experiments.lenet5_digits import get_config

    c = get_config()
    c.train.steps = 24
    c.train.batch_size = 32
    c.train.log_every_steps = 6
    c.eval.every_steps = 12
    c.eval.batch_size = 64
    c.checkpoint.every_steps = 12
    c.schedule.warmup_steps = 4
    return c
