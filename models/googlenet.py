"""GoogLeNet / Inception v1 (Szegedy et al. 2014, "Going deeper with convolutions"), in
torchvision's form (BatchNorm after every conv), with optional auxiliary classifiers.

Two layouts of the same layers: `layout="paper"` pads every conv and pool 'SAME' (the
paper's Table 1 sizes at 224); `layout="torchvision"` is torchvision's exact arithmetic, the
one its published weights were trained with: conv1 pads 3 on every side, the 3x3/2 pools
round up (`ceil_mode=True`), the pool after 4e is 2x2/2, and the auxiliary heads pool
adaptively to 4x4 without the paper's 5x5/3 average pool. The two differ in which pixels a
window sees (SAME pads conv1 by (2, 3)) and, at odd sizes, in the map sizes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from models import layers, max_pool
from models.conv_layers import ConvNormAct
from models.registry import register
from models.remat import rematerialisable

# Table 1: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj); "M" a 3x3/2 max pool.
INCEPTION = (("3a", 64, 96, 128, 16, 32, 32), ("3b", 128, 128, 192, 32, 96, 64), "M",
             ("4a", 192, 96, 208, 16, 48, 64), ("4b", 160, 112, 224, 24, 64, 64),
             ("4c", 128, 128, 256, 24, 64, 64), ("4d", 112, 144, 288, 32, 64, 64),
             ("4e", 256, 160, 320, 32, 128, 128), "M",
             ("5a", 256, 160, 320, 32, 128, 128), ("5b", 384, 192, 384, 48, 128, 128))
AUX_AFTER = ("4a", "4d")  # the auxiliary classifiers read these modules' outputs
LAYOUTS = ("paper", "torchvision")


class CeilMaxPool(layers.Pool):
    """Max pooling that rounds the output size up, as PyTorch's `ceil_mode=True` without
    padding: out = ceil((n - k) / s) + 1, the last window padded with -inf at the bottom and
    right. (The padding depends on the input size, so it is computed per call.)"""

    def __init__(self, window: int, stride: int):
        super().__init__("max", window, stride)

    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.window, self.stride
        extra = [(-(-(n - k) // s)) * s + k - n for n in x.shape[1:3]]
        return max_pool.max_pool(x, (k, k), (s, s), ((0, extra[0]), (0, extra[1])))


class Inception(nnx.Module):
    """Four parallel branches concatenated on channels: 1x1; 1x1 > 3x3; 1x1 > "5x5";
    3x3/1 max pool > 1x1. The 1x1 reductions keep the big kernels cheap."""

    def __init__(self, c_in: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int, *,
                 unit, b5_kernel: int):
        self.b1 = unit(c_in, c1, 1)
        self.b2 = nnx.Sequential(unit(c_in, c3r, 1), unit(c3r, c3, 3))
        self.b3 = nnx.Sequential(unit(c_in, c5r, 1), unit(c5r, c5, b5_kernel))
        self.b4 = nnx.Sequential(layers.Pool("max", 3, 1, "SAME"), unit(c_in, cp, 1))

    @rematerialisable
    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.concatenate([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], axis=-1)


class AuxHead(nnx.Module):
    """Auxiliary classifier: 5x5/3 average pool (14x14 -> 4x4) > 1x1 conv 128 > FC 1024 > ReLU >
    dropout 0.7 > FC classes. An `AdaptiveAvgPool(4)` after the pool (torchvision's) is the
    identity at 224 and keeps the FC's 2048 inputs on smaller images."""

    def __init__(self, c_in: int, num_classes: int, *, unit, act, kernel_init, rngs,
                 paper_pool: bool = True):
        self.paper_pool = paper_pool  # torchvision's heads pool adaptively only
        self.pool = layers.Pool("avg", 5, 3)
        self.resize = layers.AdaptiveAvgPool(4)
        self.conv = unit(c_in, 128, 1)
        self.act = layers.activation(act)
        self.fc1 = nnx.Linear(4 * 4 * 128, 1024 * layers.act_width(act),
                              kernel_init=kernel_init, rngs=rngs)
        self.dropout = nnx.Dropout(0.7, rngs=rngs)
        self.fc2 = nnx.Linear(1024, num_classes, kernel_init=kernel_init, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.paper_pool and min(x.shape[1:3]) >= 5:  # static shapes: the paper's pool, if it fits
            x = self.pool(x)
        x = self.conv(self.resize(x))
        x = self.act(self.fc1(x.reshape(x.shape[0], -1)))
        return self.fc2(self.dropout(x))


class GoogLeNet(nnx.Module):
    """Stem (7x7/2 conv, 3x3/2 max pool, 1x1 conv 64, 3x3 conv 192, 3x3/2 max pool), nine
    Inception modules with max pools after 3b and 4e, global average pool, dropout, FC
    (`head`); `features(x)` is the pooled 1024 channels.

    Auxiliary classifiers (`aux_logits=True`, paper sec. 5) read the outputs of 4a and 4d.
    In train mode (`model.train()`) the model sows each head's logits with
    `self.sow(nnx.Intermediate, "aux_logits", logits)` (a tuple of two, 4a's first) and still
    returns only the main logits; the trainer adds 0.3 x each head's cross-entropy, the
    paper's weighting. Collect them with `logits, inter = nnx.capture(model,
    nnx.Intermediate)(x)`, as the train step does. In eval mode (`model.eval()`, or
    `nnx.view(model, deterministic=True)`) the heads are not run at all.

    Matches torchvision's googlenet, the source of the published counts (6,624,904 and
    13,004,888 with the heads): convs without bias + BatchNorm (eps 1e-3), and the "5x5"
    branch uses a 3x3 kernel, torchvision's documented bug kept for its weights. The paper's
    net is `b5_kernel=5, norm='none', lrn=True` (LRN after the first pool and after the 3x3
    conv of the stem). Options: `layout` ('paper', 'torchvision': see the module docstring),
    `aux_logits`, `act`, `norm`, `lrn`, `b5_kernel`, `dropout` (paper 0.4; torchvision 0.2),
    `width` (multiplies every conv width), `init`.
    """

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 aux_logits: bool = False, act: str = "relu", norm: str = "batch",
                 lrn: bool = False, b5_kernel: int = 3, dropout: float = 0.4,
                 width: float = 1.0, init: str = "he", layout: str = "paper"):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown GoogLeNet layout {layout!r}; choose one of {LAYOUTS}")
        torchvision = layout == "torchvision"
        kernel_init = layers.initializer(init)
        unit = functools.partial(ConvNormAct, norm=norm, act=act, kernel_init=kernel_init,
                                 norm_kwargs={"epsilon": 1e-3} if norm == "batch" else None,
                                 rngs=rngs)
        w = lambda c: max(1, int(c * width))
        self.deterministic = False  # set by model.train()/eval() like Dropout's flag
        pool = (lambda k: CeilMaxPool(k, 2)) if torchvision else (
            lambda k: layers.Pool("max", 3, 2, "SAME"))
        stem = [unit(in_channels, w(64), 7, 2, padding=3 if torchvision else "SAME"), pool(3)]
        stem += [layers.LocalResponseNorm()] if lrn else []
        stem += [unit(w(64), w(64), 1), unit(w(64), w(192), 3)]
        stem += [layers.LocalResponseNorm()] if lrn else []
        stem += [pool(3)]
        self.stem = nnx.Sequential(*stem)
        blocks, aux, c = [], [], w(192)
        name = ""
        for spec in INCEPTION:
            if spec == "M":  # after 3b: 3x3/2; after 4e: 3x3/2 (paper), 2x2/2 (torchvision)
                blocks.append(pool(2 if torchvision and name == "4e" else 3))
                continue
            name, *widths = spec
            widths = [w(v) for v in widths]
            blocks.append(Inception(c, *widths, unit=unit, b5_kernel=b5_kernel))
            c = widths[0] + widths[2] + widths[4] + widths[5]
            if aux_logits and name in AUX_AFTER:
                aux.append(AuxHead(c, num_classes, unit=unit, act=act, kernel_init=kernel_init,
                                   rngs=rngs, paper_pool=not torchvision))
        self.blocks = nnx.List(blocks)
        self.aux_after = tuple(i for i, s in enumerate(INCEPTION) if s != "M"
                               and s[0] in AUX_AFTER) if aux_logits else ()
        self.aux = nnx.List(aux)
        self.pool = layers.GlobalAvgPool()
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(c, num_classes, kernel_init=kernel_init, rngs=rngs)

    def set_view(self, deterministic: bool | None = None):
        """`nnx.view(model, deterministic=True)` (inference) skips the heads, as eval() does."""
        if deterministic is not None:
            self.deterministic = deterministic

    def features(self, x: jax.Array) -> jax.Array:
        """The globally pooled output of 5b, (B, 1024); in train mode it also sows the
        auxiliary heads' logits."""
        x = self.stem(x)
        heads = iter(self.aux)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.aux_after:
                head = next(heads)
                if not self.deterministic:
                    self.sow(nnx.Intermediate, "aux_logits", head(x))
        return self.pool(x)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.dropout(self.features(x)))


@register("googlenet", input_shape=(224, 224, 3), num_classes=1000,
          aliases=("inception_v1",))
def googlenet(**kwargs) -> GoogLeNet:
    """GoogLeNet without auxiliary classifiers (6,624,904 parameters)."""
    return GoogLeNet(**{"aux_logits": False, **kwargs})


@register("googlenet_aux", input_shape=(224, 224, 3), num_classes=1000,
          aliases=("inception_v1_aux",))
def googlenet_aux(**kwargs) -> GoogLeNet:
    """GoogLeNet with both auxiliary classifiers (13,004,888 parameters)."""
    return GoogLeNet(**{"aux_logits": True, **kwargs})
