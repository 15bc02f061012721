"""LeNet-5 (LeCun et al. 1998) and the lecture's Keras LeNet-like net."""

from __future__ import annotations

import jax
from flax import nnx

from models import layers
from models.conv_layers import Conv
from models.registry import register

# LeCun 1998 initialises weights uniformly in ±2.4/fan_in; variance scaling with fan_in is
# the modern equivalent and keeps the scaled tanh in its linear range at the start.
_lecun_init = nnx.initializers.lecun_normal()


class LeNet5(nnx.Module):
    """C1 6@5x5 > S2 > C3 16@5x5 > S4 > C5 120@5x5 > F6 84 > 10 outputs, on 32x32 input.

    C3 is fully connected to S2 (the common simplification of the paper's connection table);
    S2/S4 are subsampling without trainable coefficients: 61,706 parameters for 10 classes.
    The paper's RBF output layer is a dense layer here, as in every modern re-implementation.
    """

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 act: str = "lecun_tanh", pool: str = "avg"):
        conv = lambda i, o: Conv(i, o, (5, 5), padding="VALID", kernel_init=_lecun_init,
                                 rngs=rngs)
        self.c1, self.c3, self.c5 = conv(in_channels, 6), conv(6, 16), conv(16, 120)
        self.f6 = nnx.Linear(120, 84, kernel_init=_lecun_init, rngs=rngs)
        self.head = nnx.Linear(84, num_classes, kernel_init=_lecun_init, rngs=rngs)
        self.act = layers.activation(act)
        self.pool = layers.Pool(pool, 2)

    def features(self, x: jax.Array) -> jax.Array:
        """F6's 84 activations: the representation the output layer reads."""
        x = self.pool(self.act(self.c1(x)))
        x = self.pool(self.act(self.c3(x)))
        x = self.act(self.c5(x))          # 1x1x120 on a 32x32 input
        x = x.reshape(x.shape[0], -1)
        return self.act(self.f6(x))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))


class LeNetKeras(nnx.Module):
    """The lecture's Keras net: Conv(6,3x3) > AvgPool > Conv(16,3x3) > AvgPool > 120 > 84 > 10."""

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 act: str = "relu", input_size: int = 32):
        self.c1 = Conv(in_channels, 6, (3, 3), padding="VALID", rngs=rngs)
        self.c2 = Conv(6, 16, (3, 3), padding="VALID", rngs=rngs)
        side = ((input_size - 2) // 2 - 2) // 2
        self.f1 = nnx.Linear(side * side * 16, 120, rngs=rngs)
        self.f2 = nnx.Linear(120, 84, rngs=rngs)
        self.head = nnx.Linear(84, num_classes, rngs=rngs)
        self.act = layers.activation(act)
        self.pool = layers.Pool("avg", 2)

    def features(self, x: jax.Array) -> jax.Array:
        """The 84 activations of the second dense layer."""
        x = self.pool(self.act(self.c1(x)))
        x = self.pool(self.act(self.c2(x)))
        x = x.reshape(x.shape[0], -1)
        return self.act(self.f2(self.act(self.f1(x))))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))


# XLA's own reductions: LeNet-5's (pools and bias gradients over 6-16 channels, its constant
# scales reaching YNNPACK as whole tensors) run faster than YNNPACK's. Train step on the 2-core
# CPU, one process per setting, alternating, YNNPACK's -> XLA's ms: b128 6.48-6.66 ->
# 5.77-6.07, b32 2.68 -> 2.43, b512 30.1 -> 27.5; with max pools instead 8.6-8.9 -> 8.3.
# Networks with BatchNorm or wide maps lose without them (ResNet-20 b128 148 -> 216 ms,
# VGG-A at 64x64 b16 576-623 -> 700-785, AlexNet b8 275 -> 299), so it is LeNet-5's alone.
@register("lenet5", input_shape=(32, 32, 1), num_classes=10, aliases=("lenet",),
          ynn_reductions=False)
def lenet5(**kwargs) -> LeNet5:
    return LeNet5(**kwargs)


@register("lenet_keras_lecture", input_shape=(32, 32, 1), num_classes=10)
def lenet_keras_lecture(**kwargs) -> LeNetKeras:
    return LeNetKeras(**kwargs)
