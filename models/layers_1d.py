"""Building blocks for 1-D signals (B, T, C): convolution (plain and causal dilated), pooling
and normalisation, each chosen by name as models/layers.py does for images.

Convention: a 1-D network takes (batch, time, channels) float32 and its registry entry's
`input_shape` is (T, C), samples by channels (an image network's is (H, W, C)).

`Conv1d` is Flax's own convolution with a 1-D kernel. `CausalConv1d` is written out as one
matmul per kernel tap on the input delayed by that tap's lag, because the WaveNet's fast
generator (models/wavenet.py) computes the very same products one time step at a time from
its activation queues: the training forward, the naive generator and the queued generator
then share one function, `apply_taps`, and differ only in where the delayed inputs come from.
(It is also quicker than XLA's dilated convolution on CPU for the kernel-2 case.)
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from models import max_pool
from models.batch_norm import BatchNorm
from models.layers import Identity

PADDINGS = ("SAME", "VALID", "CAUSAL")


class Conv1d(nnx.Module):
    """A 1-D convolution over (B, T, C): kernel `kernel` samples, `stride`, `dilation`;
    padding SAME, VALID or CAUSAL ((kernel-1)*dilation zeros before the signal, none after,
    so output t sees inputs <= t)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, *, stride: int = 1,
                 dilation: int = 1, padding: str = "SAME", use_bias: bool = True,
                 kernel_init=None, rngs: nnx.Rngs):
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding {padding!r}; choose one of {', '.join(PADDINGS)}")
        kwargs = {} if kernel_init is None else {"kernel_init": kernel_init}
        self.conv = nnx.Conv(in_channels, out_channels, (kernel,), strides=(stride,),
                             kernel_dilation=(dilation,), padding=padding, use_bias=use_bias,
                             rngs=rngs, **kwargs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv(x)


def delay(x: jax.Array, lag: int) -> jax.Array:
    """x[:, t - lag] along the time axis of (B, T, C), zeros where t < lag."""
    if lag == 0:
        return x
    return jnp.pad(x, ((0, 0), (lag, 0), (0, 0)))[:, :x.shape[1]]


class CausalConv1d(nnx.Module):
    """y[t] = b + sum_j x[t - (k-1-j)*d] @ W[j] over the k taps j: a causal convolution of
    kernel k and dilation d, zeros before the signal. Its kernel is (k, C_in, C_out), as a
    1-D `nnx.Conv`'s."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 2, *,
                 dilation: int = 1, use_bias: bool = True, rngs: nnx.Rngs,
                 kernel_init=nnx.initializers.lecun_normal()):
        self.kernel_size, self.dilation = kernel, dilation
        # fan_in of a (k, C_in, C_out) kernel is k*C_in, as for nnx.Conv.
        self.kernel = nnx.Param(kernel_init(rngs.params(), (kernel, in_channels, out_channels)))
        self.bias = nnx.Param(jnp.zeros((out_channels,))) if use_bias else None

    def lags(self) -> tuple[int, ...]:
        """How far back each tap reads, oldest first: (k-1)*d, ..., d, 0."""
        return tuple((self.kernel_size - 1 - j) * self.dilation for j in range(self.kernel_size))

    def apply_taps(self, taps: Sequence[jax.Array]) -> jax.Array:
        """The output from the inputs each tap reads (oldest first), any leading shape."""
        y = taps[0] @ self.kernel[0]
        for j in range(1, self.kernel_size):
            y = y + taps[j] @ self.kernel[j]
        return y if self.bias is None else y + self.bias

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.apply_taps([delay(x, lag) for lag in self.lags()])


class Pool1d(nnx.Module):
    """Max or average pooling over (B, T, C); a module so the architecture sheet sees it."""

    def __init__(self, kind: str, window: int, stride: int | None = None,
                 padding: str = "VALID"):
        if kind not in ("max", "avg"):
            raise ValueError(f"unknown pooling {kind!r}; choose 'max' or 'avg'")
        self.kind, self.window = kind, window
        self.stride = window if stride is None else stride
        self.padding = padding

    def __call__(self, x: jax.Array) -> jax.Array:
        pool = max_pool.max_pool if self.kind == "max" else nnx.avg_pool  # see layers.Pool
        return pool(x, (self.window,), (self.stride,), self.padding)


class GlobalPool1d(nnx.Module):
    """Mean or max over time: (B, T, C) -> (B, C); makes a classifier length-independent."""

    def __init__(self, kind: str = "avg"):
        if kind not in ("max", "avg"):
            raise ValueError(f"unknown global pooling {kind!r}; choose 'max' or 'avg'")
        self.kind = kind

    def __call__(self, x: jax.Array) -> jax.Array:
        return x.max(axis=1) if self.kind == "max" else x.mean(axis=1)


NORMS = ("batch", "layer", "none")


def make_norm(name: str, features: int, *, rngs: nnx.Rngs, momentum: float = 0.9,
              epsilon: float = 1e-5) -> nnx.Module:
    """A norm for (B, T, C) by name: batch (statistics per channel over batch and time), layer
    (per sample and time step, over channels) or none."""
    if name == "batch":
        return BatchNorm(features, momentum=momentum, epsilon=epsilon, rngs=rngs)
    if name == "layer":
        return nnx.LayerNorm(features, epsilon=epsilon, rngs=rngs)
    if name == "none":
        return Identity()
    raise ValueError(f"unknown norm {name!r}; choose one of {', '.join(NORMS)}")


def norm_factory(name: str, *, rngs: nnx.Rngs, **kwargs):
    """`features -> norm layer`, checked by name now rather than deep inside a block."""
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; choose one of {', '.join(NORMS)}")
    return functools.partial(make_norm, name, rngs=rngs, **kwargs)
