"""DnCNN (Zhang, Zuo, Chen, Meng & Zhang 2017, "Beyond a Gaussian denoiser: residual learning of
deep CNN for image denoising", IEEE TIP; arXiv:1608.03981).

`depth` 3x3 convs of `width` channels, SAME padding (the paper pads with zeros so the output
keeps the input's size): conv + ReLU, then (conv + BN + ReLU) x (depth - 2), then a conv back to
the image's channels (sec. III-A). The network R predicts the noise v of y = x + v, and this
module returns the restored image y - R(y).

Why this is the paper's residual learning: its loss is
    l(Theta) = 1/(2N) sum_i || R(y_i; Theta) - (y_i - x_i) ||^2,
and || (y - R(y)) - x ||^2 = || R(y) - (y - x) ||^2 term by term, so the usual MSE between this
module's output and the clean image is the same loss (up to the constant factor of the mean),
with the same gradients and the same minimiser. A task can therefore treat DnCNN like any
image-to-image net.

Parameters of the grey net (depth 17, width 64), as the authors' PyTorch code (first conv with
bias, the BN'd convs and the last without):
    conv 1      9*1*64 + 64       =     640
    15 x conv   9*64*64           = 552,960
    15 x BN     2*64 (scale, bias) =   1,920
    conv 17     9*64*1            =     576
    total                           556,096 trainable (+ 1,920 running statistics)
(verified in tests/test_dense_models.py). Trained on 40x40 patches (sec. IV-A). He init.
"""

from __future__ import annotations

import jax
from flax import nnx

from models import layers
from models.conv_layers import ConvNormAct, conv
from models.registry import register


class DnCNN(nnx.Module):
    """(B, H, W, C) noisy -> (B, H, W, C) restored: `x - self.residual(x)`.

    Options: `depth` (17 for a known noise level, 20 for blind denoising), `width`, `norm`
    ("batch" as the paper, or "none": the middle convs then regain a bias), `act`.
    """

    upscale = 1

    def __init__(self, *, in_channels: int, rngs: nnx.Rngs, depth: int = 17, width: int = 64,
                 norm: str = "batch", act: str = "relu"):
        if depth < 2:
            raise ValueError(f"DnCNN depth must be at least 2, got {depth}")
        kernel_init = layers.initializer("he")
        body = [ConvNormAct(in_channels, width, 3, norm="none", act=act,
                            kernel_init=kernel_init, rngs=rngs)]
        # BatchNorm's epsilon 1e-4 as the authors' code.
        body += [ConvNormAct(width, width, 3, norm=norm, act=act, kernel_init=kernel_init,
                             norm_kwargs={"epsilon": 1e-4} if norm == "batch" else None,
                             rngs=rngs) for _ in range(depth - 2)]
        body.append(conv(width, in_channels, 3, use_bias=False, kernel_init=kernel_init,
                         rngs=rngs))
        self.residual = nnx.Sequential(*body)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x - self.residual(x)


@register("dncnn", input_shape=(40, 40, 1), num_classes=None, output="image")
def dncnn(**kwargs) -> DnCNN:
    """DnCNN-S (Zhang et al. 2017): 17 layers, predicts the noise of a grey 40x40 patch."""
    return DnCNN(**kwargs)
