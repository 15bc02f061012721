"""Geometric ops: crops, flips, and affine warps (rotate, translate, scale; shear for policies).

Every warp is one inverse affine map in (row, col) pixel coordinates, input = A @ output + b,
sampled bilinearly with zero fill outside the image (`bilinear_warp`: a point blends its four
neighbours, as in dm-pix), one xp function for host and device, so the two twins agree to float
rounding for the same (A, b).

Every op here also moves a segmentation mask (integer HxW) with the transform drawn for its
image: the same crop window, flip or (A, b), sampled nearest-neighbour so class ids are never
blended, and `fill` (the pipeline's `mask_fill`, 0 = background by default; a loss's ignore
id such as 255 is the other usual choice) wherever the image gets its zero fill: padding and
points outside the image. The mask twins are plain xp maths shared by host and device.
"""

from __future__ import annotations

import math

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from data.augment.registry import Pair, non_negative, positive, probability, register
from errors import UserError

# --------------------------------------------------------------------------- affine maps (xp)

def _f32(xp, v):
    return xp.asarray(v, xp.float32)


def _about_centre(xp, shape, matrix):
    """(A, b) for the linear map `matrix` applied about the image centre, as dm_pix.rotate does."""
    centre = _f32(xp, [(shape[0] - 1) / 2, (shape[1] - 1) / 2])
    return matrix, centre - matrix @ centre


def rotation(xp, shape, degrees):
    """dm_pix.rotate's inverse matrix, so positive angles turn the content counter-clockwise."""
    a = _f32(xp, degrees) * _f32(xp, math.pi / 180)
    c, s = xp.cos(a), xp.sin(a)
    return _about_centre(xp, shape, xp.stack([xp.stack([c, s]), xp.stack([-s, c])]))


def zoom(xp, shape, factor):
    """Magnify by `factor` about the centre (factor < 1 shrinks and leaves a zero border)."""
    inv = 1 / _f32(xp, factor)
    zero = _f32(xp, 0)
    return _about_centre(xp, shape, xp.stack([xp.stack([inv, zero]), xp.stack([zero, inv])]))


def shift(xp, dy, dx):
    """Move the content down by dy and right by dx pixels."""
    return _f32(xp, np.eye(2)), -xp.stack([_f32(xp, dy), _f32(xp, dx)])


def shear(xp, amount, axis):
    """PIL's ShearX/ShearY (AutoAugment's ops): about the top-left corner, x' = x + amount * y."""
    v, one, zero = _f32(xp, amount), _f32(xp, 1), _f32(xp, 0)
    rows = ([one, zero], [v, one]) if axis == "x" else ([one, v], [zero, one])
    return xp.stack([xp.stack(r) for r in rows]), xp.zeros(2, xp.float32)


def chain(xp, *inverse_maps):
    """One inverse map from several, each (A, b) applied to the output coordinates in turn:
    chain(shift^-1, zoom^-1, rotation^-1) warps the content by rotate, then scale, then shift."""
    matrix, offset = _f32(xp, np.eye(2)), xp.zeros(2, xp.float32)
    for a, b in inverse_maps:
        matrix, offset = a @ matrix, a @ offset + b
    return matrix, offset


# --------------------------------------------------------------------------- the two samplers

# How far outside [0, size-1] a sample may fall and still read the edge pixel. Without it an
# output pixel that maps exactly onto the border (common with "round" shears and shifts) reads
# the image or the zero fill depending on the last bit of rounding, which differs between
# NumPy and XLA (XLA may fuse a multiply-add). A thousandth of a pixel changes nothing visible.
BORDER = 1e-3


def _sample_points(xp, shape, matrix, offset):
    """(y, x), each (H, W): where each output pixel samples the input, A @ (row, col) + b."""
    r = xp.arange(shape[0], dtype=xp.float32)[:, None]
    c = xp.arange(shape[1], dtype=xp.float32)[None, :]
    return (matrix[0, 0] * r + matrix[0, 1] * c + offset[0],
            matrix[1, 0] * r + matrix[1, 1] * c + offset[1])


def _inside(xp, shape, matrix, offset):
    """(H, W) mask of output pixels whose sample point lies in the image (within BORDER)."""
    h, w = shape[:2]
    y, x = _sample_points(xp, shape, matrix, offset)
    return (y >= -BORDER) & (y <= h - 1 + BORDER) & (x >= -BORDER) & (x <= w - 1 + BORDER)


def bilinear_warp(xp, image, matrix, offset):
    """`image` (H, W, C) sampled bilinearly at A @ (row, col) + b, edge-clamped (each point
    blends its four neighbours, as dm-pix's `flat_nd_linear_interpolate`), zero outside.

    Written out rather than `dm_pix.affine_transform(order=1)`: dm-pix gathers with (row, col)
    index pairs, which XLA's CPU backend runs 9-12x slower than one gather of flat pixel
    indices (a batch of 64 32x32x1 digits, interleaved in one process on the shared 2-core
    CPU: 105 against 12 ms, 375 against 31 ms; outputs equal to 5e-7; benchmarks/affine_warp.py). The same xp maths serves the host
    (NumPy) and the device (jnp), so the twins agree to float rounding.
    """
    h, w = image.shape[:2]
    y, x = _sample_points(xp, image.shape, matrix, offset)
    y0, x0 = xp.floor(y), xp.floor(x)
    wy, wx = (y - y0)[..., None], (x - x0)[..., None]
    top, bottom = (xp.clip(v, 0, h - 1).astype(xp.int32) for v in (y0, xp.ceil(y)))
    left, right = (xp.clip(v, 0, w - 1).astype(xp.int32) for v in (x0, xp.ceil(x)))
    corners = xp.stack([top * w + left, top * w + right, bottom * w + left, bottom * w + right])
    flat = image.reshape(h * w, image.shape[2])
    tl, tr, bl, br = xp.take(flat, corners.reshape(-1), axis=0, mode="clip").reshape(
        4, h, w, image.shape[2])
    out = (1 - wy) * ((1 - wx) * tl + wx * tr) + wy * ((1 - wx) * bl + wx * br)
    return xp.where(_inside(xp, image.shape, matrix, offset)[..., None], out, 0)


def affine_device(image, matrix, offset):
    """Bilinear warp with zero fill on device (jnp)."""
    return bilinear_warp(jnp, image, matrix, offset)


def affine_host(image, matrix, offset):
    """NumPy twin of `affine_device`."""
    image = np.asarray(image, np.float32)
    matrix, offset = np.asarray(matrix, np.float32), np.asarray(offset, np.float32)
    return bilinear_warp(np, image, matrix, offset).astype(np.float32)


# Nearest-neighbour rounds each sample point to a pixel. A point exactly halfway between two
# (every point of a 2x shrink, many of a resized crop's) would pick either one depending on the
# last bit of rounding, which differs between NumPy and XLA (see BORDER); nudging by TIE makes
# both pick the lower-right one. A thousandth of a pixel moves no boundary visibly.
TIE = 1e-3


def nearest_warp(xp, mask, matrix, offset, fill):
    """`mask` (H, W) warped by the inverse map (A, b): each pixel takes the input pixel nearest
    its sample point, or `fill` where the image is zero-filled (the same `_inside` test)."""
    h, w = mask.shape
    y, x = _sample_points(xp, mask.shape, matrix, offset)
    rows = xp.clip(xp.floor(y + 0.5 + TIE), 0, h - 1).astype(xp.int32)
    cols = xp.clip(xp.floor(x + 0.5 + TIE), 0, w - 1).astype(xp.int32)
    inside = _inside(xp, mask.shape, matrix, offset)
    return xp.where(inside, mask[rows, cols], fill).astype(mask.dtype)


def _warp_ops(build):
    """Host and device applies of a warp whose (A, b) comes from `build(xp, shape, **params)`,
    on an image (bilinear) and on a mask (nearest): host, device, mask_host, mask_device."""
    def host(image, **params):
        return affine_host(image, *build(np, image.shape, **params))

    def device(image, **params):
        return affine_device(image, *build(jnp, image.shape, **params))

    def mask_host(mask, fill, **params):
        return nearest_warp(np, mask, *build(np, mask.shape, **params), fill)

    def mask_device(mask, fill, **params):
        return nearest_warp(jnp, mask, *build(jnp, mask.shape, **params), fill)

    return host, device, mask_host, mask_device


def _affine_map(xp, shape, angle, factor, dy, dx):
    return chain(xp, shift(xp, dy, dx), zoom(xp, shape, factor), rotation(xp, shape, angle))


rotate_host, rotate_device, rotate_mask_host, rotate_mask_device = _warp_ops(
    lambda xp, shape, angle: rotation(xp, shape, angle))
scale_host, scale_device, scale_mask_host, scale_mask_device = _warp_ops(
    lambda xp, shape, factor: zoom(xp, shape, factor))
translate_host, translate_device, translate_mask_host, translate_mask_device = _warp_ops(
    lambda xp, shape, dy, dx: shift(xp, dy, dx))
affine_op_host, affine_op_device, affine_mask_host, affine_mask_device = _warp_ops(_affine_map)


# --------------------------------------------------------------------------- crops

def random_crop_host(image, top, left, size, pad):
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    return padded[top:top + size, left:left + size]


def random_crop_device(image, top, left, size, pad):
    # Not dm_pix.random_crop: it draws its offsets inside; we draw them in `draw` so the host
    # twin can share them. (Its own docs point to lax.dynamic_slice for a given offset.)
    padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    return jax.lax.dynamic_slice(padded, (top, left, 0), (size, size, image.shape[2]))


def random_crop_mask_host(mask, fill, top, left, size, pad):
    padded = np.pad(mask, pad, constant_values=fill)
    return padded[top:top + size, left:left + size]


def random_crop_mask_device(mask, fill, top, left, size, pad):
    padded = jnp.pad(mask, pad, constant_values=fill)
    return jax.lax.dynamic_slice(padded, (top, left), (size, size))


@register("random_crop", host=random_crop_host, device=random_crop_device,
          mask_host=random_crop_mask_host, mask_device=random_crop_mask_device,
          check=lambda size, pad: (positive(size=size), non_negative(pad=pad)))
def draw_random_crop(s, shape, size: int, pad: int = 0):
    """Zero-pad by `pad` on each side, then a uniformly placed size x size window."""
    if size > shape[0] + 2 * pad or size > shape[1] + 2 * pad:
        raise UserError(f"augmentation op random_crop({size}, pad={pad}) is larger than the "
                         f"{shape[0]}x{shape[1]} image")
    return dict(top=s.integer(0, shape[0] + 2 * pad - size),
                left=s.integer(0, shape[1] + 2 * pad - size), size=size, pad=pad)


def resample_matrix(xp, start, length, out_size, in_size):
    """Rows of weights mapping `in_size` pixels to `out_size`, reading [start, start + length).

    Output pixel i reads around input start + (i + 0.5) * length / out_size - 0.5 (pixel
    centres). The tent widens by the shrink factor when shrinking (antialiasing), and rows
    renormalise at the borders: this is PIL's BILINEAR resize of the box (a test checks it),
    the resize the data pipeline uses. Written by hand because dm-pix has no resize; as plain
    xp maths it is shared verbatim by both twins.
    """
    length = _f32(xp, length)
    step = length / out_size
    centres = _f32(xp, start) + (xp.arange(out_size, dtype=xp.float32) + 0.5) * step - 0.5
    width = xp.maximum(step, _f32(xp, 1))
    dist = xp.abs(xp.arange(in_size, dtype=xp.float32)[None, :] - centres[:, None]) / width
    weights = xp.maximum(0, 1 - dist)
    return weights / weights.sum(axis=1, keepdims=True)


def resized_crop(xp, image, top, left, height, width, size):
    rows = resample_matrix(xp, top, height, size, image.shape[0])
    cols = resample_matrix(xp, left, width, size, image.shape[1])
    return xp.einsum("ih,hwc,jw->ijc", rows, image, cols).astype(xp.float32)


def nearest_indices(xp, start, length, out_size, in_size):
    """For each of `out_size` pixels, the input pixel (of `in_size`) nearest its centre when
    [start, start + length) is resized: resample_matrix's geometry, nearest-neighbour."""
    step = _f32(xp, length) / out_size
    # resample_matrix's centre is start + (i + 0.5) * step - 0.5; the nearest pixel to it is
    # floor(centre + 0.5), so the two halves cancel.
    ahead = _f32(xp, start) + (xp.arange(out_size, dtype=xp.float32) + 0.5) * step
    return xp.clip(xp.floor(ahead + TIE), 0, in_size - 1).astype(xp.int32)


def resized_crop_mask(xp, mask, top, left, height, width, size):
    """The crop box of a mask resized to size x size, nearest-neighbour (never outside)."""
    rows = nearest_indices(xp, top, height, size, mask.shape[0])
    cols = nearest_indices(xp, left, width, size, mask.shape[1])
    return mask[rows[:, None], cols[None, :]]


@register("random_resized_crop",
          host=lambda image, **p: resized_crop(np, image, **p),
          device=lambda image, **p: resized_crop(jnp, image, **p),
          mask_host=lambda mask, fill, **p: resized_crop_mask(np, mask, **p),
          mask_device=lambda mask, fill, **p: resized_crop_mask(jnp, mask, **p),
          check=lambda size, scale, ratio: positive(size=size, scale_low=scale[0],
                                                    ratio_low=ratio[0]))
def draw_random_resized_crop(s, shape, size: int, scale: Pair = (0.08, 1.0),
                             ratio: Pair = (3 / 4, 4 / 3)):
    """Inception-style crop (torchvision's get_params, its 10 tries drawn at once), resized."""
    xp, (h_img, w_img) = s.xp, shape[:2]
    area = s.uniform(scale[0], scale[1], (10,)) * (h_img * w_img)
    aspect = xp.exp(s.uniform(math.log(ratio[0]), math.log(ratio[1]), (10,)))
    w, h = xp.round(xp.sqrt(area * aspect)), xp.round(xp.sqrt(area / aspect))
    fits = (w > 0) & (w <= w_img) & (h > 0) & (h <= h_img)
    first, found = xp.argmax(fits), xp.any(fits)
    fh, fw = _central_fallback(h_img, w_img, ratio)
    h = xp.where(found, h[first], fh).astype(xp.int32)
    w = xp.where(found, w[first], fw).astype(xp.int32)
    top = xp.where(found, s.integer(0, h_img - h), (h_img - fh) // 2)
    left = xp.where(found, s.integer(0, w_img - w), (w_img - fw) // 2)
    return dict(top=top, left=left, height=h, width=w, size=size)


def _central_fallback(h, w, ratio):
    """torchvision's crop when no try fits: the whole image, cut to the nearest allowed ratio."""
    if w / h < ratio[0]:
        return int(round(w / ratio[0])), w
    if w / h > ratio[1]:
        return h, int(round(h * ratio[1]))
    return h, w


# --------------------------------------------------------------------------- flips

def _flip_ops(axis, pix_flip):
    """host, device, mask_host, mask_device of a flip along `axis` (rows 0, columns 1)."""
    def host(image, flip):
        return np.flip(image, axis) if flip else image

    def device(image, flip):
        return jnp.where(flip, pix_flip(image), image)

    def mask_host(mask, fill, flip):
        return host(mask, flip)

    def mask_device(mask, fill, flip):
        return jnp.where(flip, jnp.flip(mask, axis), mask)

    return host, device, mask_host, mask_device


flip_lr_host, flip_lr_device, flip_lr_mask_host, flip_lr_mask_device = \
    _flip_ops(1, pix.flip_left_right)
flip_ud_host, flip_ud_device, flip_ud_mask_host, flip_ud_mask_device = \
    _flip_ops(0, pix.flip_up_down)


@register("flip_lr", host=flip_lr_host, device=flip_lr_device,
          mask_host=flip_lr_mask_host, mask_device=flip_lr_mask_device,
          check=probability)
def draw_flip_lr(s, shape, p: float = 0.5):
    """Mirror left-right with probability p."""
    return dict(flip=s.coin(p))


@register("flip_ud", host=flip_ud_host, device=flip_ud_device,
          mask_host=flip_ud_mask_host, mask_device=flip_ud_mask_device,
          check=probability)
def draw_flip_ud(s, shape, p: float = 0.5):
    """Mirror top-bottom with probability p."""
    return dict(flip=s.coin(p))


# --------------------------------------------------------------------------- warps

@register("rotate", host=rotate_host, device=rotate_device,
          mask_host=rotate_mask_host, mask_device=rotate_mask_device, check=non_negative)
def draw_rotate(s, shape, degrees: float):
    """Rotate about the centre by an angle uniform in [-degrees, degrees]; zero fill."""
    return dict(angle=s.uniform(-degrees, degrees))


@register("translate", host=translate_host, device=translate_device,
          mask_host=translate_mask_host, mask_device=translate_mask_device, check=non_negative)
def draw_translate(s, shape, fraction: float):
    """Shift by whole pixels, uniform in +-fraction of the height and width (as torchvision)."""
    xp = s.xp
    return dict(dy=xp.round(s.uniform(-fraction, fraction) * shape[0]),
                dx=xp.round(s.uniform(-fraction, fraction) * shape[1]))


@register("scale", host=scale_host, device=scale_device,
          mask_host=scale_mask_host, mask_device=scale_mask_device,
          check=lambda range: positive(range_low=_scale_range(range)[0]))
def draw_scale(s, shape, range: float | Pair):
    """Zoom about the centre by a factor uniform in range=(low, high); a number r means 1 +- r."""
    return dict(factor=s.uniform(*_scale_range(range)))


@register("affine", host=affine_op_host, device=affine_op_device,
          mask_host=affine_mask_host, mask_device=affine_mask_device,
          check=lambda degrees, translate, scale: (
              non_negative(degrees=degrees, translate=translate),
              positive(scale_low=_scale_range(scale)[0])))
def draw_affine(s, shape, degrees: float = 0.0, translate: float = 0.0,
                scale: float | Pair = 0.0):
    """rotate, scale and translate drawn as those ops draw them, applied in one resampling
    (torchvision's RandomAffine): one bilinear pass blurs less and costs a third."""
    xp = s.xp
    return dict(angle=s.uniform(-degrees, degrees), factor=s.uniform(*_scale_range(scale)),
                dy=xp.round(s.uniform(-translate, translate) * shape[0]),
                dx=xp.round(s.uniform(-translate, translate) * shape[1]))


def _scale_range(r):
    return (1 - r, 1 + r) if isinstance(r, float) else r
