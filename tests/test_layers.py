"""The building blocks of models/layers.py and models/conv_layers.py against direct NumPy
references (explicit loops / the papers' formulas) on small random inputs."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models import conv_layers, layers

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True, scope="module")
def fast_compiles():
    # Eager layer creation compiles one small XLA program per parameter shape, and XLA:CPU
    # spends ~1-3 s optimising each threefry sampler; unoptimised it is ~0.2 s. The numbers
    # are the same, so these tests turn optimisation off (and restore the setting after).
    before = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


# ---- local response normalisation -----------------------------------------------------------

def lrn_reference(a, n, k, alpha, beta):
    """Krizhevsky et al. 2012, sec. 3.3: sum over channels max(0, i-n/2) .. min(N-1, i+n/2)."""
    out = np.empty_like(a)
    channels = a.shape[-1]
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        s = (a[..., lo:hi + 1] ** 2).sum(-1)
        out[..., i] = a[..., i] / (k + alpha * s) ** beta
    return out


def test_lrn_defaults_are_the_papers():
    lrn = layers.LocalResponseNorm()
    assert (lrn.size, lrn.k, lrn.alpha, lrn.beta) == (5, 2.0, 1e-4, 0.75)
    x = 20 * rand(2, 3, 3, 11)  # large enough that the alpha term matters
    close(lrn(jnp.asarray(x)), lrn_reference(x, 5, 2.0, 1e-4, 0.75))


@pytest.mark.parametrize("n", [3, 5])
def test_lrn_matches_formula_with_strong_alpha(n):
    # A large alpha makes every neighbour's contribution visible, so a wrong window shows.
    x = rand(2, 4, 4, 7)
    lrn = layers.LocalResponseNorm(size=n, k=1.0, alpha=0.7, beta=0.75)
    close(lrn(jnp.asarray(x)), lrn_reference(x, n, 1.0, 0.7, 0.75))


def test_lrn_alpha_is_not_divided_by_n():
    # PyTorch/Caffe would give a / (k + alpha/n * sum)^beta; the paper (and we)
    # a / (k + alpha * sum)^beta.
    x = np.zeros((1, 1, 1, 5), np.float32)
    x[..., 2] = 10.0
    y = layers.LocalResponseNorm(size=5, k=2.0, alpha=1e-2, beta=1.0)(jnp.asarray(x))
    close(y[..., 2], 10.0 / (2.0 + 1e-2 * 100.0))


# ---- activations ----------------------------------------------------------------------------

def test_activation_names():
    for name in ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "softplus", "gelu",
                 "glu", "maxout"]:
        assert callable(layers.activation(name))
    with pytest.raises(ValueError, match="unknown activation"):
        layers.activation("swishy")
    x = rand(50)
    close(layers.activation("gelu")(x),  # the exact x * Phi(x)
          x * 0.5 * (1 + np.vectorize(math.erf)(x / np.sqrt(2))), 1e-5)
    close(layers.activation("elu")(x), np.where(x > 0, x, np.expm1(x)))
    close(layers.activation("leaky_relu")(x), np.where(x > 0, x, 0.01 * x))


def test_maxout_against_loops():
    x = rand(2, 3, 3, 12)
    for pieces in (2, 3, 4):
        ref = np.empty((2, 3, 3, 12 // pieces), np.float32)
        for i in range(12 // pieces):
            ref[..., i] = np.max([x[..., i * pieces + p] for p in range(pieces)], axis=0)
        close(layers.maxout(jnp.asarray(x), pieces), ref)
    close(layers.activation("maxout")(jnp.asarray(x)), np.maximum(x[..., 0::2], x[..., 1::2]))
    assert layers.act_width("maxout") == 2
    with pytest.raises(ValueError, match="divisible"):
        layers.maxout(jnp.ones((1, 5)), 2)


def test_glu_against_formula():
    x = rand(2, 3, 3, 8)
    a, b = x[..., :4], x[..., 4:]
    close(layers.glu(jnp.asarray(x)), a / (1 + np.exp(-b)))
    assert layers.act_width("glu") == 2 and layers.act_width("relu") == 1


def test_conv_norm_act_with_glu_keeps_requested_channels():
    unit = conv_layers.ConvNormAct(3, 6, 3, act="glu", rngs=nnx.Rngs(0))
    assert unit.conv.kernel.shape == (3, 3, 3, 12)
    assert unit(jnp.ones((1, 5, 5, 3))).shape == (1, 5, 5, 6)
    # On a depthwise conv, a channel-halving activation becomes a depth multiplier of 2.
    dw = conv_layers.ConvNormAct(4, 4, 3, groups=4, act="maxout", rngs=nnx.Rngs(0))
    assert dw(jnp.ones((1, 5, 5, 4))).shape == (1, 5, 5, 4)


# ---- convolutions ---------------------------------------------------------------------------

def conv_reference(x, kernel, stride, pad):
    """Direct NHWC cross-correlation, kernel (kh, kw, C_in, C_out), zero padding `pad`."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw, _, c_out = kernel.shape
    b, h, w, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    y = np.zeros((b, oh, ow, c_out), np.float32)
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            y[:, i, j] = np.einsum("buvc,uvco->bo", patch, kernel)
    return y


@pytest.mark.parametrize("stride,multiplier", [(1, 1), (2, 2)])
def test_depthwise_separable_against_loops(stride, multiplier):
    c_in, c_out = 3, 5
    layer = conv_layers.DepthwiseSeparableConv(c_in, c_out, 3, stride, padding=1,
                                               depth_multiplier=multiplier, rngs=nnx.Rngs(0))
    x = rand(2, 7, 7, c_in)
    dw = np.asarray(layer.depthwise.kernel[...])  # (3, 3, 1, c_in * m)
    assert dw.shape == (3, 3, 1, c_in * multiplier)
    # Depthwise: output channel o filters input channel o // m only.
    mid = np.concatenate([conv_reference(x[..., o // multiplier:o // multiplier + 1],
                                         dw[..., o:o + 1], stride, 1)
                          for o in range(c_in * multiplier)], axis=-1)
    pw = np.asarray(layer.pointwise.kernel[...])[0, 0]
    ref = mid @ pw + np.asarray(layer.pointwise.bias[...])
    close(layer(jnp.asarray(x)), ref, 1e-4)
    # Weights: k*k*C*m + C*m*C_out + C_out, against k*k*C*C_out + C_out for a full conv.
    n = sum(v.size for v in jax.tree.leaves(nnx.state(layer, nnx.Param)))
    assert n == 9 * c_in * multiplier + c_in * multiplier * c_out + c_out


def test_conv_helper_padding_dilation_groups():
    x = jnp.ones((1, 9, 9, 4))
    rngs = nnx.Rngs(0)
    assert conv_layers.conv(4, 8, 3, rngs=rngs)(x).shape == (1, 9, 9, 8)                  # SAME
    assert conv_layers.conv(4, 8, 3, padding="VALID", rngs=rngs)(x).shape == (1, 7, 7, 8)
    assert conv_layers.conv(4, 8, 3, 2, padding=1, rngs=rngs)(x).shape == (1, 5, 5, 8)
    assert conv_layers.conv(4, 8, 3, padding="VALID", dilation=2,
                            rngs=rngs)(x).shape == (1, 5, 5, 8)                           # 9-2*2
    grouped = conv_layers.conv(4, 8, 3, groups=2, rngs=rngs)
    assert grouped.kernel.shape == (3, 3, 2, 8)  # each group sees half the input channels
    assert conv_layers.conv1x1(4, 6, rngs=rngs)(x).shape == (1, 9, 9, 6)


def test_conv_against_loops():
    layer = conv_layers.conv(3, 4, 3, 2, padding=1, rngs=nnx.Rngs(1))
    x = rand(2, 6, 6, 3)
    ref = conv_reference(x, np.asarray(layer.kernel[...]), 2, 1) + np.asarray(layer.bias[...])
    close(layer(jnp.asarray(x)), ref, 1e-4)


@pytest.mark.parametrize("stride,padding", [(1, "VALID"), (2, "VALID"), (1, 1)])
def test_locally_connected_against_loops(stride, padding):
    c_in, c_out, k, size = 2, 3, 3, (6, 5)
    layer = conv_layers.LocallyConnected2D(c_in, c_out, k, size, stride, padding=padding,
                                           rngs=nnx.Rngs(0))
    layer.bias[...] = jnp.asarray(rand(*layer.bias.shape))
    x = rand(2, *size, c_in)
    pad = 0 if padding == "VALID" else padding
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    w, bias = np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])
    oh, ow = w.shape[:2]
    assert (oh, ow) == tuple((s + 2 * pad - k) // stride + 1 for s in size)
    ref = np.zeros((2, oh, ow, c_out), np.float32)
    for b in range(2):
        for i in range(oh):
            for j in range(ow):
                for o in range(c_out):
                    acc = bias[i, j, o]
                    for u in range(k):
                        for v in range(k):
                            for c in range(c_in):
                                acc += (xp[b, i * stride + u, j * stride + v, c]
                                        * w[i, j, u, v, c, o])
                    ref[b, i, j, o] = acc
    close(layer(jnp.asarray(x)), ref, 1e-4)
    # No sharing: one filter and bias per output position.
    assert w.shape == (oh, ow, k, k, c_in, c_out) and bias.shape == (oh, ow, c_out)


def test_pixel_shuffle_against_pytorch_definition():
    r, c = 3, 2
    x = rand(2, 4, 5, c * r * r)
    ref = np.empty((2, 4 * r, 5 * r, c), np.float32)
    for h in range(4):
        for w in range(5):
            for i in range(r):
                for j in range(r):
                    for ch in range(c):
                        ref[:, h * r + i, w * r + j, ch] = x[:, h, w, ch * r * r + i * r + j]
    close(conv_layers.PixelShuffle(r)(jnp.asarray(x)), ref, 0)
    with pytest.raises(ValueError, match="divisible"):
        conv_layers.PixelShuffle(2)(jnp.ones((1, 2, 2, 6)))


def test_sub_pixel_conv_upsamples():
    layer = conv_layers.SubPixelConv(3, 5, 2, rngs=nnx.Rngs(0))
    assert layer.conv.kernel.shape == (3, 3, 3, 5 * 4)
    assert layer(jnp.ones((1, 4, 6, 3))).shape == (1, 8, 12, 5)


def test_transposed_conv_is_the_adjoint_of_conv():
    """<conv(x), y> = <x, conv_transpose(y)> with the same kernel: the definition."""
    rngs = nnx.Rngs(0)
    down = nnx.Conv(3, 5, (4, 4), 2, padding="SAME", use_bias=False, rngs=rngs)
    up = conv_layers.ConvTranspose(5, 3, (4, 4), 2, padding="SAME", use_bias=False,
                                   transpose_kernel=True, rngs=rngs)
    up.kernel[...] = down.kernel[...]
    x, y = rand(1, 8, 8, 3), rand(1, 4, 4, 5)
    assert up(jnp.asarray(y)).shape == x.shape  # 2x upsampling
    close(jnp.vdot(down(jnp.asarray(x)), y), jnp.vdot(x, up(jnp.asarray(y))), 1e-3)


# ---- pooling and norms ----------------------------------------------------------------------

@pytest.mark.parametrize("kind,window,stride,padding,size,expected", [
    ("max", 2, None, "VALID", 8, 4),
    ("max", 3, 2, "VALID", 13, 6),     # AlexNet's overlapping pool
    ("max", 3, 2, "SAME", 112, 56),
    ("max", 3, 2, 1, 112, 56),         # ResNet's stem pool, padding 1
    ("avg", 2, 2, "VALID", 7, 3),
    ("avg", 5, 3, "VALID", 14, 4),     # GoogLeNet's auxiliary head
    ("avg", 3, 1, "SAME", 5, 5),
])
def test_pool_shapes(kind, window, stride, padding, size, expected):
    y = layers.Pool(kind, window, stride, padding)(jnp.ones((2, size, size, 3)))
    assert y.shape == (2, expected, expected, 3)


def test_pool_values():
    x = rand(1, 4, 4, 2)
    close(layers.Pool("max", 2)(jnp.asarray(x)), x.reshape(1, 2, 2, 2, 2, 2).max(axis=(2, 4)))
    close(layers.Pool("avg", 2)(jnp.asarray(x)), x.reshape(1, 2, 2, 2, 2, 2).mean(axis=(2, 4)))
    # Max pooling pads with -inf, not 0: an all-negative input never yields 0.
    negative = -1 - np.abs(rand(1, 4, 4, 1))
    y = layers.Pool("max", 3, 2, 1)(jnp.asarray(negative))
    assert float(y.max()) < 0
    with pytest.raises(ValueError, match="unknown pooling"):
        layers.Pool("median", 2)


@pytest.mark.parametrize("h,w", [(1, 1), (7, 9), (32, 17)])
def test_global_avg_pool_accepts_any_size(h, w):
    x = rand(2, h, w, 3)
    close(layers.GlobalAvgPool()(jnp.asarray(x)), x.mean(axis=(1, 2)))
    assert layers.GlobalAvgPool(keepdims=True)(jnp.asarray(x)).shape == (2, 1, 1, 3)


@pytest.mark.parametrize("size_in,size_out", [(14, 4), (13, 6), (7, 7), (1, 7), (5, 7)])
def test_adaptive_avg_pool_against_torch_bins(size_in, size_out):
    x = rand(2, size_in, size_in, 3)
    ref = np.empty((2, size_out, size_out, 3), np.float32)
    for i in range(size_out):
        for j in range(size_out):
            h0, h1 = (i * size_in) // size_out, -(-((i + 1) * size_in) // size_out)
            w0, w1 = (j * size_in) // size_out, -(-((j + 1) * size_in) // size_out)
            ref[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    close(layers.AdaptiveAvgPool(size_out)(jnp.asarray(x)), ref)


def test_downsample_by_name():
    rngs = nnx.Rngs(0)
    x = jnp.ones((1, 8, 8, 4))
    for kind in ("max", "avg", "strided_conv"):
        assert layers.downsample(kind, 4, 2, 2, rngs=rngs)(x).shape == (1, 4, 4, 4)
    with pytest.raises(ValueError, match="unknown pooling"):
        layers.downsample("lp", 4, 2, 2, rngs=rngs)


def test_norm_by_name():
    rngs = nnx.Rngs(0)
    bn = layers.make_norm("batch", 6, rngs=rngs)
    assert isinstance(bn, nnx.BatchNorm) and bn.scale.shape == (6,)
    assert isinstance(layers.make_norm("none", 6, rngs=rngs), layers.Identity)
    with pytest.raises(ValueError, match="unknown norm"):
        layers.norm_factory("group", rngs=rngs)
    # Train mode normalises with batch statistics and moves the running ones 10% (PyTorch's
    # momentum 0.1) towards them; eval mode normalises with the running statistics.
    x = 3 + 2 * rand(8, 2, 2, 6)
    close(bn(jnp.asarray(x)).mean(axis=(0, 1, 2)), np.zeros(6), 1e-4)
    close(bn.mean[...], 0.1 * x.mean(axis=(0, 1, 2)), 1e-4)
    close(bn.var[...], 0.9 + 0.1 * x.var(axis=(0, 1, 2)), 1e-4)
    bn.eval()
    close(bn(jnp.asarray(x)), (x - 0.1 * x.mean(axis=(0, 1, 2)))
          / np.sqrt(0.9 + 0.1 * x.var(axis=(0, 1, 2)) + 1e-5), 1e-4)


def test_dropout_respects_mode():
    d = nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=0))
    x = jnp.ones((1000,))
    assert 0.3 < float((d(x) == 0).mean()) < 0.7
    d.eval()
    close(d(x), x)
