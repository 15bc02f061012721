"""ResNets (He et al. 2015, "Deep residual learning for image recognition"): the ImageNet
nets 18-152 as torchvision builds them, and the CIFAR nets 6n+2 of sec. 4.2; optionally
pre-activation (He et al. 2016, "Identity mappings in deep residual networks"); and their plain
twins without shortcuts (`plain=True`: the paper's plain-18/34 and plain-20/56 of Fig. 4 and 6).

Blocks take their conv, norm and activation as arguments (Flax's ImageNet ResNet style), so
`act=elu` or `norm=none` swaps them everywhere without forking a block.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from models import layers
from models.conv_layers import conv as conv_layer
from models.registry import register
from models.remat import rematerialisable

Conv = Callable[..., nnx.Module]   # (c_in, c_out, kernel, stride) -> conv layer
Norm = Callable[[int], nnx.Module]  # features -> norm layer
Act = Callable[[jax.Array], jax.Array]


class ZeroPadShortcut(nnx.Module):
    """Option A shortcut (sec. 4.2): subsample by taking every `stride`-th pixel and append
    zero channels. Parameter-free."""

    def __init__(self, stride: int, extra_channels: int):
        self.stride, self.extra = stride, extra_channels

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x[:, ::self.stride, ::self.stride, :]
        return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, self.extra)))


class Projection(nnx.Module):
    """Option B shortcut: 1x1 conv with the block's stride, then norm."""

    def __init__(self, c_in: int, c_out: int, stride: int, *, conv: Conv, norm: Norm | None):
        self.conv = conv(c_in, c_out, 1, stride)
        self.norm = norm(c_out) if norm else layers.Identity()

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.norm(self.conv(x))


def make_shortcut(kind: str, c_in: int, c_out: int, stride: int, *, conv: Conv,
                  norm: Norm | None) -> nnx.Module | None:
    """Identity when shapes agree; otherwise option A ('zero_pad') or B ('projection');
    None for a plain net (kind 'none'), whose blocks add nothing to their output."""
    if kind == "none":
        return None
    if stride == 1 and c_in == c_out:
        return layers.Identity()
    if kind == "zero_pad":
        return ZeroPadShortcut(stride, c_out - c_in)
    return Projection(c_in, c_out, stride, conv=conv, norm=norm)


def _add_shortcut(y: jax.Array, shortcut: nnx.Module | None, x: jax.Array) -> jax.Array:
    return y if shortcut is None else y + shortcut(x)


class BasicBlock(nnx.Module):
    """3x3 > norm > act > 3x3 > norm, plus the shortcut, > act (ResNet-18/34, CIFAR nets)."""
    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int, *, conv: Conv, norm: Norm, act: Act,
                 shortcut_kind: str):
        c_out = width * self.expansion
        self.conv1, self.norm1 = conv(c_in, width, 3, stride), norm(width)
        self.conv2, self.norm2 = conv(width, c_out, 3, 1), norm(c_out)
        self.shortcut = make_shortcut(shortcut_kind, c_in, c_out, stride, conv=conv, norm=norm)
        self.act = act

    @rematerialisable
    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.act(_add_shortcut(y, self.shortcut, x))


class Bottleneck(nnx.Module):
    """1x1 reduce > 3x3 > 1x1 expand (x4), norm after each, act after the first two and after
    the sum (ResNet-50/101/152). The stride sits on the 3x3 conv ("v1.5", torchvision), not
    on the first 1x1 as in the paper's Caffe model: same parameters, better accuracy."""
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int, *, conv: Conv, norm: Norm, act: Act,
                 shortcut_kind: str):
        c_out = width * self.expansion
        self.conv1, self.norm1 = conv(c_in, width, 1, 1), norm(width)
        self.conv2, self.norm2 = conv(width, width, 3, stride), norm(width)
        self.conv3, self.norm3 = conv(width, c_out, 1, 1), norm(c_out)
        self.shortcut = make_shortcut(shortcut_kind, c_in, c_out, stride, conv=conv, norm=norm)
        self.act = act

    @rematerialisable
    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.act(self.norm1(self.conv1(x)))
        y = self.act(self.norm2(self.conv2(y)))
        y = self.norm3(self.conv3(y))
        return self.act(_add_shortcut(y, self.shortcut, x))


class PreActBasicBlock(nnx.Module):
    """Pre-activation (He et al. 2016): norm > act > 3x3 > norm > act > 3x3, plus shortcut,
    nothing after the sum. A projection shortcut reads the pre-activated input."""
    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int, *, conv: Conv, norm: Norm, act: Act,
                 shortcut_kind: str):
        c_out = width * self.expansion
        self.norm1, self.conv1 = norm(c_in), conv(c_in, width, 3, stride)
        self.norm2, self.conv2 = norm(width), conv(width, c_out, 3, 1)
        self.shortcut = make_shortcut(shortcut_kind, c_in, c_out, stride, conv=conv, norm=None)
        self.act = act

    @rematerialisable
    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.act(self.norm1(x))
        y = self.conv1(x)
        y = self.conv2(self.act(self.norm2(y)))
        return _add_shortcut(y, self.shortcut, x)


class PreActBottleneck(nnx.Module):
    """Pre-activation bottleneck: (norm > act > conv) x 3 (1x1, 3x3 with the stride, 1x1)."""
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int, *, conv: Conv, norm: Norm, act: Act,
                 shortcut_kind: str):
        c_out = width * self.expansion
        self.norm1, self.conv1 = norm(c_in), conv(c_in, width, 1, 1)
        self.norm2, self.conv2 = norm(width), conv(width, width, 3, stride)
        self.norm3, self.conv3 = norm(width), conv(width, c_out, 1, 1)
        self.shortcut = make_shortcut(shortcut_kind, c_in, c_out, stride, conv=conv, norm=None)
        self.act = act

    @rematerialisable
    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.act(self.norm1(x))
        y = self.conv1(x)
        y = self.conv2(self.act(self.norm2(y)))
        y = self.conv3(self.act(self.norm3(y)))
        return _add_shortcut(y, self.shortcut, x)


BLOCKS = {(False, "basic"): BasicBlock, (False, "bottleneck"): Bottleneck,
          (True, "basic"): PreActBasicBlock, (True, "bottleneck"): PreActBottleneck}


class ResNet(nnx.Module):
    """Stem, stages of residual blocks (the first block of each stage but the first halves
    the resolution and widens), global average pool, FC.

    ImageNet stem (`cifar=False`): 7x7/2 conv 64 > norm > act > 3x3/2 max pool; stages of
    width 64-128-256-512 (x4 for bottlenecks); projection shortcuts (option B). CIFAR stem
    (`cifar=True`): 3x3 conv 16 > norm > act; stages 16-32-64; zero-padding shortcuts
    (option A). Convs have no bias (the norm's bias replaces it) unless `norm='none'`.
    He-normal weights (He et al. 2015, "Delving deep into rectifiers"), as the paper.
    With `preact=True` the stem is the conv (and pool) alone: the first block's norm > act
    serves it, and a final norm > act precedes the pool.

    `plain=True` drops every shortcut (He et al.'s plain nets, sec. 4.1 and 4.2): the same
    layers stacked, no projection convs, so plain-18 has ResNet-18's parameters less its three
    projections.

    Options: `act`, `norm` ('batch', 'none'), `preact`, `plain`, `pool` (the stem's
    downsampling: 'max', 'avg', 'strided_conv'), `shortcut` ('projection' or 'zero_pad'),
    `width` (multiplies every stage width), `depths` (blocks per stage, for depth ablations),
    `init`.
    """

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 depths: tuple[int, ...], block: str = "basic", cifar: bool = False,
                 act: str = "relu", norm: str = "batch", preact: bool = False,
                 plain: bool = False, pool: str = "max", shortcut: str | None = None,
                 width: float = 1.0, init: str = "he"):
        kernel_init = layers.initializer(init)
        act_fn = layers.channel_preserving_activation(act, "ResNet")
        norm_fn = layers.norm_factory(norm, rngs=rngs)
        conv = lambda i, o, k, s: conv_layer(i, o, k, s, padding=k // 2, use_bias=norm == "none",
                                             kernel_init=kernel_init, rngs=rngs)
        block_cls = BLOCKS[preact, block]
        widths = (16, 32, 64) if cifar else (64, 128, 256, 512)
        widths = [max(1, int(c * width)) for c in widths]
        shortcut = "none" if plain else shortcut or ("zero_pad" if cifar else "projection")
        stem = [conv(in_channels, widths[0], *((3, 1) if cifar else (7, 2)))]
        # A pre-activation net's first block normalises and activates the stem's output.
        if not preact:
            stem += [norm_fn(widths[0]), act_fn]
        if not cifar:
            stem.append(layers.downsample(pool, widths[0], 3, 2, padding=1,
                                          kernel_init=kernel_init, rngs=rngs))
        self.stem = nnx.Sequential(*stem)
        blocks, c = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, depths)):
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block_cls(c, w, stride, conv=conv, norm=norm_fn, act=act_fn,
                                        shortcut_kind=shortcut))
                c = w * block_cls.expansion
        self.blocks = nnx.Sequential(*blocks)
        self.depths = tuple(depths)  # blocks per stage (weight import names blocks by stage)
        # Pre-activation leaves the last block's sum un-normalised: one more norm > act.
        self.final_norm = norm_fn(c) if preact else layers.Identity()
        self.act = act_fn if preact else layers.ACTIVATIONS["identity"]
        self.pool = layers.GlobalAvgPool()
        self.head = nnx.Linear(c, num_classes, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """The globally pooled output of the last stage, (B, C)."""
        x = self.blocks(self.stem(x))
        return self.pool(self.act(self.final_norm(x)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))


_IMAGENET = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
             50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
             152: ("bottleneck", (3, 8, 36, 3))}


def _register_imagenet(depth: int):
    block, depths = _IMAGENET[depth]

    @register(f"resnet{depth}", input_shape=(224, 224, 3), num_classes=1000)
    def factory(**kwargs) -> ResNet:
        return ResNet(**{"depths": depths, "block": block, **kwargs})

    factory.__doc__ = f"ResNet-{depth} (ImageNet, {block} blocks {depths})."
    return factory


def _register_cifar(depth: int):
    n = (depth - 2) // 6

    @register(f"resnet{depth}_cifar", input_shape=(32, 32, 3), num_classes=10,
              aliases=(f"resnet{depth}",))
    def factory(**kwargs) -> ResNet:
        return ResNet(**{"depths": (n, n, n), "block": "basic", "cifar": True, **kwargs})

    factory.__doc__ = f"ResNet-{depth} for CIFAR (6n+2, n={n}, option A shortcuts)."
    return factory


for _depth in _IMAGENET:
    _register_imagenet(_depth)
for _depth in (20, 32, 44, 56, 110):
    _register_cifar(_depth)
