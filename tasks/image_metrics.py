"""Image-quality (PSNR, SSIM) and segmentation (confusion matrix, IoU) metrics, as sums.

Scenic's rule, as in `training/metrics.py`: a jitted step returns sums over the examples it saw,
with padded examples masked out, and the host divides once after summing over steps and devices.

Images are (B, H, W, C) floats in [0, data_range]. All images of a batch share one shape for now;
variable-size eval images (padded into one batch with a per-pixel mask) may come in a later
version. The protocol is the super-resolution papers': optionally shave `border` pixels (the
scale, usually), evaluate the BT.601 luma Y of colour images, and average per-image values.
"""

from __future__ import annotations

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

IGNORE_LABEL = 255


def rgb_to_y(images: jax.Array) -> jax.Array:
    """BT.601 studio-range luma, as MATLAB's rgb2ycbcr: Y in [16/255, 235/255] for RGB in [0, 1].

    A 1-channel input is returned as is. Written as multiply-adds rather than a matmul so that no
    TF32 matmul precision on GPUs can change the result.
    """
    if images.shape[-1] == 1:
        return images
    r, g, b = images[..., 0:1], images[..., 1:2], images[..., 2:3]
    return (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def shave(images: jax.Array, border: int) -> jax.Array:
    """Crop `border` pixels from each side of (..., H, W, C) images."""
    if border == 0:
        return images
    return images[..., border:-border, border:-border, :]


def _prepare(pred, target, data_range, border, y_channel):
    # Clip the prediction: the papers evaluate saved images, whose values lie in range. We do not
    # also round to 8 bits, which would add an MSE of about 1/(12 * 255^2) = 1.3e-6 (range 1):
    # ~0.005 dB at 30 dB PSNR, ~0.05 dB at 40 dB.
    pred = jnp.clip(pred.astype(jnp.float32), 0.0, data_range)
    target = target.astype(jnp.float32)
    if y_channel:  # rgb_to_y takes [0, 1]
        pred = rgb_to_y(pred / data_range) * data_range
        target = rgb_to_y(target / data_range) * data_range
    return shave(pred, border), shave(target, border)


def psnr_sums(pred: jax.Array, target: jax.Array, mask: jax.Array, *, data_range: float = 1.0,
              border: int = 0, y_channel: bool = True) -> tuple[jax.Array, jax.Array]:
    """(sum of per-image PSNR in dB over unmasked images, their count).

    The mean is of per-image PSNR, as the SR papers report it, not PSNR of the mean MSE. An image
    identical to its target has infinite PSNR, as in skimage. `mask` is (B,), 1 for real images.
    """
    pred, target = _prepare(pred, target, data_range, border, y_channel)
    mse = jnp.mean((pred - target) ** 2, axis=(1, 2, 3))
    psnr = 10.0 * jnp.log10(data_range**2 / mse)
    mask = mask.astype(bool)
    return jnp.sum(jnp.where(mask, psnr, 0.0)), jnp.sum(mask.astype(jnp.float32))  # where: 0*inf


def ssim_sums(pred: jax.Array, target: jax.Array, mask: jax.Array, *, border: int = 0,
              y_channel: bool = True) -> tuple[jax.Array, jax.Array]:
    """(sum of per-image SSIM over unmasked images, their count), images in [0, 1].

    SSIM of Wang et al. 2004: 11x11 Gaussian window of sigma 1.5, K1=0.01, K2=0.03, L=1, over
    valid windows only, averaged per image (and over channels when y_channel is False). This is
    exactly skimage's `structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1.0)`, which filters with an 11-tap window (truncate
    3.5) and crops the 5 border pixels that padding touched before averaging. We use `pix.ssim`:
    checked against skimage, it agrees within 2e-6 on random, smooth and near-constant images in
    float32 (its variance clipping only acts on round-off), see tests/test_image_metrics.py.
    """
    pred, target = _prepare(pred, target, 1.0, border, y_channel)
    ssim = pix.ssim(pred, target, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03)
    mask = mask.astype(bool)
    return jnp.sum(jnp.where(mask, ssim, 0.0)), jnp.sum(mask.astype(jnp.float32))


def confusion_matrix(pred_ids: jax.Array, label_ids: jax.Array, mask: jax.Array,
                     num_classes: int) -> jax.Array:
    """(K, K) int32 pixel counts, row = true label, column = prediction, over unmasked pixels.

    `mask` is per image (B,) or per pixel (B, H, W). Pixels labelled 255 (the VOC/Cityscapes
    "void"), or with a label outside [0, K), are ignored. One scatter-add of integer counts, so
    sums over batches and devices are exact; accumulate on the host in int64 for very large sets.
    """
    k = num_classes
    if mask.ndim == 1:
        mask = jnp.broadcast_to(mask.reshape(-1, *([1] * (label_ids.ndim - 1))), label_ids.shape)
    valid = (mask.astype(bool) & (label_ids != IGNORE_LABEL) & (label_ids >= 0) & (label_ids < k)
             & (pred_ids >= 0) & (pred_ids < k))
    index = jnp.where(valid, label_ids * k + pred_ids, 0).ravel()
    counts = jnp.zeros(k * k, jnp.int32).at[index].add(valid.ravel().astype(jnp.int32))
    return counts.reshape(k, k)


def segmentation_scores(confusion, class_names) -> dict[str, float]:
    """pixel_accuracy, miou and iou/<name> from a summed confusion matrix, in NumPy on the host.

    IoU = TP / (TP + FP + FN). A class absent from both labels and predictions has no IoU (NaN)
    and is left out of the mIoU, the common convention (a class that is predicted but never in
    the labels counts, with IoU 0).
    """
    c = np.asarray(jax.device_get(confusion), np.float64)
    tp = np.diag(c)
    union = c.sum(0) + c.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        scores = {"pixel_accuracy": float(tp.sum() / c.sum()),
                  "miou": float(np.nanmean(iou)) if np.any(union > 0) else float("nan")}
    scores.update({f"iou/{name}": float(v) for name, v in zip(class_names, iou, strict=True)})
    return scores
