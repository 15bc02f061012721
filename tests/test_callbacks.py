"""Callbacks: early stopping and reduce-on-plateau act on scripted metric sequences exactly as
specified; the validation split is fixed and disjoint from train; a run stopped mid-patience
resumes to the same stop and the same weights, which `launch.py reproduce` confirms."""

import json
import os

import jax.numpy as jnp
import optax
import pytest

from errors import UserError
from training import callbacks, config as config_lib, optim


def _feed(stopper, values, first_step=1):
    for step, value in enumerate(values, first_step):
        stopper.update(step, {"val/accuracy": value})
        if stopper.stopped:
            break
    return stopper


def test_early_stopping_follows_patience_and_min_delta():
    # 0.605 and 0.61 do not beat the best 0.6 by more than 0.01: two misses, stop at step 4.
    stopper = _feed(callbacks.EarlyStopping("val/accuracy", "max", patience=2, min_delta=0.01),
                    [0.5, 0.6, 0.605, 0.61, 0.9])
    assert (stopper.stopped_at, stopper.best_step, stopper.best) == (4, 2, 0.6)
    low = _feed(callbacks.EarlyStopping("val/loss", "min", patience=1), [])
    for step, value in enumerate([1.0, 0.5, 0.5], 1):
        low.update(step, {"val/loss": value})
    assert (low.stopped_at, low.best_step) == (3, 2)
    assert not _feed(callbacks.EarlyStopping("val/accuracy", "max"), [0.1] * 9).stopped  # off


def test_early_stopping_resumed_mid_patience_stops_where_it_would_have():
    values = [0.5, 0.6, 0.605, 0.61, 0.9]
    first = _feed(callbacks.EarlyStopping("val/accuracy", "max", patience=2, min_delta=0.01),
                  values[:3])
    assert first.wait == 1 and not first.stopped
    saved = json.loads(json.dumps(callbacks.pack({"pos": 3}, first)))  # as the checkpoint does
    resumed = callbacks.EarlyStopping("val/accuracy", "max", patience=2, min_delta=0.01)
    assert callbacks.unpack(saved, resumed) == {"pos": 3}
    _feed(resumed, values[3:], first_step=4)
    assert (resumed.stopped_at, resumed.best_step, resumed.wait) == (4, 2, 2)
    assert callbacks.unpack({"pos": 3}, resumed) == {"pos": 3}  # a checkpoint from before


def test_plateau_scales_the_scheduled_updates_on_a_scripted_loss():
    c = config_lib.base_config()
    c.optimizer.name, c.optimizer.lr, c.optimizer.momentum = "sgd", 1.0, 0.0
    c.schedule.name = "constant"
    c.plateau.patience, c.plateau.every_steps, c.plateau.factor = 1, 2, 0.5
    tx = optim.make_optimizer(c)
    params = {"w": jnp.ones(())}
    state = tx.init(params)
    scales = []
    # Windows of two steps, mean loss 4, 3, 3, 2, 2, 2: improvements at windows 1, 2 and 4;
    # each other window is a plateau of patience 1, so the lr halves at its last step.
    for loss in [4, 4, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2]:
        updates, state = tx.update(params, state, params, value=jnp.float32(loss))
        scales.append(-float(updates["w"]))
    assert scales == [1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125]
    assert callbacks.lr_scale(state) == {"train/lr_scale": 0.125}
    c.plateau.patience = 0
    assert callbacks.lr_scale(optim.make_optimizer(c).init(params)) == {}


def test_validation_split_is_fixed_disjoint_and_seed_independent():
    train, val = callbacks.split_indices(100, 0.1)
    assert len(val) == 10 and len(train) == 90 and not set(train) & set(val)
    assert (callbacks.split_indices(100, 0.1)[1] == val).all()
    subset = callbacks.Subset(list(range(100, 200)), val)
    assert [subset[i] for i in range(len(subset))] == [100 + int(i) for i in val]
    with pytest.raises(ValueError, match="val_split"):
        callbacks.split_indices(5, 0.01)


def test_early_stopping_needs_a_validation_split():
    c = config_lib.base_config()
    c.early_stopping.patience = 3
    with pytest.raises(UserError, match="val_split"):
        config_lib.validate(c, 1)
    c.data.val_split = 0.1
    config_lib.validate(c, 1)
    c.checkpoint.best_metric = "test/accuracy"
    with pytest.raises(UserError, match="val/ metric"):
        config_lib.validate(c, 1)


@pytest.fixture
def early_stopping_config(tiny_config):
    c = tiny_config
    c.data.device_augment = ""
    c.data.val_split = 0.1
    c.train.steps = 12
    c.train.log_every_steps = 2
    c.eval.every_steps = c.checkpoint.every_steps = 2
    c.schedule.warmup_steps = 0
    # No evaluation beats the first by 10: best at step 2, misses at 4 and 6, stop at 6.
    c.early_stopping.patience, c.early_stopping.min_delta = 2, 10.0
    # No window beats the first by 90% (rtol): the lr halves every window of 2 steps after it.
    c.plateau.patience, c.plateau.every_steps, c.plateau.rtol = 1, 2, 0.9
    return c


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="three short runs (.ci/run runs it)")
def test_run_stopped_mid_patience_resumes_exactly_and_reproduces(early_stopping_config, tmp_path):
    from training import loop, reproduce_cli

    workdir = tmp_path / "run"
    loop.train(early_stopping_config, workdir, stop_after=4, show_progress=False)  # wait = 1
    summary = loop.train(early_stopping_config, workdir, show_progress=False)
    assert summary["resumed_at"] == 4 and summary["early_stopped"]
    assert (summary["stopped_at"], summary["best_step"], summary["steps"]) == (6, 2, 6)
    assert {"val/accuracy", "test/accuracy"} <= set(summary["final_metrics"])
    logged = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert max(row["step"] for row in logged) == 6
    assert [row["train/lr_scale"] for row in logged if "train/lr_scale" in row] == [
        1.0, 0.5, 0.25]
    # The uninterrupted rerun stops at the same step with the same (best) weights.
    result = reproduce_cli.reproduce(workdir, tmp_path / "again")
    assert result["match"], result
