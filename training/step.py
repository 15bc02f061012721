"""The pure train and eval steps: `step(state, batch) -> (state, metric sums)`.

They are written for one global batch; `training.mesh` compiles them once with the batch
sharded over the `data` axis, so XLA inserts the cross-device reductions (BatchNorm statistics
included) and the maths is the same on 1 or N devices.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from training import metrics
from training.state import ModelDefs, TrainState

# Hook for on-device augmentation: (images, labels, key) -> (images, soft or int labels).
DeviceAugment = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def cross_entropy(logits: jax.Array, labels: jax.Array, num_classes: int,
                  label_smoothing: float) -> jax.Array:
    """Per-example cross-entropy; `labels` are class ids, smoothed here, or probability vectors
    (mixed batches), which arrive already smoothed."""
    if labels.ndim == 1:
        labels = jax.nn.one_hot(labels, num_classes)
        labels = optax.smooth_labels(labels, label_smoothing) if label_smoothing else labels
    return optax.softmax_cross_entropy(logits, labels)


def _aux_logits(sown: nnx.State) -> list[jax.Array]:
    """Logits the model sowed as `aux_logits` (GoogLeNet's auxiliary heads), if any."""
    return [leaf for path, leaf in jax.tree.leaves_with_path(sown)
            if any(getattr(k, "key", None) == "aux_logits" for k in path)]


def make_train_step(defs: ModelDefs, tx: optax.GradientTransformation, *, num_classes: int,
                    label_smoothing: float = 0.0, aux_loss_weight: float = 0.3,
                    device_augment: DeviceAugment | None = None):
    def loss_fn(model: nnx.Module, images, labels):
        logits, sown = nnx.capture(model, nnx.Intermediate)(images)
        per_example = cross_entropy(logits, labels, num_classes, label_smoothing)
        loss = jnp.mean(per_example)
        for aux in _aux_logits(sown):
            loss += aux_loss_weight * jnp.mean(
                cross_entropy(aux, labels, num_classes, label_smoothing))
        return loss, (logits, per_example)

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(jax.random.wrap_key_data(state.root_key), state.step)
        aug_key, dropout_key = jax.random.split(key)
        images, labels = batch["image"], batch["label"]
        if device_augment is not None:
            images, labels = device_augment(images, labels, aug_key)
        model = nnx.merge(defs.train, state.params, state.batch_stats, state.rest)
        nnx.reseed(model, dropout=dropout_key)  # this step's masks depend on (root, step) only
        # nnx.value_and_grad (not jax's): it carries the module's in-place updates (BatchNorm
        # statistics, RNG counters) across the differentiation trace.
        grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
        (_, (logits, per_example)), grads = grad_fn(model, images, labels)
        batch_stats = nnx.state(model, nnx.BatchStat)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        hard_labels = labels if labels.ndim == 1 else jnp.argmax(labels, axis=-1)
        sums = metrics.classification_sums(logits, hard_labels, per_example,
                                           jnp.ones_like(hard_labels))
        new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                                  opt_state=opt_state)
        return new_state, sums

    return step


def make_eval_step(defs: ModelDefs, *, num_classes: int):
    def step(state: TrainState, batch: dict) -> dict:
        model = nnx.merge(defs.eval, state.params, state.batch_stats, state.rest)
        logits = model(batch["image"])
        per_example = cross_entropy(logits, batch["label"], num_classes, 0.0)
        return metrics.classification_sums(logits, batch["label"], per_example, batch["mask"])

    return step
