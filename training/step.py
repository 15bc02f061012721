"""The pure train and eval steps of a one-model task: `step(state, batch) -> (state, metric sums)`.

They are written for one global batch; `training.mesh` compiles them once with the batch
sharded over the `data` axis, so XLA inserts the cross-device reductions (BatchNorm statistics
included) and the maths is the same on 1 or N devices. What is learned comes from the task
(tasks/base.py): its device augmentation, loss, eval outputs and metric sums.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from data.augment.hook import DeviceAugment, step_key
from tasks.base import Task
from training.state import ModelDefs, TrainState


def make_task_train_step(defs: ModelDefs, tx: optax.GradientTransformation, task: Task):
    augment = task.device_augment()

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        aug_key, dropout_key = step_key(state.root_key, state.step)
        task_key = jax.random.fold_in(dropout_key, 1)  # the task's own draws (corruptions)
        if augment is not None:
            batch = augment(batch, aug_key)
        model = nnx.merge(defs.train, state.params, state.batch_stats, state.rest)
        nnx.reseed(model, dropout=dropout_key)  # this step's masks depend on (root, step) only
        # nnx.value_and_grad (not jax's): it carries the module's in-place updates (BatchNorm
        # statistics, RNG counters) across the differentiation trace.
        grad_fn = nnx.value_and_grad(task.loss, has_aux=True)
        (_, outputs), grads = grad_fn(model, batch, task_key)
        batch_stats = nnx.state(model, nnx.BatchStat)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        first = jax.tree.leaves(batch)[0]
        sums = task.metric_sums(outputs, batch, jnp.ones(first.shape[0], jnp.int32))
        new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                                  opt_state=opt_state)
        return new_state, sums

    return step


def make_task_eval_step(defs: ModelDefs, task: Task):
    def step(state: TrainState, batch: dict) -> dict:
        model = nnx.merge(defs.eval, state.params, state.batch_stats, state.rest)
        return task.metric_sums(task.eval_outputs(model, batch), batch, batch["mask"])

    return step


def make_outputs_fn(defs: ModelDefs, task: Task):
    """`(state, batch) -> outputs` of the eval-mode model, jitted: pictures and predictions."""

    def outputs(state: TrainState, batch: dict):
        model = nnx.merge(defs.eval, state.params, state.batch_stats, state.rest)
        return task.eval_outputs(model, batch)

    return jax.jit(outputs)


# A classifier's steps by their pre-task signature (callers and tests that build a classifier
# step directly, without a config).

def _classifier(num_classes: int, label_smoothing: float = 0.0, aux_loss_weight: float = 0.3,
                device_augment: DeviceAugment | None = None):
    from ml_collections import ConfigDict

    from data.inputs import DataInfo
    from tasks.classification import Classification

    c = ConfigDict({"train": {"label_smoothing": label_smoothing,
                              "aux_loss_weight": aux_loss_weight}})
    info = DataInfo(name="", num_classes=num_classes, in_channels=0)
    return Classification(c, info, device_hook=device_augment)


def make_train_step(defs: ModelDefs, tx: optax.GradientTransformation, *, num_classes: int,
                    label_smoothing: float = 0.0, aux_loss_weight: float = 0.3,
                    device_augment: DeviceAugment | None = None):
    task = _classifier(num_classes, label_smoothing, aux_loss_weight, device_augment)
    return make_task_train_step(defs, tx, task)


def make_eval_step(defs: ModelDefs, *, num_classes: int):
    return make_task_eval_step(defs, _classifier(num_classes))
