"""DenseNets (Huang et al. 2016, "Densely connected convolutional networks"): DenseNet-BC
121/169/201 for ImageNet as torchvision builds them, and DenseNet-BC (L=100, k=12) for CIFAR.

Every layer reads the concatenation of all earlier feature maps of its block and adds
`growth_rate` (k) new ones; "B" is the 1x1 bottleneck to 4k channels before each 3x3 conv,
"C" the compression 0.5 of the transition layers between blocks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models import layers
from models.conv_layers import conv as conv_layer
from models.registry import register
from models.remat import rematerialisable


class DenseLayer(nnx.Module):
    """norm > act > 1x1 conv (bn_size * k) > norm > act > 3x3 conv (k) [> dropout], whose k
    output channels are appended to its input."""

    def __init__(self, c_in: int, growth: int, bn_size: int, *, conv, norm, act,
                 dropout: float, rngs: nnx.Rngs):
        mid = bn_size * growth
        self.norm1, self.conv1 = norm(c_in), conv(c_in, mid, 1, 1)
        self.norm2, self.conv2 = norm(mid), conv(mid, growth, 3, 1)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.act = act

    @rematerialisable
    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.conv1(self.act(self.norm1(x)))
        y = self.dropout(self.conv2(self.act(self.norm2(y))))
        return jnp.concatenate([x, y], axis=-1)


class Transition(nnx.Module):
    """norm > act > 1x1 conv to floor(compression * C) channels > 2x2/2 average pool."""

    def __init__(self, c_in: int, c_out: int, *, conv, norm, act):
        self.norm, self.conv, self.act = norm(c_in), conv(c_in, c_out, 1, 1), act
        self.pool = layers.Pool("avg", 2)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.pool(self.conv(self.act(self.norm(x))))


class DenseNet(nnx.Module):
    """Stem, dense blocks joined by transitions, final norm > act, global average pool, FC.

    ImageNet stem (`cifar=False`): 7x7/2 conv (2k channels) > norm > act > 3x3/2 max pool.
    CIFAR stem: a 3x3 conv to 2k channels. Convs have no bias (each is preceded, not followed,
    by a norm; torchvision's choice) unless `norm='none'`; He-normal weights.
    Options: `growth_rate` (k), `blocks` (layers per block), `bn_size` (4 for "B"),
    `compression` (0.5 for "C"), `dropout` (after each 3x3 conv; 0.2 in the paper for CIFAR
    without augmentation), `act`, `norm`, `pool` (the ImageNet stem's), `width` (multiplies
    k), `init`.
    """

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 blocks: tuple[int, ...], growth_rate: int = 32, cifar: bool = False,
                 bn_size: int = 4, compression: float = 0.5, dropout: float = 0.0,
                 act: str = "relu", norm: str = "batch", pool: str = "max",
                 width: float = 1.0, init: str = "he"):
        kernel_init = layers.initializer(init)
        act_fn = layers.channel_preserving_activation(act, "DenseNet")
        norm_fn = layers.norm_factory(norm, rngs=rngs)
        conv = lambda i, o, k, s: conv_layer(i, o, k, s, padding=k // 2, use_bias=norm == "none",
                                             kernel_init=kernel_init, rngs=rngs)
        k = max(1, int(growth_rate * width))
        c = 2 * k
        if cifar:
            stem = [conv(in_channels, c, 3, 1)]
        else:
            stem = [conv(in_channels, c, 7, 2), norm_fn(c), act_fn,
                    layers.downsample(pool, c, 3, 2, padding=1, kernel_init=kernel_init,
                                      rngs=rngs)]
        self.stem = nnx.Sequential(*stem)
        body = []
        for i, n in enumerate(blocks):
            for _ in range(n):
                body.append(DenseLayer(c, k, bn_size, conv=conv, norm=norm_fn, act=act_fn,
                                       dropout=dropout, rngs=rngs))
                c += k
            if i < len(blocks) - 1:
                body.append(Transition(c, int(c * compression), conv=conv, norm=norm_fn,
                                       act=act_fn))
                c = int(c * compression)
        self.body = nnx.Sequential(*body)
        self.final_norm, self.act = norm_fn(c), act_fn
        self.pool = layers.GlobalAvgPool()
        self.head = nnx.Linear(c, num_classes, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """The globally pooled output of the final norm > act, (B, C)."""
        x = self.body(self.stem(x))
        return self.pool(self.act(self.final_norm(x)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))


_IMAGENET = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32)}


def _register_imagenet(depth: int):
    @register(f"densenet{depth}", input_shape=(224, 224, 3), num_classes=1000)
    def factory(**kwargs) -> DenseNet:
        return DenseNet(**{"blocks": _IMAGENET[depth], "growth_rate": 32, **kwargs})

    factory.__doc__ = f"DenseNet-BC-{depth} for ImageNet (k=32, blocks {_IMAGENET[depth]})."
    return factory


for _depth in _IMAGENET:
    _register_imagenet(_depth)


@register("densenet_bc_100_12_cifar", input_shape=(32, 32, 3), num_classes=10,
          aliases=("densenet_bc", "densenet_bc_100_12"))
def densenet_bc_100_12_cifar(**kwargs) -> DenseNet:
    """DenseNet-BC for CIFAR: L=100, k=12, three blocks of (100 - 4) / 6 = 16 layers."""
    return DenseNet(**{"blocks": (16, 16, 16), "growth_rate": 12, "cifar": True, **kwargs})
