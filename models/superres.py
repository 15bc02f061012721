"""Single-image super-resolution: SRCNN and ESPCN.

Each network has an `upscale` attribute, which tells a super-resolution task what to feed it:
1 (SRCNN) means the low-resolution image already upsampled (bicubic) to the target size, r
(ESPCN) the low-resolution image itself, which the network enlarges r times.

SRCNN (Dong, Loy, He & Tang 2014, "Learning a deep convolutional network for image
super-resolution", ECCV; the 9-1-5 net of sec. 3 and 4): on the bicubic-upsampled Y channel,
a 9x9 conv to 64 maps + ReLU (patch extraction), a 1x1 conv to 32 + ReLU (non-linear mapping),
and a 5x5 conv back to the channels (reconstruction). The paper counts 9*9*64 + 64*32 + 5*5*32
= 8,032 weights for one channel (without the 64 + 32 + 1 = 97 biases: 8,129 parameters).
Padding: `padding="same"` (our default) zero-pads every conv, so the output has the input's
size and the loss compares whole images; `"valid"` is the paper's, whose output is 12 pixels
smaller in H and W (33x33 sub-images -> 21x21, compared with the central 21x21 of the target).
Init: the paper's N(0, 0.001^2) weights and zero biases (`init="paper"`); `init="he"` trains
faster with plain SGD.

ESPCN (Shi, Caballero, Huszar, Totz, Aitken, Bishop, Rueckert & Wang 2016, "Real-time single
image and video super-resolution using an efficient sub-pixel convolutional neural network",
CVPR): on the low-resolution image, a 5x5 conv to 64 + tanh, a 3x3 conv to 32 + tanh (the
paper chose tanh over ReLU, sec. 3.2), and a 3x3 sub-pixel conv to C r^2 channels shuffled
into an rH x rW x C image (`models.conv_layers.SubPixelConv`). SAME padding. For r = 3 and one
channel: 1,664 + 18,464 + 2,601 = 22,729 parameters. Trained on 17x17 low-resolution patches
(17r x 17r high-resolution sub-images, sec. 3.2).
"""

from __future__ import annotations

import jax
from flax import nnx

from models import layers
from models.conv_layers import SubPixelConv, conv
from models.registry import register

_SRCNN_INITS = {"paper": nnx.initializers.normal(0.001), "he": layers.initializer("he")}


class SRCNN(nnx.Module):
    """(B, H, W, C) bicubic-upsampled -> (B, H, W, C) restored (H - 12, W - 12 when valid).

    Options: `filters` (n1, n2) = (64, 32), `kernels` (f1, f2, f3) = (9, 1, 5) (the paper's
    9-5-5 and 9-3-5 variants too), `padding` ("same", "valid"), `init` ("paper", "he").
    """

    upscale = 1

    def __init__(self, *, in_channels: int, rngs: nnx.Rngs, filters: tuple[int, int] = (64, 32),
                 kernels: tuple[int, int, int] = (9, 1, 5), padding: str = "same",
                 init: str = "paper"):
        if padding not in ("same", "valid"):
            raise ValueError(f"SRCNN padding {padding!r} is not 'same' or 'valid'")
        if init not in _SRCNN_INITS:
            raise ValueError(f"SRCNN init {init!r} is not one of {', '.join(_SRCNN_INITS)}")
        kw = dict(padding=padding.upper(), kernel_init=_SRCNN_INITS[init], rngs=rngs)
        (n1, n2), (f1, f2, f3) = filters, kernels
        self.patch_extraction = conv(in_channels, n1, f1, **kw)
        self.mapping = conv(n1, n2, f2, **kw)
        self.reconstruction = conv(n2, in_channels, f3, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.patch_extraction(x))
        x = nnx.relu(self.mapping(x))
        return self.reconstruction(x)


class ESPCN(nnx.Module):
    """(B, H, W, C) low-resolution -> (B, rH, rW, C), r = `scale` (= `self.upscale`).

    Options: `scale` (3 as the paper's main results), `filters` (64, 32), `act` ("tanh").
    """

    def __init__(self, *, in_channels: int, rngs: nnx.Rngs, scale: int = 3,
                 filters: tuple[int, int] = (64, 32), act: str = "tanh"):
        if scale < 1:
            raise ValueError(f"ESPCN scale must be at least 1, got {scale}")
        self.upscale = scale
        self.act = layers.channel_preserving_activation(act, "ESPCN")
        n1, n2 = filters
        self.conv1 = conv(in_channels, n1, 5, rngs=rngs)
        self.conv2 = conv(n1, n2, 3, rngs=rngs)
        self.subpixel = SubPixelConv(n2, in_channels, scale, 3, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.subpixel(x)


@register("srcnn", input_shape=(33, 33, 1), num_classes=None, output="image")
def srcnn(**kwargs) -> SRCNN:
    """SRCNN 9-1-5 (Dong et al. 2014) on 33x33 bicubic-upsampled Y sub-images."""
    return SRCNN(**kwargs)


@register("espcn", input_shape=(17, 17, 1), num_classes=None, output="image")
def espcn(**kwargs) -> ESPCN:
    """ESPCN (Shi et al. 2016), x3 by default, on 17x17 low-resolution Y patches."""
    return ESPCN(**kwargs)
