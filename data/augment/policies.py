"""RandAugment (Cubuk et al. 2020) and TrivialAugment (Müller & Hutter 2021).

Both draw from the AutoAugment op list, all 14 of which are here: identity, auto_contrast,
equalize, rotate, solarize, color, posterize, contrast, brightness, sharpness, shear_x, shear_y,
translate_x, translate_y. A chosen op gets a level L in [0, 1] and, for the signed ops, a random
sign; `_values` turns (L, sign) into each op's argument with the ranges of torchvision's
RandAugment / TrivialAugmentWide, where larger L is always stronger (for solarize and posterize
that reverses the original TF code, whose scale ran the other way). Translations are a fraction
of the image (TrivialAugment's 32 px = the whole 32-px CIFAR image); warps fill with zeros.

On device each layer is one affine warp plus a `lax.switch` over the pixel ops (see
`apply_device`); the host twin simply calls the chosen op. A mask follows the warps
(nearest-neighbour, geometric.nearest_warp) and ignores the pixel ops.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from data.augment import enhance, geometric
from data.augment.registry import non_negative, positive, register

OPS = ("identity", "auto_contrast", "equalize", "rotate", "solarize", "color", "posterize",
       "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y")

# Strength at L = 1: degrees, shear factor, fraction of the image, enhance-factor swing, and how
# many of the 8 bits posterize may drop.
RANGES = {
    "randaugment": dict(rotate=30.0, shear=0.3, translate=150 / 331, enhance=0.9, bits=4),
    "trivialaugment": dict(rotate=135.0, shear=0.99, translate=1.0, enhance=0.99, bits=6),
}


def _values(xp, level, sign, r):
    """Every op's argument for level L and sign (+-1), in OPS order."""
    signed, level = sign * level, xp.asarray(level, xp.float32)
    enhance_factor, unused = 1 + r["enhance"] * signed, xp.zeros((), xp.float32)
    per_op = dict(identity=unused, auto_contrast=unused, equalize=unused,
                  rotate=r["rotate"] * signed,
                  # On PIL's 0..256 scale, so L = 0 inverts nothing (not even pure white).
                  solarize=(1 - level) * 256 / 255,
                  color=enhance_factor, contrast=enhance_factor, brightness=enhance_factor,
                  sharpness=enhance_factor, posterize=8 - xp.round(r["bits"] * level),
                  shear_x=r["shear"] * signed, shear_y=r["shear"] * signed,
                  translate_x=r["translate"] * signed, translate_y=r["translate"] * signed)
    return xp.stack([xp.asarray(per_op[name], xp.float32) for name in OPS])


WARPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def warp(xp, name, shape, v):
    """(A, b) of warp op `name` with argument v (see geometric.py); translations in whole pixels."""
    if name == "rotate":
        return geometric.rotation(xp, shape, v)
    if name in ("shear_x", "shear_y"):
        return geometric.shear(xp, v, name[-1])
    if name == "translate_x":
        return geometric.shift(xp, 0, xp.round(v * shape[1]))
    return geometric.shift(xp, xp.round(v * shape[0]), 0)


def pixel_op(xp, name):
    """Non-warp op `name` as f(image, v) on backend xp; warps are the identity here."""
    if name in ("identity",) + WARPS:
        return lambda im, v: im
    if name in ("auto_contrast", "equalize"):
        return lambda im, v: getattr(enhance, name)(xp, im)
    return lambda im, v: getattr(enhance, name)(xp, im, v)


def host_op(name):
    if name in WARPS:
        return lambda im, v: geometric.affine_host(im, *warp(np, name, im.shape, v))
    return pixel_op(np, name)


HOST = [host_op(name) for name in OPS]
DEVICE_PIXEL = [pixel_op(jnp, name) for name in OPS]


def apply_host(image, ops, values):
    for op, value in zip(ops, values):
        image = HOST[int(op)](image, value).astype(np.float32)
    return image


def apply_device(image, ops, values):
    """Each layer is one warp (the identity map unless a warp op was drawn, which dm-pix's
    bilinear sampler reproduces exactly) then a switch over the pixel ops: under vmap a switch
    runs every branch, so five warp branches would cost five resamplings per layer."""
    for op, value in zip(ops, values):
        maps = [warp(jnp, name, image.shape, value) if name in WARPS else _identity_map()
                for name in OPS]
        matrix = jnp.stack([m for m, _ in maps])[op]
        offset = jnp.stack([b for _, b in maps])[op]
        image = geometric.affine_device(image, matrix, offset)
        image = jax.lax.switch(op, DEVICE_PIXEL, image, value).astype(jnp.float32)
    return image


def mask_host(mask, fill, ops, values):
    for op, value in zip(ops, values):
        name = OPS[int(op)]
        if name in WARPS:
            mask = geometric.nearest_warp(np, mask, *warp(np, name, mask.shape, value), fill)
    return mask


def mask_device(mask, fill, ops, values):
    """The same per-layer warp as `apply_device` (the identity map for pixel ops, which
    nearest-neighbour sampling reproduces exactly), on the mask."""
    for op, value in zip(ops, values):
        maps = [warp(jnp, name, mask.shape, value) if name in WARPS else _identity_map()
                for name in OPS]
        matrix = jnp.stack([m for m, _ in maps])[op]
        offset = jnp.stack([b for _, b in maps])[op]
        mask = geometric.nearest_warp(jnp, mask, matrix, offset, fill)
    return mask


def _identity_map():
    return jnp.eye(2, dtype=jnp.float32), jnp.zeros(2, jnp.float32)


def _draw_ops(s, levels, r):
    """One (op index, argument) per level: op uniform over OPS, sign a fair coin."""
    xp = s.xp
    ops, values = [], []
    for level in levels:
        op = s.integer(0, len(OPS) - 1)
        sign = xp.where(s.coin(0.5), 1.0, -1.0).astype(xp.float32)
        ops.append(op)
        values.append(_values(xp, level, sign, r)[op])
    return dict(ops=xp.stack(ops), values=xp.stack(values))


def _check_randaugment(n, m):
    positive(n=n)
    non_negative(m=m)
    if m > 10:
        raise ValueError(f"m is on the paper's 0..10 scale (10 = strongest), got {m}")


@register("randaugment", host=apply_host, device=apply_device, mask_host=mask_host,
          mask_device=mask_device, check=_check_randaugment)
def draw_randaugment(s, shape, n: int = 2, m: float = 9.0):
    """n ops drawn uniformly (with repetition), each at level m / 10, as in the paper.

    m uses the paper's 0..10 scale; torchvision's `magnitude` is out of 30 (its m=9 is 3 here).
    """
    return _draw_ops(s, [m / 10] * n, RANGES["randaugment"])


@register("trivialaugment", host=apply_host, device=apply_device, mask_host=mask_host,
          mask_device=mask_device)
def draw_trivialaugment(s, shape):
    """One op, its level uniform over the 31 bins 0/30 .. 30/30 (TrivialAugment Wide)."""
    level = s.integer(0, 30).astype(s.xp.float32) / 30
    return _draw_ops(s, [level], RANGES["trivialaugment"])
