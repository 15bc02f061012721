"""Degradations for reconstruction tasks: bicubic down/up-scaling, Gaussian and masking noise,
and the BT.601 colour conversions the super-resolution and denoising papers evaluate in.

Host side, NumPy/PIL, on HWC float32 images in [0, 1]; `bicubic_resize_jax` is the device twin.

Bicubic, three implementations, all Keys' cubic with a=-0.5 widened by the scale when
downscaling (antialiasing), with pixel centres at half-integers:
- `bicubic_resize` (PIL, mode "F") and `bicubic_resize_jax` (`jax.image.resize`) both renormalise
  the kernel weights at the image border. Measured on skimage's astronaut, chelsea and coffee
  photos at scales 2, 3, 4: max abs difference 3.6e-7 downscaling, 1.1e-5 upscaling x3
  (float32 round-off in the sample positions; 2.4e-7 at x2 and x4).
- MATLAB's `imresize`, which the papers used, pads symmetrically (mirror) at the border instead,
  and on uint8 input rounds its output to uint8. Against a NumPy port of it, PIL agrees within
  1e-7 away from the border (more than 2 low-res pixels in), but differs by up to 0.048 in the
  outermost 2 low-res pixels; with the uint8 rounding too, PSNR(PIL LR, MATLAB LR) is 51.8-58.8 dB
  on those photos. So LR inputs made here are not bit-identical to the papers' files; the SR
  protocol's border shave removes most of the difference from the scores. The papers' Y channel
  is MATLAB's rgb2ycbcr, which `rgb_to_ycbcr` here (and `tasks.image_metrics.rgb_to_y`) match.
"""

from __future__ import annotations

import jax
import numpy as np
from PIL import Image

# MATLAB rgb2ycbcr for RGB in [0, 1]: YCbCr in 0-255 units (Y in [16, 235], CbCr in [16, 240]).
_YCBCR = np.array([[65.481, 128.553, 24.966],
                   [-37.797, -74.203, 112.0],
                   [112.0, -93.786, -18.214]])
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


def bicubic_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased bicubic resize of an HWC float image to (h, w), per channel with PIL mode F."""
    h, w = size
    channels = [Image.fromarray(np.ascontiguousarray(image[..., c], np.float32))
                .resize((w, h), Image.Resampling.BICUBIC) for c in range(image.shape[-1])]
    return np.stack([np.asarray(c) for c in channels], axis=-1)


def bicubic_resize_jax(images: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Device twin of `bicubic_resize` for (..., H, W, C) images (see the module docstring)."""
    shape = (*images.shape[:-3], *size, images.shape[-1])
    return jax.image.resize(images, shape, method="bicubic", antialias=True)


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right so H and W are multiples of `scale` (the SR papers' protocol)."""
    h, w = image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale
    return image[:h, :w]


def downscale(image: np.ndarray, scale: int) -> np.ndarray:
    """The low-res input: bicubic downscale by `scale` of the mod-cropped image."""
    image = mod_crop(image, scale)
    return bicubic_resize(image, (image.shape[0] // scale, image.shape[1] // scale))


def upscale_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscale by `scale` (the classic baseline, and SRCNN's input). Not clipped: bicubic
    overshoots at edges, and the metrics clip predictions."""
    return bicubic_resize(lr, (lr.shape[0] * scale, lr.shape[1] * scale))


def example_rng(seed: int, index: int) -> np.random.Generator:
    """A generator determined by (seed, example index): evaluation noise is the same every run,
    whatever the order, batching or sharding that reaches the example."""
    return np.random.default_rng([seed, index])


def add_gaussian_noise(image: np.ndarray, sigma_255: float, rng: np.random.Generator) -> np.ndarray:
    """image + N(0, (sigma/255)^2), sigma in 0-255 units. Not clipped, as DnCNN's synthetic noise
    (clipping would shrink the noise and bias it near black and white)."""
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma_255 / 255.0)
    return image.astype(np.float32) + noise


def masking_noise(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Vincent et al. 2008's masking corruption: a random `fraction` of the pixels (all channels
    of each) set to 0. Exactly round(fraction * H * W) pixels, chosen without replacement."""
    h, w = image.shape[:2]
    drop = rng.permutation(h * w)[:round(fraction * h * w)]
    keep = np.ones(h * w, image.dtype)
    keep[drop] = 0
    return image * keep.reshape(h, w, *([1] * (image.ndim - 2)))


def rgb_to_ycbcr(image: np.ndarray) -> np.ndarray:
    """BT.601 studio-range YCbCr in [0, 1] (MATLAB's rgb2ycbcr / 255): Y in [16/255, 235/255]."""
    return ((image @ _YCBCR.T + _YCBCR_OFFSET) / 255.0).astype(np.float32)


def ycbcr_to_rgb(image: np.ndarray) -> np.ndarray:
    """Inverse of `rgb_to_ycbcr` (the exact matrix inverse, as MATLAB's ycbcr2rgb)."""
    return ((image * 255.0 - _YCBCR_OFFSET) @ np.linalg.inv(_YCBCR).T).astype(np.float32)


def rgb_to_grey(image: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma 0.299 R + 0.587 G + 0.114 B, HW1 in [0, 1].

    Full range rather than the studio-range Y, so a grey image made here spans [0, 1] as the
    greyscale sets the denoising papers use as given (BSD68, Set12) do, and sigma/255 noise
    means the same; it is also what PIL's "L" mode and MATLAB's rgb2gray compute.
    """
    return (image @ np.array([0.299, 0.587, 0.114]))[..., None].astype(np.float32)
