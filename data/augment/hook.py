"""The train step's augmentation hook: per-example ops on device, then MixUp/CutMix.

Built from `data.device_augment` (an op spec, as `data.augment` but run in the compiled step)
and `train.mix` / `train.mix_alpha`. Mixed labels come back as smoothed probability vectors, so
the step applies `train.label_smoothing` only to integer labels.
"""

from __future__ import annotations

import jax
import ml_collections

from training.step import DeviceAugment


def build(c: ml_collections.ConfigDict, num_classes: int) -> DeviceAugment | None:
    spec, mix = c.data.device_augment, c.train.mix
    if (not spec or spec == "none") and mix == "none":
        return None
    from data import augment  # only when asked for: the op registry is not needed otherwise

    per_example = augment.device_pipeline(spec) if spec and spec != "none" else None

    def hook(images: jax.Array, labels: jax.Array, key: jax.Array):
        op_key, mix_key = jax.random.split(key)
        if per_example is not None:
            images = per_example(images, op_key)
        if mix != "none":
            images, labels = augment.mix_batch(images, labels, mix_key, mix, c.train.mix_alpha,
                                               num_classes, c.train.label_smoothing)
        return images, labels

    return hook
