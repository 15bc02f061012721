"""Max pooling with its gradient written as elementwise work.

JAX differentiates `reduce_window(max)` as a variadic reduce-window that finds each window's
argmax among index planes (four int32 iotas the size of the padded input) and a
select-and-scatter. On XLA's CPU that backward took 44 ms of ResNet-18's 253 ms train step
(b32, 64x64: the stem's 3x3/2 pool over 32x32x64), against ~2 ms for the forward. Here the
forward is the same reduce-window, and the backward compares each of the window's KH*KW
strided views of the input with the output: the first offset (row-major) holding the maximum
takes the output's cotangent, as XLA's select-and-scatter (`ge`) routes it, and each view's
share goes back to the input positions it read (an interior-padded add), elementwise work
that XLA fuses: the stem pool's backward 40 -> 14 ms. Windows that tile the input (VGG's,
U-Net's and airbench's 2x2/2) take one reshape instead (`_tiled_backward`). Same forward, and
the gradient routed to the same positions, ties included (tests/test_max_pool.py); where
windows overlap, the shares an input receives are added in another order.
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
from jax import lax


def explicit_padding(spatial, window, strides, padding) -> tuple[tuple[int, int], ...]:
    """((lo, hi), ...) per spatial axis for 'SAME'/'VALID' or explicit pairs."""
    if isinstance(padding, str):
        return tuple(lax.padtype_to_pads(spatial, window, strides, padding))
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def max_pool(x: jax.Array, window: tuple[int, ...], strides: tuple[int, ...],
             padding="VALID") -> jax.Array:
    """Max pooling over (B, *spatial, C), `nnx.max_pool`'s arguments (padding counts as
    -inf): NHWC with two spatial axes, (B, T, C) with one."""
    pads = explicit_padding(x.shape[1:-1], window, strides, padding)
    return _max_pool(x, tuple(window), tuple(strides), pads)


def _forward(x, window, strides, pads):
    # a Python -inf, as flax passes it: lax then emits reduce_window_max, not a generic reducer
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *strides, 1),
                             ((0, 0), *pads, (0, 0)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool(x, window, strides, pads):
    return _forward(x, window, strides, pads)


def _max_pool_fwd(x, window, strides, pads):
    y = _forward(x, window, strides, pads)
    return y, (x, y)


def _max_pool_bwd(window, strides, pads, residuals, g):
    x, y = residuals
    if tuple(strides) == tuple(window) and not any(lo or hi for lo, hi in pads):
        return (_tiled_backward(x, y, g, window),)
    padded = lax.pad(x, jnp.array(-jnp.inf, x.dtype),
                     ((0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)))
    taken, grad, zero = jnp.zeros(y.shape, bool), None, jnp.zeros((), g.dtype)
    for offset in itertools.product(*(range(k) for k in window)):  # row-major, as XLA scans
        ends = [o + (n - 1) * s + 1 for o, n, s in zip(offset, y.shape[1:-1], strides)]
        view = lax.slice(padded, (0, *offset, 0), (x.shape[0], *ends, x.shape[-1]),
                         (1, *strides, 1))
        hit = (view == y) & ~taken
        taken = taken | hit
        # the transpose of the strided view: back to the positions it read
        share = lax.pad(jnp.where(hit, g, zero), zero,
                        ((0, 0, 0), *((o, n - e, s - 1) for o, n, e, s in
                                      zip(offset, padded.shape[1:-1], ends, strides)),
                         (0, 0, 0)))
        grad = share if grad is None else grad + share
    starts = [lo for lo, _ in pads]
    return (lax.slice(grad, (0, *starts, 0),
                      (x.shape[0], *(lo + n for lo, n in zip(starts, x.shape[1:-1])),
                       x.shape[-1])),)


def _tiled_backward(x, y, g, window):
    """Windows that tile the input (stride = window, no padding): each input position lies in
    at most one window, so the input is viewed as (B, n1, k1, n2, k2, C) by a reshape, the
    first maximum in row-major window order takes the cotangent, and one reshape puts the
    shares back, where padding back each strided view and adding them wrote the input's size
    once per window offset (airbench's 2x2 pools at b256: 1.1-1.6x faster fwd+bwd)."""
    n = y.shape[1:-1]
    covered = tuple(k * m for k, m in zip(window, n))
    tile_shape = (x.shape[0], *(d for m, k in zip(n, window) for d in (m, k)), x.shape[-1])
    tiles = x[(slice(None), *(slice(0, c) for c in covered))].reshape(tile_shape)
    # y and g with a length-1 axis after each window axis; the window offsets, row-major
    spread = lambda a: a.reshape(a.shape[0], *(d for m in n for d in (m, 1)), a.shape[-1])
    order = jnp.arange(math.prod(window)).reshape(window)
    order = order.reshape(1, *(d for k in window for d in (1, k)), 1)
    window_axes = tuple(range(2, 2 * len(n) + 1, 2))
    ranked = jnp.where(tiles == spread(y), order, order.size)
    first = ranked == jnp.min(ranked, axis=window_axes, keepdims=True)
    shares = jnp.where(first, spread(g), jnp.zeros((), g.dtype)).reshape(
        x.shape[0], *covered, x.shape[-1])
    ragged = [(0, full - c, 0) for full, c in zip(x.shape[1:-1], covered)]
    return lax.pad(shares, jnp.zeros((), g.dtype), ((0, 0, 0), *ragged, (0, 0, 0)))


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
