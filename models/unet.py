"""U-Net (Ronneberger, Fischer & Brox 2015, "U-Net: Convolutional networks for biomedical image
segmentation", MICCAI; arXiv:1505.04597).

A contracting path of `depth` stages (two 3x3 conv + ReLU, then a 2x2/2 max pool; the width
doubles from `width` at each stage), a bottom stage of two convs, and an expanding path that
mirrors it: a 2x2/2 up-convolution halving the channels, concatenation with the contracting
stage's features (centre-cropped to the same size when the convs are unpadded), and two 3x3
conv + ReLU. A final 1x1 conv maps the `width` channels to the classes (sec. 2, fig. 1).

`padding="valid"` is the paper's: every conv loses 2 pixels, so a 572x572 tile gives a 388x388
map and the border context comes from the overlap-tile strategy (`output_size`,
`input_size_for`); the size before each pool must be even. `padding="same"` keeps the size: the
input must then be a multiple of 2^depth. `norm="batch"` puts BatchNorm after each conv (not in
the paper). Weights: He's Gaussian of std sqrt(2/N), N = 9 x input channels, as the paper.

Parameters of the paper's net (1 input channel, width 64, depth 4, 2 classes), a 3x3 conv
c -> c' having 9cc' + c' and a 2x2 up-conv 4cc' + c':
    down 1     1->64->64           640 +    36,928 =     37,568
    down 2    64->128->128      73,856 +   147,584 =    221,440
    down 3   128->256->256     295,168 +   590,080 =    885,248
    down 4   256->512->512   1,180,160 + 2,359,808 =  3,539,968
    bottom   512->1024->1024 4,719,616 + 9,438,208 = 14,157,824
    up 1  up 1024->512 2,097,664 + convs 1024->512->512 4,719,104 + 2,359,808 = 9,176,576
    up 2  up  512->256   524,544 + convs  512->256->256 1,179,904 +   590,080 = 2,294,528
    up 3  up  256->128   131,200 + convs  256->128->128   295,040 +   147,584 =   573,824
    up 4  up  128->64     32,832 + convs  128->64->64      73,792 +    36,928 =   143,552
    1x1   64->2                                                                    130
    total                                                                   31,030,658
the commonly quoted 31.03M (verified in tests/test_dense_models.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models import layers
from models.conv_layers import ConvNormAct, conv1x1
from models.registry import register

PADDINGS = ("valid", "same")


def center_crop(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """The central h x w of a (B, H, W, C) map (the paper's cropping of the skip features)."""
    h, w = size
    top, left = (x.shape[1] - h) // 2, (x.shape[2] - w) // 2
    return x[:, top:top + h, left:left + w]


class UNet(nnx.Module):
    """U-Net; (B, H, W, C) -> (B, H', W', K) with (H', W') = `output_size(H, W)`."""

    def __init__(self, *, num_classes: int, in_channels: int, rngs: nnx.Rngs, width: int = 64,
                 depth: int = 4, padding: str = "valid", norm: str = "none",
                 act: str = "relu"):
        if padding not in PADDINGS:
            raise ValueError(f"U-Net padding {padding!r} is not one of {PADDINGS}")
        if depth < 1:
            raise ValueError(f"U-Net depth must be at least 1, got {depth}")
        self.depth, self.padding = depth, padding
        pad = padding.upper()
        kernel_init = layers.initializer("he")

        def double_conv(c_in: int, c_out: int) -> nnx.Sequential:
            return nnx.Sequential(*[
                ConvNormAct(c, c_out, 3, padding=pad, norm=norm, act=act,
                            kernel_init=kernel_init, rngs=rngs) for c in (c_in, c_out)])

        widths = [width * 2 ** i for i in range(depth + 1)]
        self.down = nnx.List([double_conv(c_in, c) for c_in, c in
                              zip([in_channels, *widths[:-2]], widths[:-1])])
        self.pool = layers.Pool("max", 2)
        self.bottom = double_conv(widths[-2], widths[-1])
        self.upconvs = nnx.List([
            nnx.ConvTranspose(c, c // 2, (2, 2), 2, padding="VALID", kernel_init=kernel_init,
                              rngs=rngs) for c in widths[:0:-1]])
        self.up = nnx.List([double_conv(c, c // 2) for c in widths[:0:-1]])
        self.head = conv1x1(width, num_classes, kernel_init=kernel_init, rngs=rngs)

    # --- sizes: what a segmentation task and an overlap-tile predictor need ----------------

    def _side_out(self, n: int) -> int:
        """Output length for input length n; ValueError if n does not fit."""
        loss = 4 if self.padding == "valid" else 0  # two 3x3 convs per stage
        size = n
        for stage in range(self.depth):
            size -= loss
            if size < 2 or size % 2:
                raise ValueError(self._misfit(n, f"stage {stage + 1} gives {size} pixels before "
                                                 "its 2x2 pool, which needs an even size >= 2"))
            size //= 2
        size -= loss
        for _ in range(self.depth):
            size = 2 * size - loss
        if size < 1:
            raise ValueError(self._misfit(n, "the expanding path shrinks it to nothing"))
        return size

    def _misfit(self, n: int, why: str) -> str:
        return (f"U-Net ({self.padding} padding, depth {self.depth}) cannot take {n} pixels: "
                f"{why}; `input_size_for(h, w)` gives the smallest input that fits")

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """(H', W') of the output for an H x W input; ValueError for a size that does not fit
        (valid: 572 -> 388; same: H, W multiples of 2^depth map to themselves)."""
        return self._side_out(h), self._side_out(w)

    def _side_in(self, n_out: int) -> int:
        """The smallest fitting input length whose output is at least n_out."""
        step = 2 ** self.depth
        if self.padding == "same":
            return step * max(1, -(-n_out // step))
        # Fitting inputs are step * b + 4 (2^(depth+1) - 1) for a bottom size b + 4 (b >= 1);
        # the output, step * b - 4 (step - 1), grows with b.
        b = 1
        while step * b - 4 * (step - 1) < max(n_out, 1):
            b += 1
        return step * b + 4 * (2 * step - 1)

    def input_size_for(self, oh: int, ow: int) -> tuple[int, int]:
        """The smallest input (H, W) that fits and gives an output of at least oh x ow (valid,
        depth 4: 388 -> 572, 1 -> 188); with overlap-tiling, the extra border is context."""
        return self._side_in(oh), self._side_in(ow)

    # --- forward ---------------------------------------------------------------------------

    def __call__(self, x: jax.Array) -> jax.Array:
        self.output_size(x.shape[1], x.shape[2])  # a clear error before any shape mismatch
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for upconv, stage, skip in zip(self.upconvs, self.up, reversed(skips)):
            x = upconv(x)
            x = stage(jnp.concatenate([center_crop(skip, x.shape[1:3]), x], axis=-1))
        return self.head(x)


@register("unet", input_shape=(572, 572, 1), num_classes=2, output="pixel_logits")
def unet(**kwargs) -> UNet:
    """U-Net (Ronneberger et al. 2015): 572x572 grey tiles -> 388x388 maps of 2 classes."""
    return UNet(**kwargs)
