"""Sweeps: overrides are checked before any run, results aggregate over seeds exactly, and a
finished run is recognised (so a stopped sweep continues)."""

import json

import pytest

from errors import UserError
from training import config as config_lib, sweep


def test_overrides_apply_to_a_copy_and_bad_ones_are_user_errors():
    base = config_lib.base_config()
    base.lock()
    changed = sweep.apply(base, {"optimizer.lr": 0.5, "seed": 3})
    assert changed.optimizer.lr == 0.5 and changed.seed == 3 and base.optimizer.lr == 1e-3
    with pytest.raises(UserError, match="optimizer.lrr"):
        sweep.apply(base, {"optimizer.lrr": 0.5})
    with pytest.raises(UserError, match="train.steps"):
        sweep.apply(base, {"train.steps": "many"})


def test_aggregate_groups_seeds_with_mean_and_sample_std():
    runs = [({"data.augment": "", "seed": s}, {"final_metrics": {"test/accuracy": a}})
            for s, a in [(0, 0.90), (1, 0.92), (2, 0.94)]]
    runs.append(({"data.augment": "flip_lr", "seed": 0}, {"final_metrics": {"test/accuracy": 0.8}}))
    reported = ("test/accuracy", "test/loss", "train/loss")
    table = {row["variant"]: row for row in sweep.aggregate(runs, reported)}
    row = table["data.augment="]
    assert row["seeds"] == [0, 1, 2]
    assert row["test/accuracy"]["mean"] == pytest.approx(0.92)
    assert row["test/accuracy"]["std"] == pytest.approx(0.02)
    assert table["data.augment=flip_lr"]["test/accuracy"] == {"mean": 0.8, "n": 1, "std": 0.0}


def test_a_run_is_finished_only_with_the_same_config_and_all_steps(tmp_path):
    config = config_lib.base_config()
    (tmp_path / "config.json").write_text(config.to_json())
    (tmp_path / "summary.json").write_text(json.dumps({"steps": config.train.steps}))
    assert sweep.is_finished(tmp_path, config)
    config.optimizer.lr = 0.2
    assert not sweep.is_finished(tmp_path, config)


def test_experiment_without_get_sweep_is_a_user_error():
    with pytest.raises(UserError, match="no get_sweep"):
        sweep.load_sweep("experiments/lenet5_digits.py")
    assert len(sweep.load_sweep("experiments/augment_digits.py")) == 9
