"""Fully convolutional networks for semantic segmentation (Long, Shelhamer & Darrell 2015,
"Fully convolutional networks for semantic segmentation", CVPR; arXiv:1411.4038): FCN-32s,
FCN-16s and FCN-8s on VGG-16, and a small FCN for 64x64 digit scenes.

FCN-VGG16 keeps VGG-16's 13 convs and pools, turns the classifier's fc6 into a 7x7 conv with
4096 filters and fc7 into a 1x1 conv with 4096 (each with ReLU and dropout 0.5), and scores
the classes with a 1x1 conv at stride 32 (`score_fr`). FCN-32s upsamples those scores 32x to
the image; FCN-16s first upsamples them 2x and adds a 1x1-conv score of pool4, then upsamples
16x; FCN-8s adds a score of pool3 too, then upsamples 8x (sec. 4.2, fig. 3). As in the paper
(sec. 4.2-4.3): every score layer starts at zero (so a skip starts as a no-op and the net
starts where the coarser one stands), the intermediate 2x upsamplings are transposed convs
initialised to bilinear interpolation and learned, and the final upsampling is fixed bilinear
(no parameters; `learn_final_upsampling=True` makes it a learned one). The transposed convs are
full C x C kernels without bias, as the paper's Caffe nets (bilinear on the diagonal).

Parameters, verified by `tests/test_dense_models.py`, 21 classes (PASCAL VOC), RGB:
    VGG-16 convs                     14,714,688
    fc6  7*7*512*4096 + 4096        102,764,544
    fc7  4096*4096 + 4096            16,781,312
    score_fr  4096*21 + 21               86,037
    FCN-32s                         134,346,581   (the paper's Table 1: 134M)
    + score_pool4 512*21+21 = 10,773, upscore2 4*4*21*21 = 7,056
    FCN-16s                         134,364,410
    + score_pool3 256*21+21 = 5,397, upscore_pool4 7,056
    FCN-8s                          134,376,863
(the fixed final upsampling would add 64*64*21*21 = 1,806,336 weights to FCN-32s if learned).

Padding: option `padding`.
- "pad100" (default, the paper's Caffe nets): conv1_1 pads 100 pixels, pooling rounds up (Caffe),
  fc6 is an unpadded 7x7 conv, and each fusion and the output are crops of fixed offsets, so any
  input size works and the output is the input's H x W. The offsets follow from each layer's map
  from its index i to image coordinates a*i + b (conv k/pad p: b += a((k-1)/2 - p); 2x2/2 pool:
  b += a/2, a *= 2): pool3 8i - 95.5, pool4 16i - 91.5, fc6/score_fr 32i + 12.5; a transposed
  conv of stride f and kernel k puts output y at input (y - (k-1)/2)/f. So upscore2 (k=4) sits
  at 16y - 11.5 = pool4 at y + 5 (crop offset 5), upscore_pool4 at 8y - 23.5 = pool3 at y + 9
  (offset 9), and the final upsampling puts output y at image pixel y - 19 (32s), y - 27 (16s),
  y - 31 (8s): the released prototxts' crop offsets. The price: at 224x224, conv1 works on
  422x422, 3.5x the pixels.
- "same": 'SAME' convs (fc6 too) and floor pooling on an input whose H and W are multiples of
  32; every upsampling is then cropped by f/2, which is exactly bilinear upsampling on the
  input's pixel grid (models/upsampling.py). Cheaper, but other sizes raise a ValueError.

`init_from_vgg` copies an ImageNet VGG-16 (models/vgg.py) into the FCN: the convs as they are,
fc6/fc7 reshaped to convs ("convolutionalization", sec. 3.1).
"""

from __future__ import annotations

import jax
from flax import nnx

from models import layers, max_pool, upsampling
from models.conv_layers import ConvNormAct, conv1x1
from models.registry import register
from models.vgg import CONFIGS

PADDINGS = ("pad100", "same")
_ZEROS = nnx.initializers.zeros_init()
# pad100 crop offsets, derived in the module docstring.
_PAD100_SKIP_OFFSET = {"pool4": 5, "pool3": 9}
_PAD100_FINAL_OFFSET = {32: 19, 16: 27, 8: 31}


def vgg_stages(config: str = "D") -> list[list[int]]:
    """A VGG configuration split at its pools: D -> [[64, 64], [128, 128], [256]*3, ...]."""
    stages, current = [], []
    for item in CONFIGS[config]:
        if item == "M":
            stages.append(current)
            current = []
        elif isinstance(item, int):
            current.append(item)
        else:
            raise ValueError(f"FCN takes a VGG config of plain 3x3 convs, not {item!r}")
    return stages


class CeilMaxPool(nnx.Module):
    """2x2/2 max pooling that rounds the output size up, as Caffe does: an odd last row or
    column is pooled on its own (padded with -inf). Needed by the pad-100 geometry."""

    def __call__(self, x: jax.Array) -> jax.Array:
        pad = ((0, x.shape[1] % 2), (0, x.shape[2] % 2))
        return max_pool.max_pool(x, (2, 2), (2, 2), pad)


def fuse_same(coarse_up: jax.Array, skip_score: jax.Array, factor: int = 2) -> jax.Array:
    """SAME geometry: crop the full upsampled scores onto the skip's grid and add them."""
    size = skip_score.shape[1:3]
    return upsampling.crop(coarse_up, upsampling.same_offset(factor), size) + skip_score


def score_layer(in_features: int, num_classes: int, *, rngs: nnx.Rngs) -> nnx.Conv:
    """A 1x1 class-scoring conv, zero-initialised as the paper's (sec. 4.2-4.3)."""
    return conv1x1(in_features, num_classes, kernel_init=_ZEROS, bias_init=_ZEROS, rngs=rngs)


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def check_multiple(h: int, w: int, stride: int, model: str) -> None:
    if h % stride or w % stride or h < stride or w < stride:
        raise ValueError(f"{model} with SAME padding needs H and W that are positive multiples of "
                         f"{stride}, got {h}x{w}; pad or crop the image to one")


class FCN(nnx.Module):
    """FCN-32s, -16s or -8s (`stride` 32, 16 or 8) on VGG-16; (B, H, W, C) -> (B, H, W, K).

    Options: `padding` ("pad100", "same"; see the module docstring), `width` (multiplies every
    conv width, for small machines), `dropout` (after fc6 and fc7), `norm` (BatchNorm in the
    backbone, as vgg16_bn), `act`, `init` (backbone and fc6/fc7), `learn_final_upsampling`.
    """

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs, stride: int = 32,
                 padding: str = "pad100", width: float = 1.0, dropout: float = 0.5,
                 norm: str = "none", act: str = "relu", init: str = "glorot",
                 learn_final_upsampling: bool = False):
        if stride not in (32, 16, 8):
            raise ValueError(f"FCN stride must be 32, 16 or 8, got {stride}")
        if padding not in PADDINGS:
            raise ValueError(f"FCN padding {padding!r} is not one of {PADDINGS}")
        self.stride, self.padding = stride, padding
        kernel_init = layers.initializer(init)
        stage_widths = [[max(1, int(c * width)) for c in s] for s in vgg_stages("D")]
        self.stages = nnx.List(self._stages(stage_widths, in_channels, norm, act, kernel_init,
                                            rngs))
        c5, hidden = stage_widths[-1][-1], max(1, int(4096 * width))
        fc6_padding = "VALID" if padding == "pad100" else "SAME"
        self.fc6 = ConvNormAct(c5, hidden, 7, padding=fc6_padding, norm="none", act=act,
                               use_bias=True, kernel_init=kernel_init, rngs=rngs)
        self.fc7 = ConvNormAct(hidden, hidden, 1, padding="VALID", norm="none", act=act,
                               use_bias=True, kernel_init=kernel_init, rngs=rngs)
        self.drop6, self.drop7 = nnx.Dropout(dropout, rngs=rngs), nnx.Dropout(dropout, rngs=rngs)
        self.score_fr = score_layer(hidden, num_classes, rngs=rngs)
        if stride <= 16:
            self.score_pool4 = score_layer(stage_widths[3][-1], num_classes, rngs=rngs)
            self.upscore2 = upsampling.learned_upsample(num_classes, 2, rngs=rngs)
        if stride == 8:
            self.score_pool3 = score_layer(stage_widths[2][-1], num_classes, rngs=rngs)
            self.upscore_pool4 = upsampling.learned_upsample(num_classes, 2, rngs=rngs)
        self.upscore = upsampling.upsample(num_classes, stride, learned=learn_final_upsampling,
                                           rngs=rngs)

    def _stages(self, stage_widths, c_in, norm, act, kernel_init, rngs) -> list[nnx.Sequential]:
        stages = []
        for i, widths in enumerate(stage_widths):
            units = []
            for j, c in enumerate(widths):
                pad = 100 if (i, j) == (0, 0) and self.padding == "pad100" else "SAME"
                units.append(ConvNormAct(c_in, c, 3, padding=pad, norm=norm, act=act,
                                         use_bias=True, kernel_init=kernel_init, rngs=rngs))
                c_in = c
            pool = CeilMaxPool() if self.padding == "pad100" else layers.Pool("max", 2)
            stages.append(nnx.Sequential(*units, pool))
        return stages

    def input_size_for(self, oh: int, ow: int) -> tuple[int, int]:
        """pad100 takes any size; SAME padding multiples of 32."""
        if self.padding == "pad100":
            return oh, ow
        return round_up(oh, 32), round_up(ow, 32)

    def __call__(self, x: jax.Array) -> jax.Array:
        h, w = x.shape[1:3]
        if self.padding == "same":
            check_multiple(h, w, 32, f"FCN-{self.stride}s")
        pools = []
        for stage in self.stages:
            x = stage(x)
            pools.append(x)
        scores = self.score_fr(self.drop7(self.fc7(self.drop6(self.fc6(x)))))
        if self.stride <= 16:
            scores = self._fuse(self.upscore2(scores), self.score_pool4(pools[3]), "pool4")
        if self.stride == 8:
            scores = self._fuse(self.upscore_pool4(scores), self.score_pool3(pools[2]), "pool3")
        offset = (_PAD100_FINAL_OFFSET[self.stride] if self.padding == "pad100"
                  else upsampling.same_offset(self.stride))
        return upsampling.crop(self.upscore(scores), offset, (h, w))

    def _fuse(self, coarse_up: jax.Array, skip_score: jax.Array, skip: str) -> jax.Array:
        if self.padding == "same":
            return fuse_same(coarse_up, skip_score)
        # pad100: the skip's map is the larger one; crop it onto the upsampled scores.
        skip_score = upsampling.crop(skip_score, _PAD100_SKIP_OFFSET[skip], coarse_up.shape[1:3])
        return coarse_up + skip_score


def init_from_vgg(fcn: FCN, vgg: nnx.Module) -> None:
    """Copies a VGG-16 (models/vgg.py, same width and norm) into `fcn` in place: the 13 convs
    (and their norms) unchanged, fc6 (25088 x 4096, VGG flattens 7x7x512 in H, W, C order) as a
    7x7x512 conv kernel and fc7 as a 1x1 conv. Score and upsampling layers keep their init."""
    source = [m for m in vgg.convs.layers if isinstance(m, ConvNormAct)]
    target = [m for stage in fcn.stages for m in stage.layers if isinstance(m, ConvNormAct)]
    if len(source) != len(target):
        raise ValueError(f"VGG has {len(source)} convs, the FCN {len(target)}: use config D")
    for src, dst in zip(source, target):
        nnx.update(dst, nnx.state(src))
    for name in ("fc6", "fc7"):
        dense, unit = getattr(vgg, name), getattr(fcn, name)
        unit.conv.kernel[...] = dense.kernel[...].reshape(unit.conv.kernel.shape)
        unit.conv.bias[...] = dense.bias[...]


class FCNSmall(nnx.Module):
    """A small FCN for 64x64 digit scenes (10 digits + background): `len(widths)` stages of two
    3x3 conv+ReLU and a 2x2 max pool (default 3: features at 1/8), a 3x3 and a 1x1 conv of
    `head` channels in fc6/fc7's place, zero-initialised score layers, FCN-8s-style fusion of the
    scores of the `skips` stages before the last (1/4 and 1/2), each through a learned 2x
    upsampling, and a final learned upsampling (2x by default) initialised to bilinear.
    SAME padding throughout: H and W must be multiples of 2^len(widths). He initialisation, as
    it is trained from scratch. With the defaults (1 channel, 11 classes) 169,937 parameters:
    stages 2,480 + 13,888 + 55,424, fc6 3*3*64*128+128 = 73,856, fc7 16,512, scores
    128*11+11 + 32*11+11 + 16*11+11 = 1,969, three 4x4 upsamplings 3*4*4*11*11 = 5,808.
    """

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs,
                 widths: tuple[int, ...] = (16, 32, 64), head: int = 128, skips: int = 2,
                 dropout: float = 0.0, norm: str = "none", act: str = "relu"):
        if not 0 <= skips < len(widths):
            raise ValueError(f"skips must be in [0, {len(widths) - 1}], got {skips}")
        self.stride = 2 ** len(widths)
        kernel_init = layers.initializer("he")
        unit = lambda i, o, k=3: ConvNormAct(i, o, k, norm=norm, act=act,
                                             kernel_init=kernel_init, rngs=rngs)
        stages, c = [], in_channels
        for w in widths:
            stages.append(nnx.Sequential(unit(c, w), unit(w, w), layers.Pool("max", 2)))
            c = w
        self.stages = nnx.List(stages)
        self.fc6, self.fc7 = unit(c, head), unit(head, head, 1)
        self.drop = nnx.Dropout(dropout, rngs=rngs)
        self.score = score_layer(head, num_classes, rngs=rngs)
        skip_stages = range(len(widths) - 2, len(widths) - 2 - skips, -1)  # finer and finer
        self.skip_stages = tuple(skip_stages)
        self.skip_scores = nnx.List([score_layer(widths[i], num_classes, rngs=rngs)
                                     for i in skip_stages])
        self.skip_ups = nnx.List([upsampling.learned_upsample(num_classes, 2, rngs=rngs)
                                  for _ in skip_stages])
        self.final_factor = 2 ** (len(widths) - skips)
        self.upscore = upsampling.learned_upsample(num_classes, self.final_factor, rngs=rngs)

    def input_size_for(self, oh: int, ow: int) -> tuple[int, int]:
        """The smallest input of at least (oh, ow) this network takes: multiples of its stride
        (a segmentation task mirrors the image up to it and crops the output back)."""
        return round_up(oh, self.stride), round_up(ow, self.stride)

    def __call__(self, x: jax.Array) -> jax.Array:
        h, w = x.shape[1:3]
        check_multiple(h, w, self.stride, "fcn_small")
        pools = []
        for stage in self.stages:
            x = stage(x)
            pools.append(x)
        scores = self.score(self.drop(self.fc7(self.fc6(x))))
        for i, score, up in zip(self.skip_stages, self.skip_scores, self.skip_ups):
            scores = fuse_same(up(scores), score(pools[i]))
        offset = upsampling.same_offset(self.final_factor)
        return upsampling.crop(self.upscore(scores), offset, (h, w))


def _register_fcn(stride: int):
    name = f"fcn{stride}s"

    # The paper trains on PASCAL VOC images of up to 500x500 (20 classes + background).
    @register(name, input_shape=(500, 500, 3), num_classes=21, output="pixel_logits")
    def factory(**kwargs) -> FCN:
        return FCN(**{"stride": stride, **kwargs})

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"FCN-{stride}s on VGG-16 (Long et al. 2015)."
    return factory


fcn32s = _register_fcn(32)
fcn16s = _register_fcn(16)
fcn8s = _register_fcn(8)


@register("fcn_small", input_shape=(64, 64, 1), num_classes=11, output="pixel_logits")
def fcn_small(**kwargs) -> FCNSmall:
    """A small FCN-8s-style net for 64x64 digit scenes: 10 digits + background."""
    return FCNSmall(**kwargs)
