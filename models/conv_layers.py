"""Convolution layers: plain/1x1/grouped/dilated conv, depthwise-separable, locally connected,
transposed and sub-pixel convolution, and the conv > norm > activation unit most nets stack.

`nnx.Conv` already does stride, SAME/VALID/explicit padding, dilation and groups
(`feature_group_count`), and `nnx.ConvTranspose` transposed convolution; the helpers here only
give them the keyword names the papers use. All layers are NHWC. Every convolution of the zoo
is built by `Conv` (`nnx.Conv` whose lowering, XLA's convolution or patches + matmul, is
chosen per shape by `models.conv_lowering`), so the zoo's speed is tuned in that one place.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models import conv_lowering, layers

Conv = conv_lowering.Conv  # nnx.Conv lowered by shape: same parameters, faster small convs
ConvTranspose = nnx.ConvTranspose  # e.g. ConvTranspose(c, c, (4, 4), 2) upsamples 2x (SAME)


def _padding(padding):
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    return padding


def conv(in_features: int, out_features: int, kernel: int = 3, stride: int = 1, *,
         rngs: nnx.Rngs, padding: str | int | tuple = "SAME", dilation: int = 1,
         groups: int = 1, use_bias: bool = True, kernel_init=None,
         bias_init=None) -> nnx.Conv:
    """A k x k convolution. `padding` is 'SAME', 'VALID', an int p (p on every side, as
    PyTorch) or ((top, bottom), (left, right)); `groups` splits the channels into groups
    convolved separately (AlexNet's two towers; groups=in_features is depthwise)."""
    kwargs = {k: v for k, v in (("kernel_init", kernel_init), ("bias_init", bias_init)) if v}
    return Conv(in_features, out_features, (kernel, kernel), stride,
                padding=_padding(padding), kernel_dilation=dilation,
                feature_group_count=groups, use_bias=use_bias, rngs=rngs, **kwargs)


def conv1x1(in_features: int, out_features: int, stride: int = 1, *, rngs: nnx.Rngs,
            **kwargs) -> nnx.Conv:
    """A 1x1 convolution: a dense layer applied at every position (Lin et al. 2014)."""
    return conv(in_features, out_features, 1, stride, rngs=rngs, padding="VALID", **kwargs)


class DepthwiseSeparableConv(nnx.Module):
    """Depthwise k x k conv (one filter per input channel, `depth_multiplier` of them) then a
    1x1 pointwise conv mixing channels, with nothing in between (Chollet 2017; Keras'
    SeparableConv2D). k*k*C*m + C*m*C_out weights instead of k*k*C*C_out. MobileNet puts
    BatchNorm and ReLU after each half; it builds the halves from `ConvNormAct` instead."""

    def __init__(self, in_features: int, out_features: int, kernel: int = 3, stride: int = 1,
                 *, rngs: nnx.Rngs, padding: str | int | tuple = "SAME",
                 depth_multiplier: int = 1, use_bias: bool = True, kernel_init=None):
        mid = in_features * depth_multiplier
        self.depthwise = conv(in_features, mid, kernel, stride, padding=padding,
                              groups=in_features, use_bias=False, kernel_init=kernel_init,
                              rngs=rngs)
        self.pointwise = conv1x1(mid, out_features, use_bias=use_bias, kernel_init=kernel_init,
                                 rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.pointwise(self.depthwise(x))


class LocallyConnected2D(nnx.Module):
    """Like a convolution, but every output position has its own filter and bias: no weight
    sharing (DeepFace, Taigman et al. 2014, layers L4-L6). The input size must therefore be
    fixed at construction. Kernel shape (out_h, out_w, k, k, C_in, C_out), bias
    (out_h, out_w, C_out) as Keras' LocallyConnected2D.

        y[b, i, j, o] = bias[i, j, o]
                        + sum_{u, v, c} x[b, i*s + u, j*s + v, c] * kernel[i, j, u, v, c, o]

    (with `x` padded first when `padding` is not VALID).
    """

    def __init__(self, in_features: int, out_features: int, kernel: int,
                 input_size: tuple[int, int], stride: int = 1, *, rngs: nnx.Rngs,
                 padding: str | int | tuple = "VALID", use_bias: bool = True,
                 kernel_init=None):
        self.kernel_size, self.stride, self.padding = kernel, stride, _padding(padding)
        out = jax.eval_shape(self._patches,
                             jax.ShapeDtypeStruct((1, *input_size, in_features), jnp.float32))
        oh, ow = out.shape[1:3]
        # fan_in = k*k*C_in, each output position being its own "batch" of filters.
        init = kernel_init or nnx.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=(2, 3, 4), out_axis=5, batch_axis=(0, 1))
        self.kernel = nnx.Param(init(rngs.params(),
                                     (oh, ow, kernel, kernel, in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((oh, ow, out_features))) if use_bias else None

    def _patches(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        return jax.lax.conv_general_dilated_patches(
            x, (k, k), (self.stride, self.stride), self.padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def __call__(self, x: jax.Array) -> jax.Array:
        p = self._patches(x)  # (B, oh, ow, C*k*k), flattened in (c, u, v) order
        b, oh, ow, _ = p.shape
        k = self.kernel_size
        p = p.reshape(b, oh, ow, x.shape[-1], k, k)
        y = jnp.einsum("bijcuv,ijuvco->bijo", p, self.kernel[...])
        return y if self.bias is None else y + self.bias[...]


class PixelShuffle(nnx.Module):
    """Depth-to-space, the upsampling of the sub-pixel convolution (Shi et al. 2016):
    (B, H, W, C*r*r) -> (B, r*H, r*W, C) with

        y[b, h*r + i, w*r + j, c] = x[b, h, w, c*r*r + i*r + j]

    the channel ordering of PyTorch's `nn.PixelShuffle` (channel c's r*r sub-pixels are
    consecutive input channels). TensorFlow's `depth_to_space` orders them (i*r + j)*C + c
    instead, so weights do not move between the two without a permutation.
    """

    def __init__(self, upscale: int):
        self.upscale = upscale

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, crr = x.shape
        r = self.upscale
        if crr % (r * r):
            raise ValueError(f"pixel shuffle x{r} needs channels divisible by {r * r}, got {crr}")
        x = x.reshape(b, h, w, crr // (r * r), r, r)  # (.., c, i, j)
        x = x.transpose(0, 1, 4, 2, 5, 3)             # (b, h, i, w, j, c)
        return x.reshape(b, h * r, w * r, crr // (r * r))


class SubPixelConv(nnx.Module):
    """Sub-pixel convolution (Shi et al. 2016, ESPCN): a conv to C_out*r*r channels at low
    resolution, then `PixelShuffle(r)`: H x W x C_in -> rH x rW x C_out. The paper shows it
    computes a stride-1/r convolution while doing all its work at the low resolution."""

    def __init__(self, in_features: int, out_features: int, upscale: int, kernel: int = 3, *,
                 rngs: nnx.Rngs, kernel_init=None):
        self.conv = conv(in_features, out_features * upscale * upscale, kernel,
                         kernel_init=kernel_init, rngs=rngs)
        self.shuffle = PixelShuffle(upscale)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.shuffle(self.conv(x))


class ConvNormAct(nnx.Module):
    """conv > norm > activation, the unit VGG, GoogLeNet and MobileNet stack.

    The conv has a bias only when there is no norm after it (a norm's own bias makes it
    redundant) unless `use_bias` says otherwise. With a channel-reducing activation (GLU,
    Maxout) the conv produces `layers.act_width(act)` times `out_features` channels, so the
    unit still outputs `out_features`; on a depthwise conv (groups = in_features) this means
    a depth multiplier of 2.
    """

    def __init__(self, in_features: int, out_features: int, kernel: int = 3, stride: int = 1,
                 *, rngs: nnx.Rngs, padding: str | int | tuple = "SAME", groups: int = 1,
                 norm: str = "batch", act: str = "relu", use_bias: bool | None = None,
                 kernel_init=None, norm_kwargs: dict | None = None):
        width = layers.act_width(act)
        features = out_features * width
        self.conv = conv(in_features, features, kernel, stride, padding=padding, groups=groups,
                         use_bias=(norm == "none") if use_bias is None else use_bias,
                         kernel_init=kernel_init, rngs=rngs)
        self.norm = layers.make_norm(norm, features, rngs=rngs, **(norm_kwargs or {}))
        self.act = layers.activation(act)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.act(self.norm(self.conv(x)))
