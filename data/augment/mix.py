"""MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019): batch-level, on device, in the step.

Each pairs every example with another from the same batch (a random permutation) and mixes
images and labels with one lambda ~ Beta(alpha, alpha) for the batch, as both papers do. For
CutMix the label weight is recomputed from the pasted box after clipping to the image: it is
the exact fraction of pixels that came from each example, not the drawn lambda.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from errors import UserError

KINDS = ("none", "mixup", "cutmix")


def soft_labels(labels: jax.Array, num_classes: int, label_smoothing: float = 0.0) -> jax.Array:
    """Integer labels (B,) or one-hot / soft labels (B, K) -> smoothed float32 (B, K)."""
    if labels.ndim == 1:
        labels = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    return optax.smooth_labels(labels.astype(jnp.float32), label_smoothing)


def mix_lambda(key: jax.Array, alpha: float) -> jax.Array:
    """lambda ~ Beta(alpha, alpha) = G1 / (G1 + G2) with G ~ Gamma(alpha), from log-gammas.

    The same law as jax.random.beta, stable for small alpha likewise, but one gamma draw of
    shape (2,) instead of two: a gamma sampler is a rejection loop, slow to compile.
    """
    log_g = jax.random.loggamma(key, jnp.full((2,), alpha, jnp.float32))
    return jax.nn.sigmoid(log_g[0] - log_g[1])


def cutmix_box(key: jax.Array, height: int, width: int, lam: jax.Array) -> jax.Array:
    """(H, W) bool mask of a box of about (1 - lam) of the area, centred on a uniform pixel.

    The box may hang over the border; the mask clips it, which is why the caller measures the
    pasted area from the mask rather than trusting lam.
    """
    k_y, k_x = jax.random.split(key)
    cut = jnp.sqrt(1 - lam)
    box_h, box_w = (cut * height).astype(jnp.int32), (cut * width).astype(jnp.int32)
    top = jax.random.randint(k_y, (), 0, height) - box_h // 2
    left = jax.random.randint(k_x, (), 0, width) - box_w // 2
    rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
    return (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)


def mix_batch(images: jax.Array, labels: jax.Array, key: jax.Array, kind: str, alpha: float,
              num_classes: int, label_smoothing: float = 0.0) -> tuple[jax.Array, jax.Array]:
    """(mixed images NHWC, soft labels (B, K)); kind 'none' (or alpha <= 0) only smooths labels."""
    if kind not in KINDS:
        raise UserError(f"unknown batch mixing {kind!r}; choose one of {', '.join(KINDS)}")
    targets = soft_labels(labels, num_classes, label_smoothing)
    if kind == "none" or alpha <= 0:
        return images, targets
    k_lam, k_perm, k_box = jax.random.split(key, 3)
    lam = mix_lambda(k_lam, alpha)
    partner = jax.random.permutation(k_perm, images.shape[0])
    if kind == "mixup":
        mixed = lam.astype(images.dtype) * images + (1 - lam).astype(images.dtype) * images[partner]
    else:
        box = cutmix_box(k_box, images.shape[1], images.shape[2], lam)
        mixed = jnp.where(box[None, :, :, None], images[partner], images)
        lam = 1 - box.sum(dtype=jnp.float32) / (images.shape[1] * images.shape[2])
    return mixed, lam * targets + (1 - lam) * targets[partner]
