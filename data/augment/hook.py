"""The train step's classification augmentation: per-example ops on device, then MixUp/CutMix,
and the key the step gives it.

Built from an op spec (as `data.augment`, but run in the compiled step) and a batch mix. Mixed
labels come back as smoothed probability vectors, so the step applies label smoothing only to
integer labels. `step_key` is the one place the step's augmentation key is derived, so that
`launch.py show-data` shows exactly what step 0 trains on.
"""

from __future__ import annotations

from typing import Callable

import jax

# (images, labels, key) -> (images, soft or int labels)
DeviceAugment = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def step_key(root_key_data: jax.Array, step) -> tuple[jax.Array, jax.Array]:
    """(augmentation key, dropout key) of train step `step` (DESIGN.md §3)."""
    key = jax.random.fold_in(jax.random.wrap_key_data(root_key_data), step)
    aug_key, dropout_key = jax.random.split(key)
    return aug_key, dropout_key


def build(spec: str, mix: str, mix_alpha: float, num_classes: int,
          label_smoothing: float) -> DeviceAugment | None:
    if (not spec or spec == "none") and mix == "none":
        return None
    from data import augment  # only when asked for: the op registry is not needed otherwise

    per_example = augment.device_pipeline(spec) if spec and spec != "none" else None

    def hook(images: jax.Array, labels: jax.Array, key: jax.Array):
        op_key, mix_key = jax.random.split(key)
        if per_example is not None:
            images = per_example(images, op_key)
        if mix != "none":
            images, labels = augment.mix_batch(images, labels, mix_key, mix, mix_alpha,
                                               num_classes, label_smoothing)
        return images, labels

    return hook
