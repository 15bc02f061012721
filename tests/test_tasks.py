"""The Task seam: a task of the test's own making trains through the generic step; what a task
implies (its metric names, the network's output) is checked before anything is written."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import tasks
from errors import UserError
from models.registry import OUTPUTS
from tests.helpers import run_launch
from training import config as config_lib, mesh as mesh_lib, step as step_lib
from training import state as state_lib


class MeanBrightness(tasks.Task):
    """Regress each image's mean pixel: the smallest task that is not classification."""

    name, model_output = "mean_brightness", "class_logits"

    def metric_names(self):
        return ["loss", "abs_error"]

    def loss(self, model, batch, key):
        pred = model(batch["image"])[:, 0]
        per_example = (pred - batch["target"]) ** 2
        return jnp.mean(per_example), {"pred": pred, "per_example": per_example}

    def eval_outputs(self, model, batch):
        return self.loss(model, batch, None)[1]

    def metric_sums(self, outputs, batch, mask):
        w = mask.astype(jnp.float32)
        return {"loss": jnp.sum(outputs["per_example"] * w),
                "abs_error": jnp.sum(jnp.abs(outputs["pred"] - batch["target"]) * w),
                "count": jnp.sum(w)}


class Regressor(nnx.Module):
    def __init__(self, rngs):
        self.dense = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.dense(x.reshape(x.shape[0], -1))


def test_a_task_of_its_own_trains_through_the_generic_step():
    c = config_lib.base_config()
    task = MeanBrightness(c, tasks.DataInfo(name="toy", num_classes=None, in_channels=1))
    tx = optax.adam(0.05)
    defs, state = state_lib.create(Regressor(nnx.Rngs(0)), tx, seed=0)
    mesh = mesh_lib.make_mesh()
    train = mesh_lib.compile_train_step(step_lib.make_task_train_step(defs, tx, task), mesh)
    evaluate = mesh_lib.compile_eval_step(step_lib.make_task_eval_step(defs, task), mesh)
    images = np.random.default_rng(0).random((16, 4, 4, 1), np.float32)
    batch = {"image": images, "target": images.mean(axis=(1, 2, 3))}
    state = mesh_lib.put_state(state, mesh)
    first = task.finalize(evaluate(state, mesh_lib.global_batch({**batch, "mask": np.ones(16)},
                                                                mesh)))
    for _ in range(60):
        state, sums = train(state, mesh_lib.global_batch(batch, mesh))
    last = task.finalize(evaluate(state, mesh_lib.global_batch({**batch, "mask": np.ones(16)},
                                                               mesh)))
    assert set(last) == {"loss", "abs_error"} and int(state.step) == 60
    assert last["loss"] < first["loss"] / 10


def test_padding_never_counts_in_a_task_metric():
    c = config_lib.base_config()
    task = MeanBrightness(c, tasks.DataInfo(name="toy", num_classes=None, in_channels=1))
    outputs = {"pred": jnp.array([1.0, 2.0, 50.0]), "per_example": jnp.array([1.0, 4.0, 99.0])}
    sums = task.metric_sums(outputs, {"target": jnp.zeros(3)}, jnp.array([1, 1, 0]))
    assert task.finalize(sums) == {"loss": 2.5, "abs_error": 1.5}


def test_every_registered_task_is_importable_and_names_its_metric():
    for name in tasks.TASKS:
        cls = tasks.task_class(name)
        assert cls.name == name and cls.model_output in OUTPUTS
    with pytest.raises(UserError, match="unknown task.name 'segmentaton'"):
        tasks.task_class("segmentaton")


@pytest.mark.parametrize("args,expected", [
    (["--config.checkpoint.best_metric=test/miou"],
     "checkpoint.best_metric 'test/miou' is not a metric this run reports"),
    (["--config.task.name=segmentation", "--config.data.name=digits"],
     "task segmentation needs per-pixel labels"),
    (["--config.task.name=nope"], "unknown task.name 'nope'"),
])
def test_a_task_mismatch_is_one_line_before_anything_is_written(args, expected, tmp_path):
    workdir = tmp_path / "run"
    result = run_launch("train", f"--workdir={workdir}", *args)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
    assert not workdir.exists()


def test_a_classifier_given_to_an_image_task_names_both(tmp_path):
    from data import inputs
    from training import loop

    c = config_lib.base_config()
    c.task.name = "autoencoder"
    task = loop.build_task(c, inputs.open_data(c, train=False))
    with pytest.raises(UserError, match="model 'lenet5' outputs class_logits but task "
                                        "autoencoder needs image"):
        loop.build_model(c, task)


def test_another_eval_prefix_names_the_best_checkpoint_metric(tiny_config, tmp_path):
    """`eval.prefix=val` once crashed at the second checkpoint looking for test/accuracy."""
    from training import loop

    tiny_config.eval.prefix = "val"
    summary = loop.train(tiny_config, tmp_path / "val", show_progress=False)
    assert "val/accuracy" in summary["final_metrics"]
    assert not any(k.startswith("test/") for k in summary["final_metrics"])
