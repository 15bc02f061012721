"""A convolutional autoencoder: strided convolutions down to a small code, transposed
convolutions back up, a sigmoid on the output because the images are in [0, 1].

Denoising autoencoder (Vincent, Larochelle, Bengio & Manzagol 2008, "Extracting and composing
robust features with denoising autoencoders", ICML): the same network, trained to reconstruct
the clean image from a corrupted one (masking noise in the paper; Gaussian or salt-and-pepper
work too). The corruption belongs to the task, which draws it per example from its key and
computes the loss against the clean image, so there is no separate model class.
"""

from __future__ import annotations

import jax
from flax import nnx

from models import layers
from models.conv_layers import ConvNormAct, conv
from models.registry import register


class ConvAutoencoder(nnx.Module):
    """(B, H, W, C) in [0, 1] -> (B, H, W, C) in (0, 1).

    Encoder: one `kernel` x `kernel` stride-2 conv + norm + act per entry of `widths` (32x32 ->
    4x4 with the default three), then a 3x3 conv to `bottleneck` channels with no activation:
    the code, (H / 2^n, W / 2^n, bottleneck). Decoder, the mirror image: a 3x3 conv + act back
    to widths[-1] channels, then stride-2 transposed convs through the widths in reverse, the
    last to C channels, then the sigmoid. Kernel 4 with stride 2 (as DCGAN) lets every output
    pixel of a transposed conv receive the same number of taps, which avoids the checkerboard
    pattern of kernel 3 (Odena et al. 2016). H and W must be multiples of 2^len(widths).
    Defaults on 32x32x1: a 4x4x8 code (128 numbers for 1,024 pixels) and 347,593 parameters:
    encoder 4*4*1*32+32 + 4*4*32*64+64 + 4*4*64*128+128 + 3*3*128*8+8 = 173,800, decoder
    3*3*8*128+128 + 4*4*128*64+64 + 4*4*64*32+32 + 4*4*32*1+1 = 173,793.
    """

    upscale = 1  # output at the input's resolution

    def __init__(self, *, in_channels: int, rngs: nnx.Rngs,
                 widths: tuple[int, ...] = (32, 64, 128), bottleneck: int = 8,
                 kernel: int = 4, act: str = "relu", norm: str = "none"):
        if not widths:
            raise ValueError("the autoencoder needs at least one stage in `widths`")
        self.stride = 2 ** len(widths)
        # The transposed convs feed their activation directly: it must keep the channels.
        act_fn = layers.channel_preserving_activation(act, "the autoencoder")
        kernel_init = layers.initializer("he")
        unit = dict(norm=norm, act=act, kernel_init=kernel_init, rngs=rngs)
        down, c = [], in_channels
        for w in widths:
            down.append(ConvNormAct(c, w, kernel, 2, **unit))
            c = w
        self.encoder = nnx.Sequential(*down, conv(c, bottleneck, 3, kernel_init=kernel_init,
                                                  rngs=rngs))
        up = [ConvNormAct(bottleneck, c, 3, **unit)]
        for w in widths[-2::-1]:
            up += [nnx.ConvTranspose(c, w, (kernel, kernel), 2, padding="SAME",
                                     use_bias=norm == "none", kernel_init=kernel_init, rngs=rngs),
                   layers.make_norm(norm, w, rngs=rngs), act_fn]
            c = w
        up.append(nnx.ConvTranspose(c, in_channels, (kernel, kernel), 2, padding="SAME",
                                    kernel_init=kernel_init, rngs=rngs))
        self.decoder = nnx.Sequential(*up)

    def encode(self, x: jax.Array) -> jax.Array:
        """The code: (B, H / 2^n, W / 2^n, bottleneck)."""
        h, w = x.shape[1:3]
        if h % self.stride or w % self.stride:
            raise ValueError(f"the autoencoder halves the size {self.stride.bit_length() - 1} "
                             f"times: H and W must be multiples of {self.stride}, got {h}x{w}")
        return self.encoder(x)

    def decode(self, code: jax.Array) -> jax.Array:
        return nnx.sigmoid(self.decoder(code))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))


@register("conv_autoencoder", input_shape=(32, 32, 1), num_classes=None, output="image",
          aliases=("autoencoder",))
def conv_autoencoder(**kwargs) -> ConvAutoencoder:
    """Convolutional autoencoder for 32x32 grey images (also the denoising one)."""
    return ConvAutoencoder(**kwargs)
