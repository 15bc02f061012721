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
from tasks.base import GATHERED, HEALTH, Task, step_health
from training import precision
from training.health import keep_if_finite
from training.state import ModelDefs, TrainState


def make_task_train_step(defs: ModelDefs, tx: optax.GradientTransformation, task: Task, *,
                         skip_nonfinite: bool = False):
    """The step also returns its health scalars (tasks/base.py `step_health`, watched by
    training/health.py) under `HEALTH` in the sums; with `skip_nonfinite` an update whose loss
    or gradients are not finite is not applied."""
    augment = task.device_augment()
    dtype = task.c.train.get("dtype", "float32")  # compute dtype (training/precision.py)
    tx = optax.with_extra_args_support(tx)  # a bare transformation takes value= too

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        aug_key, dropout_key = step_key(state.root_key, state.step)
        task_key = jax.random.fold_in(dropout_key, 1)  # the task's own draws (corruptions)
        if augment is not None:
            batch = augment(batch, aug_key)
        # The statistics merged as a copy: the model's in-place BatchNorm updates must not reach
        # `state`, which a skipped step keeps as it was.
        stats = jax.tree.map(lambda x: x, state.batch_stats)
        model = nnx.merge(defs.train, state.params, stats, state.rest)
        nnx.reseed(model, dropout=dropout_key)  # this step's masks depend on (root, step) only
        # In float32 nnx.value_and_grad (not jax's): it carries the module's in-place updates
        # (BatchNorm statistics, RNG counters) across the differentiation trace.
        grad_fn = precision.value_and_grad(task.loss, dtype, state.loss_scale)
        (loss, outputs), grads, loss_scale = grad_fn(model, batch, task_key)
        health = step_health(loss, grads)
        batch_stats = nnx.state(model, nnx.BatchStat)
        # value=: the loss reduce-on-plateau watches (training/callbacks.py); others ignore it
        updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
        params = optax.apply_updates(state.params, updates)
        first = jax.tree.leaves(batch)[0]
        sums = task.metric_sums(outputs, batch, jnp.ones(first.shape[0], jnp.int32))
        new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                                  opt_state=opt_state)
        if skip_nonfinite:
            new_state = keep_if_finite(health, new_state, state.replace(step=state.step + 1))
        new_state = precision.skip_overflow(grads, loss_scale, new_state, state)
        return new_state, {**sums, HEALTH: health}

    return step


def make_task_eval_step(defs: ModelDefs, task: Task):
    def step(state: TrainState, batch: dict) -> dict:
        model = nnx.merge(defs.eval, state.params, state.batch_stats, state.rest)
        outputs = task.eval_outputs(model, batch)
        sums, rows = task.metric_sums(outputs, batch, batch["mask"]), task.gather(outputs, batch)
        return sums if rows is None else {**sums, GATHERED: {**rows, "mask": batch["mask"]}}

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
                device_augment: DeviceAugment | None = None, dtype: str = "float32"):
    from ml_collections import ConfigDict

    from data.inputs import DataInfo
    from tasks.classification import Classification

    c = ConfigDict({"train": {"label_smoothing": label_smoothing,
                              "aux_loss_weight": aux_loss_weight, "dtype": dtype}})
    info = DataInfo(name="", num_classes=num_classes, in_channels=0)
    return Classification(c, info, device_hook=device_augment)


def make_train_step(defs: ModelDefs, tx: optax.GradientTransformation, *, num_classes: int,
                    label_smoothing: float = 0.0, aux_loss_weight: float = 0.3,
                    device_augment: DeviceAugment | None = None, dtype: str = "float32"):
    task = _classifier(num_classes, label_smoothing, aux_loss_weight, device_augment, dtype)
    return make_task_train_step(defs, tx, task)


def make_eval_step(defs: ModelDefs, *, num_classes: int):
    return make_task_eval_step(defs, _classifier(num_classes))
