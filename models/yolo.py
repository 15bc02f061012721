"""A single-shot detector in the style of YOLO v1 (Redmon, Divvala, Girshick & Farhadi 2016, "You
Only Look Once: Unified, Real-Time Object Detection", CVPR; arXiv:1506.02640), sized for the
64x64 digit scenes.

The paper's design (its Figure 3), scaled down: a 7x7 stride-2 convolution and a 2x2 max-pool,
then 3x3 convolutions alternating with 1x1 reductions and 2x2 max-pools down to the S x S grid,
leaky ReLU with slope 0.1 everywhere but the output, and a linear output layer (sec. 2.2) giving
per cell B boxes of (x, y, sqrt(w), sqrt(h), confidence) and C class probabilities:
(N, S, S, B*5 + C). x, y are the box centre's offset inside its cell, w, h its size as fractions
of the image; `tasks/detection.py` holds the loss and the decoding. The input size is fixed
(`input_size`, which must be 4 S times a power of two).

Two heads (`head`):
- "fc", the paper's: two fully connected layers (`hidden` units, dropout 0.5 between them) over
  the whole S x S map, reshaped to the grid; every cell's output sees the whole image.
- "conv" (default): a 1x1 convolution on the S x S map, each cell's output from the features
  of its own neighbourhood (53 pixels of receptive field at the defaults, more than a digit's
  24), as the fully convolutional detectors after YOLO v1 do. On the 2,000 digit scenes the
  paper's head, without the paper's ImageNet pretraining, learns boxes but not classes within a
  few thousand steps (class loss flat at the uniform guess, test mAP@0.5 0.066 after 2,000
  steps, where the convolutional head reaches the figure in experiments/detect_digit_scenes.py).

Layout at the defaults (64x64 grey input, S = 8, B = 2, C = 10, width 16), by input size:
    64x64  7x7/2 16                               > 2x2 max-pool
    16x16  3x3 32                                 > 2x2 max-pool
     8x8   1x1 32, 3x3 64, 1x1 32, 3x3 64        > 1x1 20 (conv head: 47,108 parameters)
                                or > 1x1 32 > flatten 2048 > fc 256 > dropout > fc 8*8*20 (fc)
Departure from the paper: BatchNorm after each convolution (`norm="batch"`, from YOLO v2), which
lets the small net train in minutes from scratch where the paper pretrains on ImageNet for a
week; `norm="none"` gives the paper's plain convolutions with biases.
"""

from __future__ import annotations

import functools

import jax
from flax import nnx

from models import layers
from models.conv_layers import conv
from models.registry import register

HEADS = ("conv", "fc")
leaky_relu_01 = functools.partial(jax.nn.leaky_relu, negative_slope=0.1)  # the paper's slope


class ConvUnit(nnx.Module):
    """conv > norm > leaky ReLU 0.1."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, *, norm: str,
                 rngs: nnx.Rngs):
        self.conv = conv(cin, cout, kernel, stride, use_bias=norm == "none", rngs=rngs)
        self.norm = layers.make_norm(norm, cout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return leaky_relu_01(self.norm(self.conv(x)))


def backbone_plan(input_size: int, grid_size: int, width: int,
                  head: str = "conv") -> list[list[tuple]]:
    """Stages of (kernel, channels, stride), a 2x2 max-pool after each stage but the last, which
    works on the S x S map: the 7x7/2 stem, then widths doubling per stage, the last one with
    two 1x1-reduction + 3x3 pairs (the paper's pattern), then for the fully connected head a
    1x1 narrowing."""
    ratio = input_size // (4 * grid_size)
    pools = ratio.bit_length() - 1
    if ratio < 1 or input_size % (4 * grid_size) or ratio != 2 ** pools:
        raise ValueError(f"input_size {input_size} must be 4 x grid_size ({grid_size}) times a "
                         "power of two")
    plan = [[(7, width, 2)]]
    for s in range(1, pools + 1):
        plan.append([(3, width * 2 ** s, 1)])
    c = width * 2 ** (pools + 1)
    plan.append([(1, c // 2, 1), (3, c, 1), (1, c // 2, 1), (3, c, 1)]
                + ([(1, width * 2, 1)] if head == "fc" else []))
    return plan


class YoloV1(nnx.Module):
    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 grid_size: int = 8, boxes_per_cell: int = 2, input_size: int = 64,
                 width: int = 16, head: str = "conv", hidden: int = 256, dropout: float = 0.5,
                 norm: str = "batch"):
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        self.grid_size, self.boxes_per_cell, self.input_size = grid_size, boxes_per_cell, input_size
        self.num_classes, self.head = num_classes, head
        self.per_cell = boxes_per_cell * 5 + num_classes
        body, cin = [], in_channels
        for s, stage in enumerate(backbone_plan(input_size, grid_size, width, head)):
            body += [layers.Pool("max", 2)] if s else []
            for kernel, cout, stride in stage:
                body.append(ConvUnit(cin, cout, kernel, stride, norm=norm, rngs=rngs))
                cin = cout
        self.body = nnx.Sequential(*body)
        if head == "fc":
            self.fc1 = nnx.Linear(grid_size * grid_size * cin, hidden, rngs=rngs)
            self.dropout = nnx.Dropout(dropout, rngs=rngs)
            self.fc2 = nnx.Linear(hidden, grid_size * grid_size * self.per_cell, rngs=rngs)
        else:
            self.out = conv(cin, self.per_cell, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.shape[1:3] != (self.input_size, self.input_size):
            raise ValueError(f"this detector takes {self.input_size}x{self.input_size} input, "
                             f"got {x.shape[1]}x{x.shape[2]}")
        x = self.body(x)
        if self.head == "conv":
            return self.out(x)
        x = self.dropout(leaky_relu_01(self.fc1(x.reshape(x.shape[0], -1))))
        s = self.grid_size
        return self.fc2(x).reshape(x.shape[0], s, s, self.per_cell)


@register("yolo_digits", input_shape=(64, 64, 1), num_classes=10, output="grid_detections",
          aliases=("yolo_v1_small",))
def yolo_digits(**kwargs) -> YoloV1:
    return YoloV1(**kwargs)
