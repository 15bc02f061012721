"""Sweeps: overrides are checked before any run, results aggregate over seeds exactly, and a
finished run is recognised (so a stopped sweep continues)."""

import json
import os

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
    row = table["augment="]
    assert row["seeds"] == [0, 1, 2]
    assert row["test/accuracy"]["mean"] == pytest.approx(0.92)
    assert row["test/accuracy"]["std"] == pytest.approx(0.02)
    assert table["augment=flip_lr"]["test/accuracy"] == {"mean": 0.8, "n": 1, "std": 0.0}


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


# --- variants, names, execution -----------------------------------------------------------------

def test_grid_zipped_and_seeds_expand_exactly():
    assert sweep.seeds(3) == [{"seed": 0}, {"seed": 1}, {"seed": 2}]
    assert sweep.grid({"model.act": ["relu", "elu"], "model.pool": ["max", "avg"]}) == [
        {"model.act": "relu", "model.pool": "max"}, {"model.act": "relu", "model.pool": "avg"},
        {"model.act": "elu", "model.pool": "max"}, {"model.act": "elu", "model.pool": "avg"}]
    pairs = sweep.zipped({"optimizer.name": ["sgd", "adam"], "optimizer.lr": [0.1, 1e-3]})
    assert pairs == [{"optimizer.name": "sgd", "optimizer.lr": 0.1},
                     {"optimizer.name": "adam", "optimizer.lr": 1e-3}]
    assert sweep.grid(pairs, sweep.seeds(2)) == [
        {"optimizer.name": "sgd", "optimizer.lr": 0.1, "seed": 0},
        {"optimizer.name": "sgd", "optimizer.lr": 0.1, "seed": 1},
        {"optimizer.name": "adam", "optimizer.lr": 1e-3, "seed": 0},
        {"optimizer.name": "adam", "optimizer.lr": 1e-3, "seed": 1}]
    with pytest.raises(ValueError, match="equally many"):
        sweep.zipped({"a": [1, 2], "b": [1]})


def test_run_names_are_short_unless_fields_share_a_last_name():
    assert sweep.run_name({"model.act": "relu", "seed": 1}) == "act=relu,seed=1"
    assert (sweep.run_name({"optimizer.name": "sgd", "schedule.name": "step",
                            "schedule.boundaries": (150, 225)})
            == "optimizer.name=sgd,schedule.name=step,boundaries=150-225")
    assert sweep.variant_name({"model.act": "relu", "seed": 1}) == "act=relu"


def test_slots_split_the_cores_between_parallel_runs():
    import os

    from training import sweep_exec

    cores = sorted(os.sched_getaffinity(0))
    slots = sweep_exec.resource_slots(2)
    if len(cores) >= 2:
        assert not set(slots[0]["cores"]) & set(slots[1]["cores"])
    assert all(s["env"]["OMP_NUM_THREADS"] == str(len(s["cores"])) for s in slots)


TINY_SWEEP = '''
from experiments.lenet5_digits import get_config as default_config


def get_config():
    c = default_config()
    c.data.device_augment = ""
    c.train.steps = 8
    c.train.batch_size = 32
    c.train.log_every_steps = 4
    c.eval.every_steps = 4
    c.eval.batch_size = 64
    c.checkpoint.every_steps = 4
    c.schedule.warmup_steps = 0
    return c


def get_sweep():
    return [{"train.steps": 4, "seed": 0}, {"train.steps": 8, "seed": 0},
            {"train.steps": 8, "seed": 1}, {"model.act": "no_such_activation", "seed": 0}]
'''


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"),
                    reason="four runs, then four submitit processes (.ci/run runs it)")
def test_interrupted_sweep_skips_finished_resumes_the_rest_and_survives_a_failure(tmp_path):
    """Four runs, stopped at step 4 as if preempted: the 4-step run finishes, two stop half
    way, one fails without stopping the others. The rerun (through submitit's local executor,
    the SLURM path without a cluster) skips the finished run and resumes the two others."""
    from training import sweep_exec

    experiment = tmp_path / "tiny_sweep.py"
    experiment.write_text(TINY_SWEEP)
    root = tmp_path / "sweep"
    argv = ["--config", str(experiment), "--workdir", str(root)]
    assert sweep.main([*argv, "--stop_after", "4"]) == 1  # the failing run
    statuses = json.loads((root / "sweep.json").read_text())["statuses"]
    assert [s["status"] for s in statuses.values()] == ["done", "stopped", "stopped", "failed"]
    assert "no_such_activation" in statuses["act=no_such_activation,seed=0"]["error"]
    manifest = sweep.read_manifest(root)
    assert [r["name"] for r in manifest["runs"]] == list(statuses)
    assert manifest["command"] and "git_commit" in manifest

    # The rerun, as `sweep.main` would do it with --executor slurm on a cluster.
    sweep.write_manifest(root, str(experiment), manifest["train_argv"], manifest["runs"],
                         manifest["metric"], stop_after=None)
    names = [r["name"] for r in manifest["runs"]]
    outcomes = sweep_exec.submit(root, names, cluster="local", parallel=4)
    assert [outcomes[n]["status"] for n in names] == ["skipped", "done", "done", "failed"]
    for name in names[1:3]:
        summary = json.loads((root / name / "summary.json").read_text())
        assert summary["steps"] == 8 and summary["resumed_at"] == 4
