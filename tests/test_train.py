"""End to end: a short run leaves a full record, is bit-reproducible, resumes exactly, and gives
the same metrics on 1 and on 8 devices."""

import json

import pytest

from tests.helpers import run_launch
from training import loop


def _train(config, workdir, **kwargs):
    return loop.train(config, workdir, show_progress=False, **kwargs)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """The tiny config trained straight through, on the 8 fake devices."""
    from tests.conftest import tiny_config

    config = tiny_config.__wrapped__()
    workdir = tmp_path_factory.mktemp("runs") / "straight"
    return config, workdir, _train(config, workdir)


def test_run_leaves_a_complete_record(straight_run):
    config, workdir, summary = straight_run
    for name in ("config.json", "environment.json", "metrics.jsonl", "summary.json"):
        assert (workdir / name).is_file(), name
    assert list((workdir / "tb").glob("events.out.tfevents.*"))
    saved = json.loads((workdir / "summary.json").read_text())
    assert saved["steps"] == 24 and saved["params"] == 61706
    for key in ("final_metrics", "wall_time_s", "examples_per_s", "params_sha256"):
        assert key in saved
    assert set(saved["final_metrics"]) >= {"train/loss", "train/accuracy", "test/loss",
                                           "test/accuracy", "test/top5"}
    env = json.loads((workdir / "environment.json").read_text())
    assert len(env["devices"]) == 8 and env["packages"]["jax"]
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "test/accuracy" in x] == [12, 24]
    assert json.loads((workdir / "config.json").read_text())["model"]["name"] == "lenet5"


def test_checkpoints_keep_the_last_and_the_best(straight_run):
    _, workdir, _ = straight_run
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [12, 24]


def test_same_config_and_seed_give_identical_results(straight_run, tiny_config, tmp_path):
    _, _, first = straight_run
    again = _train(tiny_config, tmp_path / "again")
    assert again["params_sha256"] == first["params_sha256"]
    assert again["final_metrics"] == first["final_metrics"]


def test_other_seed_gives_other_weights(straight_run, tiny_config, tmp_path):
    tiny_config.seed = 1
    assert _train(tiny_config, tmp_path / "seed1")["params_sha256"] != \
        straight_run[2]["params_sha256"]


def test_stop_and_resume_equals_straight_run(straight_run, tiny_config, tmp_path):
    _, _, straight = straight_run
    workdir = tmp_path / "resumed"
    half = _train(tiny_config, workdir, stop_after=12)
    assert half["steps"] == 12
    resumed = _train(tiny_config, workdir)
    assert resumed["resumed_at"] == 12 and resumed["steps"] == 24
    assert resumed["params_sha256"] == straight["params_sha256"]
    assert resumed["final_metrics"]["test/accuracy"] == straight["final_metrics"]["test/accuracy"]
    steps = [json.loads(x)["step"] for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps), "lines after the checkpoint must not be logged twice"


def test_running_a_finished_run_again_changes_nothing(straight_run):
    config, workdir, summary = straight_run
    before = (workdir / "summary.json").read_text()
    assert _train(config, workdir) == summary
    assert (workdir / "summary.json").read_text() == before


def test_metrics_equal_on_one_and_eight_devices(tmp_path):
    overrides = ["--config.train.steps=16", "--config.train.batch_size=32",
                 "--config.eval.every_steps=16", "--config.checkpoint.every_steps=16",
                 "--config.schedule.warmup_steps=2", "--config.train.log_every_steps=16"]
    summaries = {}
    for devices in (1, 8):
        workdir = tmp_path / f"dev{devices}"
        result = run_launch("train", f"--workdir={workdir}", *overrides, devices=devices)
        assert result.returncode == 0, result.stderr[-2000:]
        summaries[devices] = json.loads((workdir / "summary.json").read_text())
    assert summaries[1]["devices"] == 1 and summaries[8]["devices"] == 8
    one, eight = summaries[1]["final_metrics"], summaries[8]["final_metrics"]
    assert one.keys() == eight.keys()
    for name in one:
        assert eight[name] == pytest.approx(one[name], abs=1e-5), name
