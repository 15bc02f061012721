"""PIL-style pixel ops that RandAugment and TrivialAugment use: the AutoAugment op list's
ImageOps/ImageEnhance members (autocontrast, equalize, solarize, posterize, color, contrast,
brightness, sharpness), on float images in [0, 1].

Each is plain xp maths that both twins share (only solarize exists in dm-pix, and it is a
one-line `where`). They follow PIL rather than the jitter ops in colour.py on purpose: the
policies' magnitudes were tuned for PIL's definitions (e.g. Color blends with the greyscale
image; Contrast stretches about the grey image's mean, one value for all channels).
"""

from __future__ import annotations

import numpy as np

from data.augment.colour import LUMA


def luma(xp, image):
    """The grey image, as one channel; a one-channel image is its own grey."""
    return image @ LUMA[:, None] if image.shape[-1] == 3 else image


def blend(xp, degenerate, image, factor):
    """PIL ImageEnhance: degenerate + factor * (image - degenerate), clipped."""
    return xp.clip(degenerate + xp.asarray(factor, xp.float32) * (image - degenerate), 0, 1)


def color(xp, image, factor):
    return blend(xp, luma(xp, image), image, factor)


def contrast(xp, image, factor):
    return blend(xp, luma(xp, image).mean(), image, factor)


def brightness(xp, image, factor):
    return blend(xp, xp.zeros_like(image), image, factor)


def sharpness(xp, image, factor):
    """Blend with PIL's SMOOTH filter ([[1,1,1],[1,5,1],[1,1,1]] / 13); borders stay as-is."""
    h, w = image.shape[:2]
    weights = np.ones((3, 3), np.float32)
    weights[1, 1] = 5
    smooth = sum(weights[i, j] * image[i:h - 2 + i, j:w - 2 + j]
                 for i in range(3) for j in range(3)) / 13
    interior = np.zeros((h, w, 1), bool)
    interior[1:-1, 1:-1] = True
    degenerate = xp.where(interior, xp.pad(smooth, ((1, 1), (1, 1), (0, 0))), image)
    return blend(xp, degenerate, image, factor)


def solarize(xp, image, threshold):
    """Invert the pixels at or above threshold (dm_pix.solarize is this same where)."""
    return xp.where(image < threshold, image, 1 - image)


def posterize(xp, image, bits):
    """Keep the top `bits` bits of the 8-bit value (PIL ImageOps.posterize)."""
    step = xp.asarray(2.0, xp.float32) ** (8 - xp.asarray(bits, xp.float32))
    return xp.floor(_to_uint8(xp, image) / step) * step / 255


def auto_contrast(xp, image):
    """Stretch each channel to span [0, 1]; a flat channel is left alone (as PIL)."""
    low = image.min(axis=(0, 1), keepdims=True)
    span = image.max(axis=(0, 1), keepdims=True) - low
    return xp.where(span > 0, (image - low) / xp.where(span > 0, span, 1), image)


def equalize(xp, image):
    """PIL ImageOps.equalize per channel on the 8-bit values (the TF/timm formulation)."""
    h, w, c = image.shape
    q = _to_uint8(xp, image).astype(xp.int32).reshape(h * w, c)
    hist = _bincount(xp, (q + 256 * xp.arange(c)).reshape(-1), 256 * c).reshape(c, 256)
    top = xp.take_along_axis(hist, q.max(axis=0)[:, None], axis=1)[:, 0]
    step = (hist.sum(axis=1) - top) // 255
    below = xp.cumsum(hist, axis=1) - hist     # pixels strictly darker than each level
    lut = xp.clip((below + step[:, None] // 2) // xp.maximum(step, 1)[:, None], 0, 255)
    out = xp.take_along_axis(lut, q.T, axis=1).T.reshape(h, w, c) / 255
    return xp.where(step > 0, out, image).astype(xp.float32)


def _to_uint8(xp, image):
    return xp.round(xp.clip(image, 0, 1) * 255)


def _bincount(xp, values, length):
    if xp is np:
        return np.bincount(values, minlength=length)
    return xp.bincount(values, length=length)
