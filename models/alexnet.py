"""AlexNet (Krizhevsky, Sutskever & Hinton 2012): the paper's two-tower net as one graph, and
torchvision's one-tower variant (Krizhevsky 2014, "One weird trick ...")."""

from __future__ import annotations

import jax
from flax import nnx

from models import layers
from models.conv_layers import conv
from models.registry import register

# Per conv: (out channels, kernel, stride, padding, groups, bias init 1?, max pool after?).
# The paper splits conv2, conv4 and conv5 (and the FCs, which we keep whole, as Caffe's
# bvlc_alexnet) across two GPUs: groups=2. It initialises the biases of conv2, conv4, conv5
# and the hidden FCs to 1 "to give the ReLUs positive inputs", the others to 0.
_PAPER = ((96, 11, 4, 2, 1, False, True), (256, 5, 1, 2, 2, True, True),
          (384, 3, 1, 1, 1, False, False), (384, 3, 1, 1, 2, True, False),
          (256, 3, 1, 1, 2, True, True))
_ONE_TOWER = ((64, 11, 4, 2, 1, False, True), (192, 5, 1, 2, 1, True, True),
              (384, 3, 1, 1, 1, False, False), (256, 3, 1, 1, 1, True, False),
              (256, 3, 1, 1, 1, True, True))


class AlexNet(nnx.Module):
    """Five convs with ReLU, LRN after conv1 and conv2, 3x3/2 overlapping max pools after conv1,
    conv2 and conv5; then FC 4096 > ReLU > dropout > FC 4096 > ReLU > dropout > FC classes
    (`head`), the paper's placement (sec. 4.2; Caffe's bvlc_alexnet). torchvision's one-tower
    net drops out before fc6 and fc7 instead (`dropout_before_fc=True`, its default here);
    at inference the two are the same function.

    conv1 pads by 2, as torchvision, so that a 224 input gives 55x55 (the paper's 224 only
    works unpadded as 227). An `AdaptiveAvgPool(6)` before the classifier (torchvision's) is
    the identity at 224 and lets the net run on smaller inputs (down to 64x64). Weights are
    N(0, 0.01^2) and biases 0 or 1 as in the paper (`init` swaps the weight initialiser).
    Options: `act`, `norm` (after every conv; 'none' as in the paper), `pool` ('max', 'avg',
    'strided_conv'), `lrn`, `dropout`, `dropout_before_fc`, `width` (multiplies conv and
    hidden FC widths).
    """

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 convs=_PAPER, act: str = "relu", norm: str = "none", pool: str = "max",
                 lrn: bool = True, dropout: float = 0.5, dropout_before_fc: bool = False,
                 width: float = 1.0, init: str = "normal_0.01"):
        kernel_init = layers.initializer(init)
        k = layers.act_width(act)  # GLU/Maxout consume k channels per output channel
        self.act = layers.activation(act)
        bias = lambda one: nnx.initializers.ones if one else nnx.initializers.zeros
        stack, c_in = [], in_channels
        for i, (c, kernel, stride, pad, groups, one, has_pool) in enumerate(convs):
            c = int(c * width)
            stack += [conv(c_in, c * k, kernel, stride, padding=pad, groups=groups,
                           kernel_init=kernel_init, bias_init=bias(one), rngs=rngs),
                      layers.make_norm(norm, c * k, rngs=rngs), self.act]
            if lrn and i < 2:
                stack.append(layers.LocalResponseNorm())
            if has_pool:
                stack.append(layers.downsample(pool, c, 3, 2, kernel_init=kernel_init,
                                               rngs=rngs))
            c_in = c
        self.convs = nnx.Sequential(*stack)
        self.avgpool = layers.AdaptiveAvgPool(6)
        hidden = int(4096 * width)
        dense = lambda i, o, one: nnx.Linear(i, o, kernel_init=kernel_init,
                                             bias_init=bias(one), rngs=rngs)
        self.drop6, self.drop7 = nnx.Dropout(dropout, rngs=rngs), nnx.Dropout(dropout, rngs=rngs)
        self.fc6 = dense(6 * 6 * c_in, hidden * k, True)
        self.fc7 = dense(hidden, hidden * k, True)
        self.head = dense(hidden, num_classes, False)
        self.dropout_before_fc = dropout_before_fc

    def features(self, x: jax.Array) -> jax.Array:
        """fc7's activations (after its ReLU), (B, 4096): what the classifier reads."""
        x = self.avgpool(self.convs(x))
        x = x.reshape(x.shape[0], -1)  # flattened in (H, W, C) order
        if self.dropout_before_fc:
            return self.act(self.fc7(self.drop7(self.act(self.fc6(self.drop6(x))))))
        return self.act(self.fc7(self.drop6(self.act(self.fc6(x)))))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.features(x)
        return self.head(x if self.dropout_before_fc else self.drop7(x))


@register("alexnet_paper_grouped", input_shape=(224, 224, 3), num_classes=1000,
          aliases=("alexnet",))
def alexnet_paper_grouped(**kwargs) -> AlexNet:
    """The paper's net: 96-256-384-384-256 convs, groups=2 on conv2/4/5, LRN (60,965,224)."""
    return AlexNet(convs=_PAPER, **kwargs)


@register("alexnet_one_tower", input_shape=(224, 224, 3), num_classes=1000,
          aliases=("alexnet_torchvision",))
def alexnet_one_tower(**kwargs) -> AlexNet:
    """torchvision's alexnet: 64-192-384-256-256 convs, no groups, no LRN (61,100,840)."""
    return AlexNet(convs=_ONE_TOWER, **{"lrn": False, "dropout_before_fc": True, **kwargs})
