"""The dense-prediction and image-to-image networks: FCN, U-Net, the convolutional autoencoder,
DnCNN, SRCNN and ESPCN. Their published parameter counts (exact, built with `nnx.eval_shape`),
their output sizes, the bilinear initialisation of the transposed convs, U-Net's size
arithmetic, DnCNN's residual, and that a few Adam steps lower each one's loss (small widths:
a few seconds each on a busy 2-core CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import models
from errors import UserError
from analysis import summary_cli
from models import cli, fcn, upsampling
from tests.helpers import ROOT


@pytest.fixture(autouse=True, scope="module")
def fast_compiles():
    """XLA:CPU optimises each tiny program for seconds; unoptimised it compiles ~10x faster
    and computes the same numbers (as tests/test_model_zoo.py does)."""
    before = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


def count_params(model: nnx.Module) -> int:
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


def abstract_count(name: str, **options) -> int:
    return count_params(nnx.eval_shape(lambda: models.create(name, **options)))


def output_shape(name: str, shape: tuple[int, ...], **options) -> tuple[int, ...]:
    """The inference output shape for a (B, H, W, C) input, traced: nothing allocated."""
    def run(x):
        model = models.create(name, **options)
        model.eval()
        return model(x)
    return jax.eval_shape(run, jax.ShapeDtypeStruct(shape, jnp.float32)).shape


# ---- parameter counts ---------------------------------------------------------------------

VGG16_CONVS = 14_714_688  # VGG-16's 138,357,544 minus its three FC layers (123,642,856)
FCN32S = (VGG16_CONVS
          + 7 * 7 * 512 * 4096 + 4096  # fc6 as a 7x7 conv
          + 4096 * 4096 + 4096         # fc7 as a 1x1 conv
          + 4096 * 21 + 21)            # score_fr; the final upsampling is fixed: no parameters
SKIP4 = 512 * 21 + 21 + 4 * 4 * 21 * 21  # score_pool4 + the learned 2x upscore (no bias)
SKIP3 = 256 * 21 + 21 + 4 * 4 * 21 * 21  # score_pool3 + upscore_pool4


@pytest.mark.parametrize("name,expected", [
    ("fcn32s", FCN32S),                  # 134,346,581: Long et al.'s Table 1 gives 134M
    ("fcn16s", FCN32S + SKIP4),          # 134,364,410
    ("fcn8s", FCN32S + SKIP4 + SKIP3),   # 134,376,863
    # U-Net: 3x3 convs 9cc'+c', 2x2 up-convs 4cc'+c' (the sum per stage is in models/unet.py):
    # down 37,568 + 221,440 + 885,248 + 3,539,968, bottom 14,157,824,
    # up 9,176,576 + 2,294,528 + 573,824 + 143,552, 1x1 head 64*2+2 = 130.
    ("unet", 31_030_658),
    # DnCNN, grey: 9*1*64+64 + 15*(9*64*64 + 2*64 BN scale/bias) + 9*64*1 (no bias).
    ("dncnn", 640 + 15 * (36_864 + 128) + 576),  # 556,096
    # ESPCN x3: 25*1*64+64 + 9*64*32+32 + 9*32*9+9.
    ("espcn", 1_664 + 18_464 + 2_601),           # 22,729
    # The defaults of fcn_small and conv_autoencoder (sums in their docstrings).
    ("fcn_small", 169_937),
    ("conv_autoencoder", 347_593),
])
def test_parameter_count(name, expected):
    assert abstract_count(name) == expected


def test_srcnn_counts_8032_weights_as_the_paper():
    model = nnx.eval_shape(lambda: models.create("srcnn"))
    weights = sum(m.kernel.size for _, m in nnx.iter_graph(model) if isinstance(m, nnx.Conv))
    assert weights == 9 * 9 * 64 + 64 * 32 + 5 * 5 * 32 == 8_032
    assert count_params(model) == 8_032 + 64 + 32 + 1  # with the biases


def test_fcn_width_option_shrinks_the_net():
    assert abstract_count("fcn8s", width=0.125) < FCN32S / 50


# ---- output sizes -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s"])
@pytest.mark.parametrize("side", [(224, 224), (500, 500), (97, 130)])
def test_fcn_pad100_output_has_the_input_size(name, side):
    assert output_shape(name, (1, *side, 3), width=0.0625) == (1, *side, 21)


@pytest.mark.parametrize("name", ["fcn32s", "fcn8s"])
def test_fcn_same_padding_takes_multiples_of_32(name):
    assert output_shape(name, (2, 224, 160, 3), padding="same", width=0.0625) == (2, 224, 160, 21)
    with pytest.raises(ValueError, match="multiples of 32"):
        output_shape(name, (1, 500, 500, 3), padding="same", width=0.0625)


def test_fcn_small_and_its_options():
    assert output_shape("fcn_small", (2, 64, 64, 1)) == (2, 64, 64, 11)
    assert output_shape("fcn_small", (1, 48, 80, 1), skips=0) == (1, 48, 80, 11)
    with pytest.raises(ValueError, match="multiples of 8"):
        output_shape("fcn_small", (1, 60, 64, 1))


def test_unet_valid_572_to_388_and_same():
    assert output_shape("unet", (1, 572, 572, 1)) == (1, 388, 388, 2)
    assert output_shape("unet", (1, 64, 96, 1), padding="same", width=4) == (1, 64, 96, 2)
    with pytest.raises(ValueError, match="570 pixels"):
        output_shape("unet", (1, 570, 572, 1), width=4)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_espcn_enlarges_by_its_scale(scale):
    model = nnx.eval_shape(lambda: models.create("espcn", scale=scale))
    assert model.upscale == scale
    assert output_shape("espcn", (2, 17, 13, 1), scale=scale) == (2, 17 * scale, 13 * scale, 1)


@pytest.mark.parametrize("name,shape", [("dncnn", (2, 40, 40, 1)), ("srcnn", (2, 33, 33, 1)),
                                        ("conv_autoencoder", (2, 32, 32, 1)),
                                        ("dncnn", (1, 37, 50, 3)), ("srcnn", (1, 21, 30, 3))])
def test_image_nets_keep_the_size_and_upscale_1(name, shape):
    assert output_shape(name, shape, in_channels=shape[-1]) == shape
    assert nnx.eval_shape(lambda: models.create(name)).upscale == 1


def test_srcnn_valid_padding_loses_12_pixels():
    assert output_shape("srcnn", (1, 33, 33, 1), padding="valid") == (1, 21, 21, 1)


def test_autoencoder_code_and_bad_size():
    code = jax.eval_shape(lambda x: models.create("conv_autoencoder").encode(x),
                          jax.ShapeDtypeStruct((1, 32, 32, 1), jnp.float32))
    assert code.shape == (1, 4, 4, 8)
    with pytest.raises(ValueError, match="multiples of 8"):
        output_shape("conv_autoencoder", (1, 28, 28, 1))


def test_image_nets_register_without_classes():
    for name in ("conv_autoencoder", "dncnn", "srcnn", "espcn"):
        assert (models.spec(name).output, models.spec(name).num_classes) == ("image", None)
    for name in ("fcn32s", "fcn16s", "fcn8s", "fcn_small", "unet"):
        assert models.spec(name).output == "pixel_logits"


# ---- upsampling ---------------------------------------------------------------------------

@pytest.mark.parametrize("learned", [False, True])
@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bilinear_transposed_conv_is_bilinear_upsampling(learned, factor):
    """A smooth 2-channel image upsampled by the bilinear-initialised transposed conv and
    cropped by f/2 equals half-pixel bilinear resizing away from the zero-padded border."""
    n = 10
    yy, xx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    image = np.stack([np.sin(yy / 3) + np.cos(xx / 4), yy * xx / 50.0], -1)[None]
    x = jnp.asarray(image, jnp.float32)
    layer = upsampling.upsample(2, factor, learned=learned, rngs=nnx.Rngs(0))
    full = layer(x)
    k = upsampling.kernel_size(factor)
    assert full.shape == (1, (n - 1) * factor + k, (n - 1) * factor + k, 2)
    up = upsampling.crop(full, upsampling.same_offset(factor), (n * factor, n * factor))
    ref = jax.image.resize(x, up.shape, "linear")
    inner = slice(factor, -factor)
    np.testing.assert_allclose(up[:, inner, inner], ref[:, inner, inner], atol=1e-5)
    assert learned == bool(jax.tree.leaves(nnx.state(layer, nnx.Param)))


def test_bilinear_init_does_not_mix_channels():
    kernel = upsampling.bilinear_init(2)(None, (4, 4, 3, 3))
    assert float(jnp.abs(kernel[:, :, 0, 1]).max()) == 0.0
    np.testing.assert_allclose(kernel[:, :, 1, 1].sum(), 4.0)  # f^2: each output sums to 1
    with pytest.raises(ValueError):
        upsampling.bilinear_init(2)(None, (4, 4, 3, 5))


def _image_coordinate(ops):
    """Maps a layer index i to image coordinates a*i + b through ops applied in order:
    ('conv', k, s, pad) and ('deconv', k, s) (Caffe's coord_map)."""
    a, b = 1.0, 0.0
    for op, k, s, *pad in ops:
        if op == "conv":   # output i looks at input s*i + (k-1)/2 - pad
            a, b = a * s, b + a * ((k - 1) / 2 - pad[0])
        else:              # output y sits at input (y - (k-1)/2) / s
            a, b = a / s, b - a / s * (k - 1) / 2
    return a, b


def test_fcn_pad100_crop_offsets_follow_from_the_geometry():
    conv3, pool = ("conv", 3, 1, 1), ("conv", 2, 2, 0)
    stage = lambda n: [conv3] * n + [pool]
    to_pool3 = [("conv", 3, 1, 100), conv3, pool] + stage(2) + stage(3)
    to_pool4 = to_pool3 + stage(3)
    to_score = to_pool4 + stage(3) + [("conv", 7, 1, 0)]
    up2 = to_score + [("deconv", 4, 2)]
    up4 = up2 + [("deconv", 4, 2)]
    pool3, pool4 = _image_coordinate(to_pool3), _image_coordinate(to_pool4)
    # upscore2's index y and pool4's index y + 5 are the same image point; likewise pool3's.
    a, b = _image_coordinate(up2)
    assert a == pool4[0] and (b - pool4[1]) / a == fcn._PAD100_SKIP_OFFSET["pool4"] == 5
    a, b = _image_coordinate(up4)
    assert a == pool3[0] and (b - pool3[1]) / a == fcn._PAD100_SKIP_OFFSET["pool3"] == 9
    for stride, before in [(32, to_score), (16, up2), (8, up4)]:
        k = upsampling.kernel_size(stride)
        assert _image_coordinate(before + [("deconv", k, stride)]) == (
            1.0, -fcn._PAD100_FINAL_OFFSET[stride])


def test_init_from_vgg_convolutionalizes_fc6():
    vgg = models.create("vgg16", width=1 / 32)
    net = models.create("fcn32s", width=1 / 32)
    fcn.init_from_vgg(net, vgg)
    x = jax.random.normal(jax.random.key(0), (1, 7, 7, 16))
    np.testing.assert_allclose(net.fc6.conv(x).reshape(1, -1), vgg.fc6(x.reshape(1, -1)),
                               rtol=1e-5, atol=1e-5)
    first = net.stages[0].layers[0].conv.kernel[...]
    np.testing.assert_array_equal(first, vgg.convs.layers[0].conv.kernel[...])


# ---- U-Net sizes --------------------------------------------------------------------------

def test_unet_sizes_round_trip():
    net = nnx.eval_shape(lambda: models.create("unet"))
    assert net.output_size(572, 572) == (388, 388)
    assert net.input_size_for(388, 388) == (572, 572)
    assert net.input_size_for(1, 1) == (188, 188)  # the smallest tile: 4x4 out
    for target in (1, 5, 100, 388, 389, 1000):
        h, _ = net.input_size_for(target, target)
        out, _ = net.output_size(h, h)
        assert out >= target
        # The previous fitting input (16 pixels smaller) falls short, or does not fit at all.
        try:
            assert net.output_size(h - 16, h - 16)[0] < target
        except ValueError:
            pass
        with pytest.raises(ValueError, match="cannot take"):
            net.output_size(h - 1, h)


def test_unet_same_padding_sizes():
    net = nnx.eval_shape(lambda: models.create("unet", padding="same", depth=3))
    assert net.output_size(64, 40) == (64, 40)
    assert net.input_size_for(61, 1) == (64, 8)
    with pytest.raises(ValueError, match="even size"):
        net.output_size(60, 64)


# ---- DnCNN's residual ---------------------------------------------------------------------

def test_dncnn_returns_input_minus_its_residual_branch():
    net = models.create("dncnn", depth=4, width=8)
    net.eval()
    x = jax.random.uniform(jax.random.key(1), (2, 16, 16, 1))
    np.testing.assert_allclose(net(x), x - net.residual(x), rtol=1e-6, atol=1e-6)
    assert len(net.residual.layers) == 4
    assert net.residual.layers[-1].bias is None  # the last conv has no bias, as the paper's


# ---- each net trains ----------------------------------------------------------------------

def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def mse(pred, target):
    return jnp.mean((pred - target) ** 2)


def adam_losses(model: nnx.Module, x, target, loss_fn, steps: int = 6, lr: float = 1e-3):
    """Train-mode losses of `steps` jitted Adam steps on one batch, stepped as the trainer
    does: split once, merged inside the step, `nnx.value_and_grad` carrying the in-place
    updates (batch statistics, RNG counters) out of the differentiation."""
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(lr)

    @jax.jit
    def step(params, rest, opt_state):
        m = nnx.merge(graphdef, params, rest)
        value, grads = nnx.value_and_grad(lambda m: loss_fn(m(x), target))(m)
        updates, opt_state = tx.update(grads, opt_state, params)
        rest = nnx.split(m, nnx.Param, ...)[2]
        return optax.apply_updates(params, updates), rest, opt_state, value

    opt_state, losses = tx.init(params), []
    for _ in range(steps):
        params, rest, opt_state, value = step(params, rest, opt_state)
        losses.append(float(value))
    return losses


KEY = jax.random.key(0)
TRAIN = {  # name: (options, input shape, what the target is)
    "fcn8s": ({"width": 1 / 32, "dropout": 0.0}, (2, 32, 32, 3), "labels"),
    "fcn_small": ({"widths": (4, 8, 16), "head": 16}, (2, 32, 32, 1), "labels"),
    "unet": ({"width": 4, "depth": 2}, (2, 44, 44, 1), "labels"),  # valid: 44 -> 4
    "conv_autoencoder": ({"widths": (8, 16), "bottleneck": 4}, (4, 16, 16, 1), "input"),
    "dncnn": ({"depth": 5, "width": 8}, (4, 16, 16, 1), "clean"),
    "srcnn": ({"filters": (16, 8)}, (4, 16, 16, 1), "clean"),
    "espcn": ({"filters": (16, 8), "scale": 2}, (4, 8, 8, 1), "high_res"),
}


@pytest.mark.parametrize("name", sorted(TRAIN))
def test_a_few_adam_steps_lower_the_loss(name):
    options, shape, kind = TRAIN[name]
    model = models.create(name, **options)
    kx, ky = jax.random.split(KEY)
    x = jax.random.uniform(kx, shape)
    if kind == "labels":
        out = jax.eval_shape(model, x).shape
        target = jax.random.randint(ky, out[:3], 0, out[3])
        # Learn a map that depends on the input (a thresholded channel), not noise alone.
        target = jnp.where(jax.image.resize(x[..., :1], (*out[:3], 1), "linear")[..., 0] > 0.5,
                           target, 0)
        loss_fn = cross_entropy
    else:
        clean = jax.random.uniform(ky, shape)
        if kind == "input":
            target = x
        elif kind == "clean":
            target, x = clean, clean + 0.1 * jax.random.normal(kx, shape)
        else:  # super-resolution: the high-resolution image of the low-resolution input
            target = jax.image.resize(x, (shape[0], 2 * shape[1], 2 * shape[2], shape[3]),
                                      "linear")
        loss_fn = mse
    losses = adam_losses(model, x, target, loss_fn)
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses


# ---- command line and registry ------------------------------------------------------------

def test_models_list_shows_the_output_kind(capsys):
    assert cli.main([]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["unet"][1:5] == ["572x572x1", "2", "classes", "pixel_logits"]
    assert rows["srcnn"][1:4] == ["33x33x1", "-", "image"]


def test_summary_of_image_and_pixel_nets(capsys):
    assert summary_cli.main(["srcnn", "--input", "33x33x1", "--json"]) == 0
    sheet = json.loads(capsys.readouterr().out)
    assert (sheet["params"], sheet["output_shape"], sheet["num_classes"]) == (
        8_129, [33, 33, 1], None)
    assert summary_cli.main(["unet", "--json", "--no-compile"]) == 0
    sheet = json.loads(capsys.readouterr().out)
    assert (sheet["params"], sheet["output_shape"], sheet["num_classes"]) == (
        31_030_658, [388, 388, 2], 2)
    with pytest.raises(UserError, match="not classes"):
        summary_cli.main(["dncnn", "--num-classes", "3"])
    with pytest.raises(UserError, match="cannot take 570"):
        summary_cli.main(["unet", "--input", "570x570", "--no-compile"])


def test_registry_imports_no_family_and_is_full_from_any_entry_point():
    """`models/__init__` imports the families after the registry, so the table is full
    whichever module is imported first, and registry.py itself imports none."""
    code = ("import models.vgg, models.registry as r; import sys; "
            "assert {'unet', 'vgg_d', 'srcnn'} <= set(r.names()); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.stdout.strip() == "ok", done.stderr
    assert "families" not in (ROOT / "models" / "registry.py").read_text().split('"""')[-1]
