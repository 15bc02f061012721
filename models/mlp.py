"""The baselines the notes set convolution against: a fully connected network (the introductory
MNIST FFNN, 784 > 225 > 144 > 10: 210,240 weights) and the notes' small CNN on the same 28x28
input (9@5x5 > pool > 16@5x5 > pool > 10: 11,665 weights), so "more signals, fewer parameters"
is a runnable comparison (experiments/mlp_vs_cnn_digits.py)."""

from __future__ import annotations

from typing import Sequence

import jax
from flax import nnx

from models import layers
from models.conv_layers import Conv
from models.registry import register


class MLP(nnx.Module):
    """Flattened input > hidden dense layers with `act` > `head`; `hidden` sets the widths."""

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 input_size: int = 28, hidden: Sequence[int] = (225, 144), act: str = "relu"):
        widths = [input_size * input_size * in_channels, *hidden]
        self.hidden = nnx.List([nnx.Linear(i, o, rngs=rngs) for i, o in zip(widths, widths[1:])])
        self.head = nnx.Linear(widths[-1], num_classes, rngs=rngs)
        self.act = layers.activation(act)
        self.input_size = input_size

    def features(self, x: jax.Array) -> jax.Array:
        if x.shape[1:3] != (self.input_size, self.input_size):
            raise ValueError(f"mlp expects {self.input_size}x{self.input_size} inputs (got "
                             f"{x.shape[1]}x{x.shape[2]}): set model.input_size to the data's")
        x = x.reshape(x.shape[0], -1)
        for layer in self.hidden:
            x = self.act(layer(x))
        return x

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))


class LectureCNN(nnx.Module):
    """Conv 9@5x5 (same) > max-pool 2 > conv 16@5x5 (same) > max-pool 2 > dense: on 28x28 the
    signals are 784, 7,056 and 3,136 values, the weights 225 + 3,600 + 7,840 = 11,665."""

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 input_size: int = 28, act: str = "relu"):
        self.c1 = Conv(in_channels, 9, (5, 5), padding="SAME", rngs=rngs)
        self.c2 = Conv(9, 16, (5, 5), padding="SAME", rngs=rngs)
        side = input_size // 4
        self.head = nnx.Linear(side * side * 16, num_classes, rngs=rngs)
        self.act = layers.activation(act)
        self.pool = layers.Pool("max", 2)

    def features(self, x: jax.Array) -> jax.Array:
        x = self.pool(self.act(self.c1(x)))
        x = self.pool(self.act(self.c2(x)))
        return x.reshape(x.shape[0], -1)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))


@register("mlp", input_shape=(28, 28, 1), num_classes=10, aliases=("ffnn",))
def mlp(**kwargs) -> MLP:
    return MLP(**kwargs)


@register("lecture_cnn", input_shape=(28, 28, 1), num_classes=10)
def lecture_cnn(**kwargs) -> LectureCNN:
    return LectureCNN(**kwargs)
