"""Data augmentation: ops with a host (NumPy, Grain) and a device (JAX) twin, built from a spec.

    parse("random_crop(32, pad=4)|flip_lr|cutout(8)|normalize(cifar10)") -> [OpCall, ...]
    host_pipeline(spec)(image_hwc, np_rng) -> image      # in a Grain per-example random_map
    device_pipeline(spec)(images_nhwc, key) -> images    # in the jitted step, vmapped
    host_pipeline(spec, mask_fill=0)(image, rng, mask=mask_hw) -> (image, mask)  # segmentation:
    device_pipeline(spec, mask_fill=0)(images, key, masks=masks_nhw) -> (images, masks)
                                         # geometric ops move the mask too (nearest-neighbour)
    mix_batch(images, labels, key, kind, alpha, num_classes, label_smoothing)  # MixUp/CutMix

Importing the op modules is what registers them; `names()` lists them.
"""

from data.augment import colour, erasing, geometric, normalize, policies  # noqa: F401  (register)
from data.augment.mix import mix_batch, soft_labels
from data.augment.pipeline import device_pipeline, host_pipeline
from data.augment.registry import names
from data.augment.spec import OpCall, parse, signature

__all__ = ["OpCall", "device_pipeline", "host_pipeline", "mix_batch", "names", "parse",
           "signature", "soft_labels"]
