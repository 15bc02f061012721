"""A 2-D convolution as one matmul with a banded (Toeplitz) matrix along the width: the
lowering models/conv_lowering.py picks for narrow convolutions on narrow maps (LeNet-5's C1
and C3).

Written out, a KHxKW convolution is, for each output row, a sum over the KH input rows it reads
of (that input row, W x C values) @ (a W*C x OW*O matrix whose band holds the kernel's row). So
gather the KH input rows of every output row side by side (KH copies of the input, against
the KH*KW of im2col) and multiply once by the stacked band matrices (KH*W*C x OW*O). The band
multiplies zeros too: W / KW times the convolution's arithmetic. That is cheap where W is a
few kernels wide and the channels are few, the case where im2col's patch matrix is all copy
and no product: LeNet-5's C1 (32x32x1 -> 6, 5x5) fwd+dw 4.6 -> 2.3 ms, C3 (14x14x6 -> 16)
fwd+bwd 6.1 -> 3.5 ms against patches, at b128 on the 2-core CPU (benchmarks/conv_lowering.py,
variant `banded`; the rule, in models/conv_lowering.py, says where it wins). The band
matrix is built from the kernel by an einsum with a constant 0/1 shift tensor, so its
gradient is the einsum's (each kernel weight sums the band entries it fills).

A band may also cover only a block of a few output columns (`block`): each block of a row
reads the span of input columns under it, and every block shares one smaller band. That
multiplies span / block times the arithmetic instead of W / KW, for KH * span / block copies
of the input instead of KH: with 5x5 kernels and blocks of 4 columns, 2x the arithmetic and
10 copies where the whole row took 6.4x and 5 (C1).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def pad_spatial(x: jax.Array, pads) -> jax.Array:
    """Zero-pads the spatial axes of (B, H, W, C) by ((top, bottom), (left, right)). lax.pad,
    not jnp.pad: a negative pad crops, as in lax.conv_general_dilated."""
    return lax.pad(x, jnp.zeros((), x.dtype),
                   ((0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)))


def output_size(padded: int, kernel: int, stride: int, dilation: int) -> int:
    """Output positions of a convolution along one axis of `padded` input positions."""
    return (padded - (kernel - 1) * dilation - 1) // stride + 1


@functools.lru_cache(maxsize=64)
def shift_tensor(kernel_w: int, padded_w: int, out_w: int, stride: int,
                 dilation: int) -> np.ndarray:
    """S[v, p, w] = 1 where kernel column v of output column w reads input column p."""
    s = np.zeros((kernel_w, padded_w, out_w), np.float32)
    for v in range(kernel_w):
        s[v, np.arange(out_w) * stride + v * dilation, np.arange(out_w)] = 1.0
    return s


def band_matrix(kernel: jax.Array, padded_w: int, out_w: int, stride: int,
                dilation: int) -> jax.Array:
    """The HWIO kernel as (KH*padded_w*I, out_w*O): rows (u, p, i), columns (w, o)."""
    kh, kw, cin, cout = kernel.shape
    shift = jnp.asarray(shift_tensor(kw, padded_w, out_w, stride, dilation), kernel.dtype)
    band = jnp.einsum("uvio,vpw->upiwo", kernel, shift)
    return band.reshape(kh * padded_w * cin, out_w * cout)


def banded_conv(lhs: jax.Array, rhs: jax.Array, window_strides, pads, rhs_dilation, *,
                block: int | None = None, precision=None,
                preferred_element_type=None) -> jax.Array:
    """NHWC x HWIO -> NHWC convolution (explicit `pads`) as rows @ band matrix.

    `block` output columns share one band (None: the whole output row): each block of a row
    reads only the input columns under it, so the band multiplies fewer zeros (span / block
    times the arithmetic instead of padded width / KW) for a few more copies of the input
    (KH * span / (block * stride)). Blocks past the output's end compute on zero padding and
    are cropped."""
    kh, kw, cin, cout = rhs.shape
    (sh, sw), (dh, dw) = window_strides, rhs_dilation
    x = pad_spatial(lhs, pads)
    n, hp, wp, _ = x.shape
    oh, ow = output_size(hp, kh, sh, dh), output_size(wp, kw, sw, dw)
    block = ow if block is None else min(block, ow)
    blocks = -(-ow // block)
    span = (block - 1) * sw + (kw - 1) * dw + 1  # input columns under one block
    x = pad_spatial(x, ((0, 0), (0, max(0, (blocks - 1) * block * sw + span - wp))))

    def rows_of(u: int) -> jax.Array:
        """Kernel row u's input row under each block: (n, oh, blocks, span * cin)."""
        pieces = [lax.slice(x, (0, u * dh, j * block * sw, 0),
                            (n, u * dh + (oh - 1) * sh + 1, j * block * sw + span, cin),
                            (1, sh, 1, 1)) for j in range(blocks)]
        return jnp.stack(pieces, axis=2).reshape(n, oh, blocks, span * cin)

    rows = rows_of(0) if kh == 1 else jnp.concatenate([rows_of(u) for u in range(kh)], axis=-1)
    # As one 2-D product: with (n, oh, blocks) left as three axes, XLA's CPU transposed the
    # output's cotangent before the band's gradient (LeNet-5's C1: 1.9 ms for 2.4 MB)
    out = lax.dot_general(rows.reshape(n * oh * blocks, -1),
                          band_matrix(rhs, span, block, sw, dw), (((1,), (0,)), ((), ())),
                          precision=precision, preferred_element_type=preferred_element_type)
    return out.reshape(n, oh, blocks * block, cout)[:, :, :ow]
