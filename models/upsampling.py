"""Upsampling by transposed convolution initialised to bilinear interpolation, as FCN does it
(Long et al. 2015, sec. 3.3), and the crop that puts its output on the input's pixel grid.

A transposed convolution ("deconvolution") of stride f and kernel k = 2f - f % 2 maps an
n-pixel row to (n - 1) f + k pixels (Caffe's Deconvolution, flax's `ConvTranspose` with VALID
padding). With the bilinear kernel below, output pixel y is the linear interpolation of the
input at coordinate (y + 1/2)/f - 1, so cropping `same_offset(f)` pixels off the front leaves
exactly f n pixels equal to half-pixel-centred bilinear upsampling (`jax.image.resize(...,
"linear")`, PyTorch's `align_corners=False`) away from the borders. FCN's pad-100 scheme crops
other offsets, derived in models/fcn.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def kernel_size(factor: int) -> int:
    """The bilinear kernel's size for upsampling by `factor`: 2f - f % 2 (Caffe's choice)."""
    return 2 * factor - factor % 2


def same_offset(factor: int) -> int:
    """Pixels to crop off the front of the full transposed-conv output for f n pixels on the
    input's grid: (k - f) / 2, i.e. f / 2 for an even factor."""
    return (kernel_size(factor) - factor) // 2


def bilinear_kernel(factor: int) -> np.ndarray:
    """The (k, k) bilinear interpolation filter of `surgery.upsample_filt` in the FCN code:
    the outer product of the triangle 1 - |t - centre| / f, t = 0 .. k-1."""
    size = kernel_size(factor)
    centre = factor - 1 if size % 2 else factor - 0.5
    tri = 1 - np.abs(np.arange(size) - centre) / factor
    return np.outer(tri, tri).astype(np.float32)


def bilinear_init(factor: int):
    """A kernel initialiser for a (k, k, C, C) transposed conv: the bilinear filter from each
    channel to itself and zero between channels (FCN's `surgery.interp`), so at
    initialisation every class map is upsampled on its own and learning may later mix them."""

    def init(key, shape, dtype=jnp.float32):
        del key  # deterministic
        k, _, c_in, c_out = shape
        if (k, c_in) != (kernel_size(factor), c_out):
            raise ValueError(f"bilinear x{factor} init needs a ({kernel_size(factor)}, "
                             f"{kernel_size(factor)}, C, C) kernel, got {tuple(shape)}")
        eye = np.eye(c_in, dtype=np.float32)
        return jnp.asarray(bilinear_kernel(factor)[:, :, None, None] * eye, dtype)

    return init


class BilinearUpsample(nnx.Module):
    """Fixed bilinear upsampling by `factor`, channel by channel: the transposed conv with the
    bilinear kernel and no parameters (FCN's final upsampling, whose learning rate is 0).
    (B, n, m, C) -> (B, (n-1) f + k, (m-1) f + k, C); crop with `crop`."""

    def __init__(self, channels: int, factor: int):
        self.channels, self.factor = channels, factor

    def __call__(self, x: jax.Array) -> jax.Array:
        k, f = kernel_size(self.factor), self.factor
        kernel = np.tile(bilinear_kernel(f)[:, :, None, None], (1, 1, 1, self.channels))
        # A transposed conv is a conv over the input dilated by f and padded by k - 1; the
        # kernel is symmetric, so flipping it (or not) does not matter.
        return jax.lax.conv_general_dilated(
            x, jnp.asarray(kernel, x.dtype), (1, 1), [(k - 1, k - 1)] * 2, lhs_dilation=(f, f),
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=self.channels)


def learned_upsample(channels: int, factor: int, *, rngs: nnx.Rngs) -> nnx.ConvTranspose:
    """A learned transposed conv C -> C of stride `factor`, no bias (FCN's upscore layers),
    initialised to bilinear upsampling. Full output (n-1) f + k, as `BilinearUpsample`."""
    k = kernel_size(factor)
    return nnx.ConvTranspose(channels, channels, (k, k), factor, padding="VALID",
                             use_bias=False, kernel_init=bilinear_init(factor), rngs=rngs)


def upsample(channels: int, factor: int, *, learned: bool, rngs: nnx.Rngs) -> nnx.Module:
    """`learned_upsample` or the fixed `BilinearUpsample`."""
    if learned:
        return learned_upsample(channels, factor, rngs=rngs)
    return BilinearUpsample(channels, factor)


def crop(x: jax.Array, offset: int, size: tuple[int, int]) -> jax.Array:
    """x[:, offset : offset + h, offset : offset + w] (Caffe's Crop layer on H and W)."""
    h, w = size
    if offset + h > x.shape[1] or offset + w > x.shape[2]:
        raise ValueError(f"cannot crop {h}x{w} at offset {offset} from a "
                         f"{x.shape[1]}x{x.shape[2]} map")
    return x[:, offset:offset + h, offset:offset + w]
