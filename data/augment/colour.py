"""Colour and pixel ops: brightness/contrast/saturation/hue jitter, greyscale, noise, blur.

Jitter ranges follow torchvision's ColorJitter: brightness, contrast and saturation scale by a
factor uniform in [max(0, 1-d), 1+d]; hue shifts by a fraction of the colour wheel uniform in
[-d, d]. Results are clipped to [0, 1] so the next op sees a valid image. On one-channel images
saturation, hue and greyscale are the identity (there is no colour to change). Where dm-pix has
the op, the device twin calls it and the host twin repeats its maths in NumPy.
"""

from __future__ import annotations

import dm_pix as pix
import jax.numpy as jnp
import numpy as np

from data.augment.registry import Pair, non_negative, positive, probability, register

# dm_pix.rgb_to_grayscale's rec601 weights (TensorFlow's), repeated for the NumPy twin.
LUMA = np.array([0.2989, 0.5870, 0.1140], np.float32)


def _factor(s, d):
    return s.uniform(max(0.0, 1.0 - d), 1.0 + d)


# --------------------------------------------------------------------------- brightness, contrast

def brightness(xp, image, factor):
    # By hand: dm_pix.adjust_brightness adds a delta (TF); ColorJitter and PIL (the policies'
    # Brightness) scale, which keeps black black.
    return xp.clip(image * xp.asarray(factor, xp.float32), 0, 1)


@register("brightness", host=lambda image, factor: brightness(np, image, factor),
          device=lambda image, factor: brightness(jnp, image, factor), check=non_negative)
def draw_brightness(s, shape, d: float):
    """Scale all pixels by a factor uniform in [max(0, 1-d), 1+d]."""
    return dict(factor=_factor(s, d))


def contrast_host(image, factor):
    mean = image.mean(axis=(0, 1), keepdims=True, dtype=np.float32)
    return np.clip(np.float32(factor) * (image - mean) + mean, 0, 1)


def contrast_device(image, factor):
    return jnp.clip(pix.adjust_contrast(image, factor), 0, 1)


@register("contrast", host=contrast_host, device=contrast_device, check=non_negative)
def draw_contrast(s, shape, d: float):
    """Stretch each channel about its mean (dm-pix/TF) by a factor in [max(0, 1-d), 1+d]."""
    return dict(factor=_factor(s, d))


# --------------------------------------------------------------------------- saturation, hue

def _rgb_to_hsv(r, g, b):
    """NumPy twin of dm_pix's rgb_planes_to_hsv_planes."""
    value = np.maximum(np.maximum(r, g), b)
    range_ = value - np.minimum(np.minimum(r, g), b)
    saturation = np.where(value > 0, range_ / np.where(value > 0, value, 1), 0)
    norm = 1 / (6 * np.where(range_ > 0, range_, 1))
    hue = np.where(value == g, norm * (b - r) + 2 / 6, norm * (r - g) + 4 / 6)
    hue = np.where(value == r, norm * (g - b), hue)
    hue = np.where(range_ > 0, hue, 0) + (hue < 0)
    return hue.astype(np.float32), saturation.astype(np.float32), value


def _hsv_to_rgb(hue, saturation, value):
    """NumPy twin of dm_pix's hsv_planes_to_rgb_planes."""
    dh = (hue % 1) * 6
    channel = [np.clip(np.abs(dh - 3) - 1, 0, 1), np.clip(2 - np.abs(dh - 2), 0, 1),
               np.clip(2 - np.abs(dh - 4), 0, 1)]
    return np.stack([value * (1 - saturation + saturation * d) for d in channel], axis=-1)


def saturation_host(image, factor):
    if image.shape[-1] != 3:
        return image
    h, s, v = _rgb_to_hsv(*np.moveaxis(image, -1, 0))
    return np.clip(_hsv_to_rgb(h, np.clip(s * np.float32(factor), 0, 1), v), 0, 1)


def saturation_device(image, factor):
    if image.shape[-1] != 3:
        return image
    return jnp.clip(pix.adjust_saturation(image, factor), 0, 1)


@register("saturation", host=saturation_host, device=saturation_device, check=non_negative)
def draw_saturation(s, shape, d: float):
    """Scale HSV saturation (dm-pix/TF) by a factor in [max(0, 1-d), 1+d]; RGB only."""
    return dict(factor=_factor(s, d))


def hue_host(image, delta):
    if image.shape[-1] != 3:
        return image
    h, s, v = _rgb_to_hsv(*np.moveaxis(image, -1, 0))
    return np.clip(_hsv_to_rgb((h + np.float32(delta)) % 1, s, v), 0, 1)


def hue_device(image, delta):
    if image.shape[-1] != 3:
        return image
    return jnp.clip(pix.adjust_hue(image, delta), 0, 1)


def _check_hue(d):
    if not 0 <= d <= 0.5:
        raise ValueError(f"d must be in [0, 0.5] (a fraction of the colour wheel), got {d}")


@register("hue", host=hue_host, device=hue_device, check=_check_hue)
def draw_hue(s, shape, d: float):
    """Rotate hue by a fraction of the colour wheel uniform in [-d, d]; RGB only."""
    return dict(delta=s.uniform(-d, d))


# --------------------------------------------------------------------------- greyscale

def grey_host(image):
    """NumPy twin of dm_pix.rgb_to_grayscale(keep_dims=True); one channel is already grey."""
    if image.shape[-1] != 3:
        return image
    return np.repeat(np.tensordot(image, LUMA, axes=(-1, -1))[..., None], 3, axis=-1)


def grey_device(image):
    if image.shape[-1] != 3:
        return image
    return pix.rgb_to_grayscale(image, keep_dims=True)


@register("greyscale", host=lambda image, grey: grey_host(image) if grey else image,
          device=lambda image, grey: jnp.where(grey, grey_device(image), image),
          check=probability)
def draw_greyscale(s, shape, p: float = 0.1):
    """Replace RGB by its luma (kept as 3 channels) with probability p."""
    return dict(grey=s.coin(p))


# --------------------------------------------------------------------------- noise, blur

def add_noise(xp, image, noise):
    return xp.clip(image + noise, 0, 1)


@register("gaussian_noise", host=lambda image, noise: add_noise(np, image, noise),
          device=lambda image, noise: add_noise(jnp, image, noise), check=non_negative)
def draw_gaussian_noise(s, shape, std: float):
    """Add independent N(0, std^2) noise to every pixel and channel."""
    return dict(noise=s.normal(shape) * np.float32(std))


def blur_host(image, sigma, kernel):
    """NumPy twin of dm_pix.gaussian_blur: separable, along width then height, zero padded."""
    radius = kernel // 2
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    taps = np.exp(-x ** 2 / (2 * np.float32(sigma) ** 2))
    taps = taps / taps.sum()
    h, w = image.shape[:2]
    wide = np.pad(image, ((0, 0), (radius, radius), (0, 0)))
    image = sum(t * wide[:, k:k + w] for k, t in enumerate(taps))
    tall = np.pad(image, ((radius, radius), (0, 0), (0, 0)))
    return sum(t * tall[k:k + h] for k, t in enumerate(taps)).astype(np.float32)


def blur_device(image, sigma, kernel):
    return pix.gaussian_blur(image, sigma, kernel)


def _check_blur(sigma, kernel):
    positive(sigma=sigma if isinstance(sigma, float) else sigma[0], kernel=kernel)
    if kernel % 2 == 0:
        raise ValueError(f"kernel must be odd, got {kernel}")


@register("gaussian_blur", host=blur_host, device=blur_device, check=_check_blur)
def draw_gaussian_blur(s, shape, sigma: float | Pair, kernel: int = 3):
    """Blur with a kernel x kernel Gaussian; sigma a number, or (low, high) drawn uniformly."""
    low, high = (sigma, sigma) if isinstance(sigma, float) else sigma
    return dict(sigma=s.uniform(low, high), kernel=kernel)
