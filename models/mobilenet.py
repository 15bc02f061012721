"""MobileNet v1 (Howard et al. 2017, "MobileNets: efficient convolutional neural networks for
mobile vision applications"), as Keras' `MobileNet` builds it (the lecture's model)."""

from __future__ import annotations

import jax
from flax import nnx

from models import layers
from models.conv_layers import Conv, ConvNormAct
from models.registry import register

# Table 1 after the first conv: (pointwise out channels, depthwise stride).
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))

# Keras pads a stride-2 conv by one pixel at the bottom/right only, then convolves VALID:
# 224 -> 112 -> ... -> 7 and 120 -> 60 -> 30 -> 15 -> 7 -> 3 (the lecture's 3x3x1024).
_STRIDE2_PAD = ((0, 1), (0, 1))


def _pad(stride: int):
    return _STRIDE2_PAD if stride == 2 else "SAME"


class MobileNetV1(nnx.Module):
    """3x3/2 conv 32, then 13 depthwise-separable blocks (3x3 depthwise > norm > act > 1x1
    pointwise > norm > act), global average pool, dropout, 1x1 conv classifier `head` (with bias).

    Convs are bias-free, each followed by BatchNorm and ReLU (the paper; Keras uses ReLU6,
    `act='relu6'`). `width` is the paper's width multiplier alpha (`alpha=` is accepted too):
    every layer's channels become int(alpha * c), as Keras. The resolution multiplier is
    simply the input size: global pooling lets any size >= 32 through. He-normal weights.
    4,231,976 trainable parameters at alpha=1 with 1000 classes.
    Options: `width`/`alpha`, `act`, `norm`, `dropout` (Keras' 1e-3), `init`.
    """

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 width: float = 1.0, alpha: float | None = None, act: str = "relu",
                 norm: str = "batch", dropout: float = 1e-3, init: str = "he"):
        alpha = width if alpha is None else alpha
        unit = lambda i, o, k, s, groups=1: ConvNormAct(
            i, o, k, s, padding=_pad(s), groups=groups, norm=norm, act=act,
            kernel_init=layers.initializer(init), rngs=rngs)
        c = int(32 * alpha)
        body = [unit(in_channels, c, 3, 2)]
        for out, stride in BLOCKS:
            out = int(out * alpha)
            body += [unit(c, c, 3, stride, groups=c),  # depthwise
                     unit(c, out, 1, 1)]               # pointwise
            c = out
        self.body = nnx.Sequential(*body)
        self.pool = layers.GlobalAvgPool(keepdims=True)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = Conv(c, num_classes, (1, 1), rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """The globally pooled 1024 (x alpha) channels, (B, C)."""
        return self.pool(self.body(x)).reshape(x.shape[0], -1)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.features(x)[:, None, None, :]
        return self.head(self.dropout(x)).reshape(x.shape[0], -1)


@register("mobilenet_v1", input_shape=(224, 224, 3), num_classes=1000,
          aliases=("mobilenet",))
def mobilenet_v1(**kwargs) -> MobileNetV1:
    """MobileNet v1, width multiplier 1.0 (4,231,976 parameters)."""
    return MobileNetV1(**kwargs)
