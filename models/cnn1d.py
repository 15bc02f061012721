"""A 1-D CNN classifier for raw vibration signals, after WDCNN (Zhang et al. 2017, "A new deep
learning model for fault diagnosis with good anti-noise and domain adaptation ability on raw
vibration signals"): a wide first kernel that acts as a learned filter bank and shortens the
signal, then small 3-tap convolutions, each followed by BatchNorm, ReLU and 2x max pooling.

The first layer here is 32 taps at stride 4 where the paper's is 64 at stride 16: a fault shows
as the envelope of a 2.5-3.5 kHz resonance rung at the strike rate, and a linear filter
sampled every 16 samples (750 Hz at 12 kHz) aliases that carrier before any ReLU can rectify
it. On the `vibration` set the paper's 64/16 reached 76.8% test accuracy where 32/4 reached
96.0% (1,200 and 1,500 steps, 1,024-sample crops; experiments/vibration_1d.py);
`first_kernel=64, first_stride=16` is the paper's layer.

Input (B, T, C) float32, output (B, num_classes) logits. Where the paper flattens the last
feature map into a 100-unit layer (so one input length only), this net averages over time
first (`head="gap"`, the default) so any length of at least 256 samples works; `head="flatten"`
is the paper's, for `input_length` samples.
"""

from __future__ import annotations

import jax
from flax import nnx

from models import layers, layers_1d
from models.registry import register


class CNN1d(nnx.Module):
    """conv 32/4 (16) > pool > [conv 3 (32, 64, 64, 64) > pool] x 4 > 100 > classes."""

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 widths: tuple[int, ...] = (16, 32, 64, 64, 64), first_kernel: int = 32,
                 first_stride: int = 4, hidden: int = 100, norm: str = "batch",
                 act: str = "relu", head: str = "gap", input_length: int = 2048,
                 dropout: float = 0.0):
        if head not in ("gap", "flatten"):
            raise ValueError(f"unknown head {head!r}; choose 'gap' or 'flatten'")
        he = layers.initializer("he")
        norm_of = layers_1d.norm_factory(norm, rngs=rngs)
        self.convs = nnx.List([layers_1d.Conv1d(in_channels, widths[0], first_kernel,
                                                stride=first_stride, kernel_init=he, rngs=rngs)])
        self.convs.extend(layers_1d.Conv1d(i, o, 3, kernel_init=he, rngs=rngs)
                          for i, o in zip(widths[:-1], widths[1:]))
        self.norms = nnx.List([norm_of(w) for w in widths])
        self.pool = layers_1d.Pool1d("max", 2)
        self.act = layers.activation(act)
        self.head_kind = head
        length = -(-input_length // first_stride) // 2 ** len(widths)
        features = widths[-1] * (length if head == "flatten" else 1)
        if features < 1 or (head == "flatten" and length < 1):
            raise ValueError(f"input_length={input_length} is too short for {len(widths)} poolings")
        self.gap = layers_1d.GlobalPool1d("avg")
        self.hidden = nnx.Linear(features, hidden, kernel_init=he, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.out = nnx.Linear(hidden, num_classes, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """The hidden layer's activations, the representation the output layer reads."""
        for conv, norm in zip(self.convs, self.norms):
            x = self.pool(self.act(norm(conv(x))))
        x = self.gap(x) if self.head_kind == "gap" else x.reshape(x.shape[0], -1)
        return self.dropout(self.act(self.hidden(x)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.features(x))


@register("cnn1d", input_shape=(2048, 1), num_classes=4, aliases=("wdcnn",))
def cnn1d(**kwargs) -> CNN1d:
    return CNN1d(**kwargs)
