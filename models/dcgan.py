"""DCGAN (Radford, Metz and Chintala 2015): the generator and discriminator, as one pair.

Generator: z ~ N(0, I) of `z_dim` (100) is projected to 4x4 by a matrix (the paper's "project
and reshape"), then 4x4 stride-2 transposed convolutions double the side
up to `image_size`, each but the last followed by BatchNorm and ReLU; tanh output in [-1, 1].
Discriminator: the mirror, 4x4 stride-2 convolutions with LeakyReLU 0.2 and BatchNorm on every
layer but the first, a 4x4 valid convolution to one logit. Channels double at each halving
from `width` (64, as the paper): for 64x64, 512-256-128-64 in the generator.

Class-conditional (Mirza and Osindero 2014), `conditional=True`: the one-hot class joins z in
the generator and is broadcast to extra input planes of the discriminator.

Weights are drawn from N(0, 0.02), as the paper. The pair is one module (`generator`,
`discriminator`), so a run holds both players in one state; each keeps its own parameters,
BatchNorm statistics and (in the GAN task) optimizer.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.batch_norm import BatchNorm
from models.conv_layers import Conv
from models.registry import register

_init = nnx.initializers.normal(0.02)


def _levels(image_size: int) -> int:
    """Stride-2 stages between 4x4 and `image_size` (3 for 32x32, 4 for 64x64)."""
    levels = math.log2(image_size / 4) if image_size >= 8 else 0
    if levels != int(levels) or levels < 1:
        raise ValueError(f"DCGAN needs image_size 4 x a power of two >= 8 (32, 64, ...), "
                         f"got {image_size}")
    return int(levels)


# Per axis, a 4-tap stride-2 'SAME' transposed convolution is two 3-tap convolutions, one per
# output phase: y[2m] = k0 x[m-1] + k2 x[m], y[2m+1] = k1 x[m] + k3 x[m+1] (lax.conv_transpose's
# SAME padding). _PHASE_TAPS[phase, offset, tap] picks the kernel tap each offset m-1, m, m+1 uses.
# NumPy, not jnp: a JAX array made at import would start JAX's backend before
# `jax.distributed.initialize` (and costs 0.27 s of every launch).
_PHASE_TAPS = np.zeros((2, 3, 4), np.float32)
_PHASE_TAPS[0, 0, 0] = _PHASE_TAPS[0, 1, 2] = _PHASE_TAPS[1, 1, 1] = _PHASE_TAPS[1, 2, 3] = 1


class UpConv(nnx.Module):
    """`nnx.ConvTranspose(in, out, (4, 4), 2, padding="SAME")`, the same kernel (4, 4, in, out)
    and result, computed as one 3x3 convolution to the four output phases followed by a
    depth-to-space shuffle: XLA's CPU lowering of the input-dilated convolution a transposed
    convolution is costs several times more (tests/test_gan.py checks the two agree)."""

    def __init__(self, in_features: int, out_features: int, *, use_bias: bool, rngs: nnx.Rngs):
        self.kernel = nnx.Param(_init(rngs.params(), (4, 4, in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,))) if use_bias else None
        self.out_features = out_features

    def __call__(self, x: jax.Array) -> jax.Array:
        k = jnp.einsum("pat,qbu,tuio->abipqo", _PHASE_TAPS, _PHASE_TAPS, self.kernel[...])
        o = self.out_features
        y = jax.lax.conv_general_dilated(x, k.reshape(3, 3, x.shape[-1], 4 * o), (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        b, h, w, _ = y.shape
        y = y.reshape(b, h, w, 2, 2, o).transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, o)
        return y if self.bias is None else y + self.bias[...]


def _batch_norm(features: int, rngs: nnx.Rngs) -> BatchNorm:
    # momentum 0.9 is PyTorch's 0.1: the running statistics follow a generator that moves
    return BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)


class Generator(nnx.Module):
    def __init__(self, *, out_channels: int, image_size: int, z_dim: int, width: int,
                 num_classes: int, rngs: nnx.Rngs):
        levels = _levels(image_size)
        channels = [width * 2 ** (levels - 1 - i) for i in range(levels)]  # 256, 128, 64 at 32px
        self.z_dim, self.num_classes, self.image_size = z_dim, num_classes, image_size
        self.project = nnx.Linear(z_dim + num_classes, 16 * channels[0], use_bias=False,
                                  kernel_init=_init, rngs=rngs)
        self.norms = nnx.List([_batch_norm(ch, rngs) for ch in channels])
        self.ups = nnx.List([UpConv(a, b, use_bias=False, rngs=rngs)
                             for a, b in zip(channels[:-1], channels[1:])])
        self.out = UpConv(channels[-1], out_channels, use_bias=True, rngs=rngs)

    def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """(B, z_dim) noise (and (B,) class ids when conditional) -> (B, S, S, C) in [-1, 1]."""
        if self.num_classes:
            z = jnp.concatenate([z, jax.nn.one_hot(labels, self.num_classes, dtype=z.dtype)], -1)
        x = self.project(z).reshape(z.shape[0], 4, 4, -1)
        x = nnx.relu(self.norms[0](x))
        for up, norm in zip(self.ups, self.norms[1:]):
            x = nnx.relu(norm(up(x)))
        return jnp.tanh(self.out(x))


class Discriminator(nnx.Module):
    def __init__(self, *, in_channels: int, image_size: int, width: int, num_classes: int,
                 rngs: nnx.Rngs):
        levels = _levels(image_size)
        channels = [width * 2 ** i for i in range(levels)]  # 64, 128, 256 at 32px
        self.num_classes = num_classes
        self.convs = nnx.List([Conv(a, b, (4, 4), 2, padding="SAME", use_bias=i == 0,
                                    kernel_init=_init, rngs=rngs)
                               for i, (a, b) in enumerate(zip([in_channels + num_classes]
                                                              + channels[:-1], channels))])
        # none on the first layer (the paper: BatchNorm there made samples oscillate)
        self.norms = nnx.List([_batch_norm(ch, rngs) for ch in channels[1:]])
        self.out = Conv(channels[-1], 1, (4, 4), 1, padding="VALID", kernel_init=_init, rngs=rngs)

    def __call__(self, images: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """(B, S, S, C) in [-1, 1] (and (B,) class ids when conditional) -> (B,) logits."""
        x = images
        if self.num_classes:
            planes = jax.nn.one_hot(labels, self.num_classes, dtype=x.dtype)[:, None, None, :]
            x = jnp.concatenate([x, jnp.broadcast_to(planes, (*x.shape[:3], self.num_classes))],
                                -1)
        x = nnx.leaky_relu(self.convs[0](x), 0.2)
        for conv, norm in zip(self.convs[1:], self.norms):
            x = nnx.leaky_relu(norm(conv(x)), 0.2)
        return self.out(x).reshape(x.shape[0])


class DCGAN(nnx.Module):
    """The two players. Calling the pair generates: `pair(z, labels)` is `generator(z, labels)`."""

    def __init__(self, *, in_channels: int, rngs: nnx.Rngs, num_classes: int | None = None,
                 image_size: int = 64, z_dim: int = 100, width: int = 64,
                 conditional: bool = False):
        if conditional and not num_classes:
            raise ValueError("a conditional DCGAN needs labelled data (num_classes)")
        classes = int(num_classes) if conditional else 0
        self.z_dim, self.num_classes, self.image_size = z_dim, classes, image_size
        self.generator = Generator(out_channels=in_channels, image_size=image_size, z_dim=z_dim,
                                   width=width, num_classes=classes, rngs=rngs)
        self.discriminator = Discriminator(in_channels=in_channels, image_size=image_size,
                                           width=width, num_classes=classes, rngs=rngs)

    def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        return self.generator(z, labels)


@register("dcgan", input_shape=(64, 64, 3), num_classes=None, output="gan")
def dcgan(**kwargs) -> DCGAN:
    return DCGAN(**kwargs)
