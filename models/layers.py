"""Building blocks shared by the model families: activations, initialisers, norms and pooling,
each chosen by name.

Blocks take these as arguments so an ablation swaps one by config (`model.act=elu`,
`model.norm=none`, `model.pool=strided_conv`) instead of forking the block. Everything with
weights or a spatial effect is an `nnx.Module`, so the architecture sheet sees it as a layer.
Convolution variants (locally connected, depthwise-separable, sub-pixel, ...) live in
`models/conv_layers.py`; dropout is Flax's own `nnx.Dropout` and batch norm its `nnx.BatchNorm`
normalising as one scale and shift (`models/batch_norm.py`), both switched between train and
eval by `model.train()` / `model.eval()`.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import batch_norm, conv_lowering, max_pool

# ---------------------------------------------------------------------------------------------
# Activations


def lecun_tanh(x: jax.Array) -> jax.Array:
    """LeCun et al. 1998 (appendix A): f(a) = 1.7159 tanh(2a/3), so f(±1) = ±1."""
    return 1.7159 * jnp.tanh(2.0 * x / 3.0)


def glu(x: jax.Array, axis: int = -1) -> jax.Array:
    """Gated linear unit (Dauphin et al. 2017): GLU(a, b) = a * sigmoid(b), where a is the
    first and b the second half of `axis` (as torch.nn.functional.glu). Halves the channels."""
    a, b = jnp.split(x, 2, axis=axis)
    return a * jax.nn.sigmoid(b)


def maxout(x: jax.Array, pieces: int = 2) -> jax.Array:
    """Maxout (Goodfellow et al. 2013) over the last axis: output unit i is the max of the
    `pieces` consecutive channels i*pieces ... i*pieces + pieces - 1. Divides channels by
    `pieces`."""
    *lead, c = x.shape
    if c % pieces:
        raise ValueError(f"maxout with {pieces} pieces needs channels divisible by it, got {c}")
    return x.reshape(*lead, c // pieces, pieces).max(axis=-1)


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nnx.relu,
    "relu6": jax.nn.relu6,  # Keras' MobileNet uses it; the paper says ReLU
    "tanh": jnp.tanh,
    "lecun_tanh": lecun_tanh,
    "sigmoid": nnx.sigmoid,
    "elu": nnx.elu,  # alpha = 1 (Clevert et al. 2016)
    "selu": nnx.selu,
    "softplus": nnx.softplus,
    # The definition x * Phi(x) of Hendrycks & Gimpel 2016, not the tanh approximation.
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "leaky_relu": nnx.leaky_relu,  # slope 0.01 (Maas et al. 2013)
    "glu": glu,
    "maxout": maxout,  # 2 pieces
    "identity": lambda x: x,
}

# How many input channels each output channel of an activation consumes. A layer that feeds
# GLU or Maxout must produce this many times the channels it means to pass on;
# `conv_layers.ConvNormAct` and the dense layers of AlexNet/VGG do so.
_CHANNELS_IN_PER_OUT = {"glu": 2, "maxout": 2}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def act_width(name: str) -> int:
    """Channels an activation consumes per channel it outputs: 2 for glu/maxout, else 1."""
    activation(name)
    return _CHANNELS_IN_PER_OUT.get(name, 1)


def channel_preserving_activation(name: str, model: str) -> Callable[[jax.Array], jax.Array]:
    """`activation(name)`, refusing GLU/Maxout for nets that add or concatenate activations
    (ResNet, DenseNet) where a channel-changing activation has no natural place."""
    if act_width(name) != 1:
        raise ValueError(f"act={name!r} changes the channel count, which {model} does not "
                         "support; use a channel-preserving activation (relu, elu, gelu, ...)")
    return activation(name)


# ---------------------------------------------------------------------------------------------
# Initialisers


INITIALIZERS = {
    # He et al. 2015 ("Delving deep into rectifiers"), for ReLU nets: a plain Gaussian of std
    # sqrt(2 / fan_in), as the paper (jax's he_normal truncates it).
    "he": nnx.initializers.variance_scaling(2.0, "fan_in", "normal"),
    "glorot": nnx.initializers.glorot_uniform(),  # Glorot & Bengio 2010
    "lecun": nnx.initializers.lecun_normal(),     # for SELU and LeCun's tanh
    "normal_0.01": nnx.initializers.normal(0.01),  # AlexNet's N(0, 0.01^2)
}


def initializer(name: str):
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initialiser {name!r}; choose one of {', '.join(INITIALIZERS)}")
    return INITIALIZERS[name]


# ---------------------------------------------------------------------------------------------
# Normalisation


class Identity(nnx.Module):
    """Does nothing; stands in for a layer an ablation switched off (`norm=none`)."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return x


NORMS = ("batch", "none")


def make_norm(name: str, features: int, *, rngs: nnx.Rngs, momentum: float = 0.9,
              epsilon: float = 1e-5) -> nnx.Module:
    """A norm layer by name. BatchNorm's momentum 0.9 is PyTorch's 0.1 (Flax counts the other
    way round); scale and bias are trainable `nnx.Param`s, running stats `nnx.BatchStat`."""
    if name == "batch":
        return batch_norm.BatchNorm(features, momentum=momentum, epsilon=epsilon, rngs=rngs)
    if name == "none":
        return Identity()
    raise ValueError(f"unknown norm {name!r}; choose one of {', '.join(NORMS)}")


def norm_factory(name: str, *, rngs: nnx.Rngs, **kwargs) -> Callable[[int], nnx.Module]:
    """`features -> norm layer`, the form blocks take their norm in."""
    if name not in NORMS:  # fail on a bad name now, not deep inside a block
        raise ValueError(f"unknown norm {name!r}; choose one of {', '.join(NORMS)}")
    return functools.partial(make_norm, name, rngs=rngs, **kwargs)


class LocalResponseNorm(nnx.Module):
    """Local response normalisation across channels, exactly as Krizhevsky et al. 2012 sec 3.3:

        b[c] = a[c] / (k + alpha * sum_{j = max(0, c-n/2)}^{min(N-1, c+n/2)} a[j]^2) ^ beta

    with k=2, n=5, alpha=1e-4, beta=0.75. Note: the paper's alpha multiplies the plain sum;
    Caffe and PyTorch (`nn.LocalResponseNorm`) divide alpha by n, so their alpha=1e-4 is this
    layer's alpha=2e-5. We follow the paper.
    """

    def __init__(self, size: int = 5, k: float = 2.0, alpha: float = 1e-4, beta: float = 0.75):
        self.size, self.k, self.alpha, self.beta = size, k, alpha, beta

    def __call__(self, x: jax.Array) -> jax.Array:
        half = self.size // 2
        sq = jnp.square(x)
        # Sum over a window of `size` neighbouring channels, zero beyond the first/last.
        summed = jax.lax.reduce_window(
            sq, 0.0, jax.lax.add, (1,) * (x.ndim - 1) + (self.size,), (1,) * x.ndim,
            [(0, 0)] * (x.ndim - 1) + [(half, self.size - 1 - half)])
        return x / (self.k + self.alpha * summed) ** self.beta


# ---------------------------------------------------------------------------------------------
# Pooling and downsampling


def _pairs(padding):
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    return padding


class Pool(nnx.Module):
    """Max or average pooling over NHWC. A module (not a bare function) so that the
    architecture sheet sees it as a layer, with its window and stride. `padding` is 'SAME',
    'VALID', an int or ((top, bottom), (left, right)); max pooling pads with -inf, average
    pooling counts the zero padding (as PyTorch's default)."""

    def __init__(self, kind: str, window: int, stride: int | None = None,
                 padding: str | int | tuple = "VALID"):
        if kind not in ("max", "avg"):
            raise ValueError(f"unknown pooling {kind!r}; choose 'max' or 'avg'")
        self.kind, self.window = kind, window
        self.stride = window if stride is None else stride
        self.padding = _pairs(padding)

    def __call__(self, x: jax.Array) -> jax.Array:
        # max_pool.max_pool: nnx.max_pool's forward, with a backward XLA's CPU runs 3-8x faster
        pool = max_pool.max_pool if self.kind == "max" else nnx.avg_pool
        return pool(x, (self.window, self.window), (self.stride, self.stride), self.padding)


class GlobalAvgPool(nnx.Module):
    """Mean over height and width: (B, H, W, C) -> (B, C), or (B, 1, 1, C) with keepdims.
    Makes a classifier independent of the input size (Lin et al. 2014, Network in Network)."""

    def __init__(self, keepdims: bool = False):
        self.keepdims = keepdims

    def __call__(self, x: jax.Array) -> jax.Array:
        return x.mean(axis=(1, 2), keepdims=self.keepdims)


def _adaptive_matrix(size_in: int, size_out: int) -> np.ndarray:
    """Rows average the bins [floor(i*n/m), ceil((i+1)*n/m)), as torch's adaptive pooling."""
    m = np.zeros((size_out, size_in), np.float32)
    for i in range(size_out):
        lo, hi = (i * size_in) // size_out, -((-(i + 1) * size_in) // size_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


class AdaptiveAvgPool(nnx.Module):
    """Average pooling to a fixed `output_size` x `output_size` whatever the input size, with
    PyTorch's bins (`nn.AdaptiveAvgPool2d`); smaller inputs are replicated. torchvision puts it
    before the fixed-size classifiers of AlexNet (6x6) and VGG (7x7): at the paper's input it
    is the identity, and it lets the same weights run on smaller images."""

    def __init__(self, output_size: int):
        self.output_size = output_size

    def __call__(self, x: jax.Array) -> jax.Array:
        _, h, w, _ = x.shape
        if h == w == self.output_size:
            return x
        rows = jnp.asarray(_adaptive_matrix(h, self.output_size), x.dtype)
        cols = jnp.asarray(_adaptive_matrix(w, self.output_size), x.dtype)
        return jnp.einsum("ih,bhwc,jw->bijc", rows, x, cols)


POOLS = ("max", "avg", "strided_conv")


def downsample(kind: str, channels: int, window: int, stride: int, *, rngs: nnx.Rngs,
               padding: str | int | tuple = "VALID", kernel_init=None) -> nnx.Module:
    """A downsampling layer by name: max or average pooling, or a learned `strided_conv` with
    the same window and stride (Springenberg et al. 2015, "all convolutional net")."""
    if kind in ("max", "avg"):
        return Pool(kind, window, stride, padding)
    if kind == "strided_conv":
        kwargs = {} if kernel_init is None else {"kernel_init": kernel_init}
        return conv_lowering.Conv(channels, channels, (window, window), stride,
                                  padding=_pairs(padding), rngs=rngs, **kwargs)
    raise ValueError(f"unknown pooling {kind!r}; choose one of {', '.join(POOLS)}")
