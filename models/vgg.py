"""VGG (Simonyan & Zisserman 2014, "Very deep convolutional networks for large-scale image
recognition"): configurations A, A-LRN, B, C, D, E of the paper's Table 1, optionally with
BatchNorm after every conv (torchvision's vgg*_bn, which keeps the conv biases)."""

from __future__ import annotations

import jax
from flax import nnx

from models import layers
from models.conv_layers import ConvNormAct
from models.registry import register

# Table 1. An int is a conv3-<int>; (c, 1) a conv1-<c> (config C); "M" a 2x2/2 max pool;
# "LRN" the local response normalisation of A-LRN (Krizhevsky's parameters, sec. 2.2).
CONFIGS = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "A-LRN": (64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "C": (64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M", 512, 512, (512, 1), "M",
          512, 512, (512, 1), "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"),
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"),
}


class VGG(nnx.Module):
    """Stacks of 3x3 convs (stride 1, pad 1) with ReLU and 2x2/2 max pools, then
    FC 4096 > dropout > FC 4096 > dropout > FC classes (`head`). `features(x)` is fc7's
    activations; the conv stack is `convs` (torchvision's `features`).

    An `AdaptiveAvgPool(7)` before the classifier (torchvision's) is the identity at 224 and
    lets the net run on inputs down to 32x32. Weights: Glorot uniform, biases 0 — sec. 3.1
    notes Glorot's initialisation trains the deep configs without pre-training from A.
    Options: `config` (A, A-LRN, B, C, D, E), `batch_norm`/`norm`, `act`, `pool` ('max',
    'avg', 'strided_conv'), `dropout`, `width` (multiplies conv and hidden FC widths), `init`.
    """

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 config: str = "D", batch_norm: bool = False, norm: str | None = None,
                 act: str = "relu", pool: str = "max", dropout: float = 0.5,
                 width: float = 1.0, init: str = "glorot"):
        if config not in CONFIGS:
            raise ValueError(f"unknown VGG config {config!r}; choose one of {', '.join(CONFIGS)}")
        norm = norm or ("batch" if batch_norm else "none")
        kernel_init = layers.initializer(init)
        convs, c_in = [], in_channels
        for item in CONFIGS[config]:
            if item == "M":
                convs.append(layers.downsample(pool, c_in, 2, 2, kernel_init=kernel_init,
                                               rngs=rngs))
            elif item == "LRN":
                convs.append(layers.LocalResponseNorm())
            else:
                c, kernel = item if isinstance(item, tuple) else (item, 3)
                c = int(c * width)
                convs.append(ConvNormAct(c_in, c, kernel, norm=norm, act=act, use_bias=True,
                                         kernel_init=kernel_init, rngs=rngs))
                c_in = c
        self.convs = nnx.Sequential(*convs)
        self.avgpool = layers.AdaptiveAvgPool(7)
        hidden, k = int(4096 * width), layers.act_width(act)
        self.act = layers.activation(act)
        self.fc6 = nnx.Linear(7 * 7 * c_in, hidden * k, kernel_init=kernel_init, rngs=rngs)
        self.fc7 = nnx.Linear(hidden, hidden * k, kernel_init=kernel_init, rngs=rngs)
        self.head = nnx.Linear(hidden, num_classes, kernel_init=kernel_init, rngs=rngs)
        self.drop6, self.drop7 = nnx.Dropout(dropout, rngs=rngs), nnx.Dropout(dropout, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """fc7's activations (after its ReLU), (B, 4096): what the classifier reads."""
        x = self.avgpool(self.convs(x))
        x = x.reshape(x.shape[0], -1)  # flattened in (H, W, C) order
        x = self.drop6(self.act(self.fc6(x)))
        return self.act(self.fc7(x))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.drop7(self.features(x)))


def _register(name: str, config: str, aliases: tuple[str, ...], **defaults):
    @register(name, input_shape=(224, 224, 3), num_classes=1000, aliases=aliases)
    def factory(**kwargs) -> VGG:
        return VGG(**{"config": config, **defaults, **kwargs})

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"VGG config {config}" + (" with BatchNorm" if defaults else "") + "."
    return factory


vgg_a = _register("vgg_a", "A", ("vgg11",))
vgg_a_lrn = _register("vgg_a_lrn", "A-LRN", ("vgg11_lrn",))
vgg_b = _register("vgg_b", "B", ("vgg13",))
vgg_c = _register("vgg_c", "C", ("vgg16_conv1",))
vgg_d = _register("vgg_d", "D", ("vgg16",))
vgg_e = _register("vgg_e", "E", ("vgg19",))
vgg_d_bn = _register("vgg_d_bn", "D", ("vgg16_bn",), batch_norm=True)
