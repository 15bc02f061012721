"""Occlusion ops: Cutout (DeVries & Taylor 2017) and Random Erasing (Zhong et al. 2017).

Both fill one axis-aligned box; the box is drawn, then `erase` (plain xp maths, shared by the
twins: dm-pix has no such op) fills it. A box that reaches past the border is clipped by the
mask itself, so no separate clipping can disagree between host and device.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from data.augment.registry import Pair, positive, probability, register


def erase(xp, image, top, left, height, width, fill):
    """`image` with rows [top, top+height) x cols [left, left+width) set to `fill`."""
    rows = xp.arange(image.shape[0])[:, None]
    cols = xp.arange(image.shape[1])[None, :]
    box = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
    return xp.where(box[..., None], xp.asarray(fill, xp.float32), image)


def _erase_host(image, **p):
    return erase(np, image, **p)


def _erase_device(image, **p):
    return erase(jnp, image, **p)


@register("cutout", host=_erase_host, device=_erase_device, check=positive)
def draw_cutout(s, shape, size: int):
    """A size x size zero square centred on a uniform pixel; it may hang over the border."""
    cy, cx = s.integer(0, shape[0] - 1), s.integer(0, shape[1] - 1)
    return dict(top=cy - size // 2, left=cx - size // 2, height=size, width=size, fill=0.0)


def _check_erasing(p, scale, ratio, value):
    probability(p=p, scale_high=scale[1])
    positive(ratio_low=ratio[0])
    if isinstance(value, str) and value != "random":
        raise ValueError(f"value must be a number or 'random', got {value!r}")


@register("random_erasing", host=_erase_host, device=_erase_device, check=_check_erasing)
def draw_random_erasing(s, shape, p: float = 0.5, scale: Pair = (0.02, 0.33),
                        ratio: Pair = (0.3, 3.3), value: float | str = 0.0):
    """With probability p, fill a box of area fraction ~ U(scale), log-uniform aspect ratio.

    torchvision's get_params with its 10 tries drawn at once; no fitting try means no erasing.
    value='random' fills with uniform [0, 1] noise, as the paper (its "random values").
    """
    xp, (h_img, w_img) = s.xp, shape[:2]
    area = s.uniform(scale[0], scale[1], (10,)) * (h_img * w_img)
    aspect = xp.exp(s.uniform(math.log(ratio[0]), math.log(ratio[1]), (10,)))
    h, w = xp.round(xp.sqrt(area * aspect)), xp.round(xp.sqrt(area / aspect))
    fits = (h < h_img) & (w < w_img)
    first = xp.argmax(fits)
    apply = s.coin(p) & xp.any(fits)
    h = xp.where(apply, h[first], 0).astype(xp.int32)
    w = xp.where(apply, w[first], 0).astype(xp.int32)
    fill = s.uniform(0.0, 1.0, shape) if value == "random" else value
    return dict(top=s.integer(0, h_img - h), left=s.integer(0, w_img - w), height=h, width=w,
                fill=fill)
