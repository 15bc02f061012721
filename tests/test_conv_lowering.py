"""The shape-aware convolution (models/conv_lowering.py): every lowering (patches, banded,
XLA's, XLA's with the weight gradient chunked) computes the same convolution and the same
gradients, the rule picks as documented, and building the zoo with it leaves every parameter
where it was. oneDNN's lowering and the rule with it: tests/test_onednn_conv.py."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax import lax

import models
from models import banded_conv, conv_lowering, onednn_conv
from training import config as config_lib, mesh as mesh_lib, state as state_lib, step as step_lib

DN = ("NHWC", "HWIO", "NHWC")


@pytest.fixture(autouse=True)
def without_onednn(monkeypatch):
    """The rule as it stands where oneDNN's convolutions cannot be built: XLA's convolution,
    patches and the band (tests/test_onednn_conv.py has the rule with oneDNN)."""
    monkeypatch.setattr(onednn_conv, "available", lambda: False)

# (kernel, stride, padding, dilation): VALID, SAME, explicit, asymmetric, 1x1, strided 1x1,
# padding wider than the kernel, dilation with and without stride. (Negative padding, a crop,
# has its own test below: XLA's CPU convolution itself returns garbage for it.)
CASES = [
    (3, 1, "SAME", 1), (3, 1, "VALID", 1), (3, 2, "SAME", 1), (3, 2, "VALID", 1),
    (5, 1, "VALID", 1), (5, 2, "SAME", 1), (7, 2, ((3, 3), (3, 3)), 1),
    (3, 1, ((1, 1), (1, 1)), 1), (3, 2, ((0, 1), (2, 0)), 1), (4, 3, ((2, 1), (0, 3)), 1),
    (3, 1, "SAME", 2), (3, 2, ((2, 2), (2, 2)), 2), (2, 1, "SAME", 3),
    (1, 1, "VALID", 1), (1, 2, "VALID", 1), (1, 1, "SAME", 1), (1, 2, ((1, 0), (0, 1)), 1),
    (3, 1, "SAME_LOWER", 1), (3, 1, ((3, 3), (3, 3)), 1),
]


def test_negative_padding_crops_as_the_definition_says():
    """lax's contract: a negative pad crops. XLA's CPU convolution gives values of 1e36 there
    (measured, jax 0.8), so the reference is the crop, then zero-pad, then a VALID conv."""
    x = jax.random.normal(jax.random.key(0), (2, 7, 6, 3))
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
    cropped = jnp.pad(x[:, 1:, :-1], ((0, 0), (0, 1), (0, 0), (0, 0)))
    want = lax.conv_general_dilated(cropped, w, (1, 1), "VALID", dimension_numbers=DN)
    got = conv_lowering.patches_conv(x, w, (1, 1), ((-1, 1), (0, -1)), (1, 1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _conv_and_grads(conv, x, w, g):
    """(y, dL/dx, dL/dw) for L = sum(conv(x, w) * g)."""
    y, vjp = jax.vjp(conv, x, w)
    return (y, *vjp(g))


@pytest.mark.parametrize("channels", [5, 1])  # one input channel has its own patch layout
@pytest.mark.parametrize("kernel,stride,padding,dilation", CASES)
def test_every_lowering_agrees_with_xla_forward_and_both_gradients(kernel, stride, padding,
                                                                  dilation, channels):
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (3, 9, 8, channels))
    w = jax.random.normal(kw, (kernel, kernel, channels, 4)) * 0.3
    strides, dil = (stride, stride), (dilation, dilation)
    ref = lambda x, w: lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dil,
                                                dimension_numbers=DN)
    pads = conv_lowering.choose(x.shape, w.shape, strides, padding, dil)[1]
    g = jax.random.normal(kg, jax.eval_shape(ref, x, w).shape)
    want = _conv_and_grads(ref, x, w, g)
    chunked = lambda c: lambda x, w: conv_lowering.xla_conv_chunked_dw(x, w, strides, pads, dil,
                                                                      None, c)
    lowerings = {  # the band whole and in blocks of 3 output columns (the last one cropped
        # where 3 does not divide the width); the chunked weight gradient with one and with
        # three examples a chunk
        "patches": lambda x, w: conv_lowering.patches_conv(x, w, strides, pads, dil),
        "banded": lambda x, w: banded_conv.banded_conv(x, w, strides, pads, dil),
        "banded, blocks of 3": lambda x, w: banded_conv.banded_conv(x, w, strides, pads, dil,
                                                                    block=3),
        "chunked_dw 1": chunked(1), "chunked_dw 3": chunked(3)}
    for name, ours in lowerings.items():
        got = jax.jit(lambda x, w, g, f=ours: _conv_and_grads(f, x, w, g))(x, w, g)
        for a, b, what in zip(want, got, ("forward", "input gradient", "weight gradient")):
            assert a.shape == b.shape and a.dtype == b.dtype, what
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4, err_msg=f"{name}: {what}")


@pytest.mark.parametrize("lowering", ["xla", "patches", "banded", "chunked_dw"])
def test_forced_lowering_through_nnx_conv_matches_the_library(monkeypatch, lowering):
    """`Conv` with either lowering forced equals plain nnx.Conv (same init, same output)."""
    monkeypatch.setenv(conv_lowering.ENV_VAR, lowering)
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 3))
    make = lambda factory: factory(3, 8, (3, 3), 2, padding=((1, 0), (0, 1)),
                                   rngs=nnx.Rngs(0))
    ours, ref = make(conv_lowering.Conv), make(nnx.Conv)
    np.testing.assert_allclose(jax.jit(ours)(x), ref(x), rtol=1e-5, atol=1e-5)
    grad = lambda m: nnx.grad(lambda m: jnp.sum(jnp.sin(m(x))))(m)
    np.testing.assert_allclose(grad(ours)["kernel"][...], grad(ref)["kernel"][...],
                               rtol=1e-5, atol=1e-5)


def _lowered_with(monkeypatch, lowering: str, lhs_shape, rhs_shape, stride=1, padding="SAME",
                  **kwargs) -> str:
    """Which lowering `conv_general_dilated` emits for these shapes (read off its jaxpr):
    'chunked_dw' is XLA's convolution with its own (custom) gradient; 'banded' multiplies
    twice (the kernel into its band matrix, then the rows by it), 'patches' once."""
    monkeypatch.setenv(conv_lowering.ENV_VAR, lowering)
    fn = lambda x, w: conv_lowering.conv_general_dilated(
        x, w, (stride, stride), padding, dimension_numbers=DN, **kwargs)
    jaxpr = jax.make_jaxpr(fn)(jnp.zeros(lhs_shape), jnp.zeros(rhs_shape))
    names = [eqn.primitive.name for eqn in jaxpr.jaxpr.eqns]
    if "custom_vjp_call" in names:
        return "chunked_dw"
    if "conv_general_dilated" in names:
        return "xla"
    return "banded" if names.count("dot_general") == 2 else "patches"


def test_the_rule_picks_patches_when_the_output_is_smaller_than_the_kernel(monkeypatch):
    pick = lambda *a, **k: _lowered_with(monkeypatch, "auto", *a, **k)
    assert pick((8, 2, 2, 512), (3, 3, 512, 512)) == "patches"     # ResNet-18's stage 4 at 64
    assert pick((8, 5, 5, 16), (5, 5, 16, 120), 1, "VALID") == "patches"  # LeNet-5's C5
    assert pick((8, 4, 8, 64), (5, 5, 64, 64)) == "patches"        # one axis is enough
    assert pick((8, 3, 3, 128), (3, 3, 128, 128)) == "xla"         # output == kernel
    assert pick((8, 32, 32, 64), (3, 3, 64, 64)) == "xla"
    assert pick((8, 32, 32, 64), (1, 1, 64, 64)) == "patches"      # 1x1: a plain dot


def test_wide_inputs_take_patches_up_to_twice_the_kernel(monkeypatch):
    pick = lambda *a, **k: _lowered_with(monkeypatch, "auto", *a, **k)
    assert pick((8, 4, 4, 256), (3, 3, 256, 256)) == "patches"     # ResNet-18's stage 3 at 64
    assert pick((8, 5, 5, 512), (3, 3, 512, 512)) == "patches"
    assert pick((8, 6, 6, 512), (3, 3, 512, 512)) == "xla"         # output == twice the kernel
    assert pick((8, 4, 4, 128), (3, 3, 128, 128)) == "xla"         # not wide


def test_strided_convolutions_take_patches_except_on_the_image(monkeypatch):
    pick = lambda *a, **k: _lowered_with(monkeypatch, "auto", *a, **k)
    assert pick((8, 32, 32, 16), (3, 3, 16, 32), 2) == "patches"   # ResNet-20's stage 2 entry
    assert pick((8, 16, 16, 64), (3, 3, 64, 128), 2) == "patches"
    assert pick((8, 32, 32, 64), (1, 1, 64, 64), 2) == "patches"   # strided 1x1 projection
    assert pick((8, 64, 64, 3), (7, 7, 3, 64), 2) == "xla"         # ResNet-18's stem
    assert pick((8, 64, 64, 1), (7, 7, 1, 64), 2) == "xla"


def test_narrow_convolutions_take_the_band_on_narrow_maps_else_patches(monkeypatch):
    pick = lambda *a, **k: _lowered_with(monkeypatch, "auto", *a, **k)
    assert pick((8, 32, 32, 1), (5, 5, 1, 6), 1, "VALID") == "banded"     # LeNet-5's C1
    assert pick((8, 28, 28, 1), (5, 5, 1, 6)) == "banded"          # C1 on MNIST, padded
    assert pick((8, 14, 14, 6), (5, 5, 6, 16), 1, "VALID") == "banded"    # C3: 2.8 kernels
    assert pick((8, 14, 14, 6), (5, 5, 6, 16)) == "xla"            # padded: 3.6 kernels wide
    assert pick((8, 64, 64, 1), (5, 5, 1, 6), 1, "VALID") == "patches"  # 12.8 kernels wide
    assert pick((8, 32, 32, 1), (1, 1, 1, 6)) == "patches"         # 1x1: a plain dot
    assert pick((8, 28, 28, 6), (5, 5, 6, 16), 1, "VALID") == "xla"       # 24x24 output
    width = conv_lowering.BANDED_NARROW_WIDTH
    assert conv_lowering.use_banded(width * 5, 5, conv_lowering.NARROW_IN - 1, 64)
    assert not conv_lowering.use_banded(width * 5 + 1, 5, 2, 4)
    assert not conv_lowering.use_banded(10, 5, conv_lowering.NARROW_IN, 4)
    assert pick((8, 32, 32, 3), (3, 3, 3, 16)) == "xla"            # ResNet-20's stem
    assert pick((8, 40, 40, 1), (3, 3, 1, 64)) == "xla"            # DnCNN's first layer
    assert pick((8, 28, 28, 1), (3, 3, 1, 32)) == "xla"            # 32 outputs: the band grows
    assert pick((8, 14, 14, 8), (5, 5, 8, 16), 1, "VALID") == "xla"       # 8 inputs: not narrow
    assert conv_lowering.use_patches((10, 10), (5, 5), (1, 1), conv_lowering.NARROW_IN - 1, 64)
    assert not conv_lowering.use_patches((11, 11), (5, 5), (1, 1), 6, conv_lowering.NARROW_OUT)


def test_the_band_comes_in_blocks_that_divide_the_output_width_where_one_can():
    block = conv_lowering.banded_block
    assert block(28) == 4 and block(10) == 5 and block(6) == 3  # LeNet-5's C1 and C3
    assert block(30) == 5 and block(7) == 4 and block(2) == 4   # 7 and 2: the last cropped


def test_auto_never_chunks_the_weight_gradient_but_the_forced_lowering_does(monkeypatch):
    """XLA's own weight gradient beats the chunked one on whole steps (models/conv_lowering.py);
    the chunks stay a forced lowering, of at most CHUNK_ROWS patch rows dividing the batch."""
    pick = lambda *a, **k: _lowered_with(monkeypatch, "auto", *a, **k)
    assert pick((128, 32, 32, 16), (3, 3, 16, 16)) == "xla"          # ResNet-20's first stage
    assert pick((128, 8, 8, 64), (3, 3, 64, 64)) == "xla"
    assert _lowered_with(monkeypatch, "chunked_dw", (128, 8, 8, 64), (3, 3, 64, 64)) == \
        "chunked_dw"
    chunk = conv_lowering.largest_chunk
    assert chunk(128, (32, 32)) == 4 and chunk(128, (8, 8)) == 64 and chunk(102, (32, 32)) == 3


def test_steps_compile_with_convolutions_out_of_ynnpack(monkeypatch):
    """On CPU the compiled step runs XLA's own convolutions (faster at ResNet shapes than
    YNNPACK's, which this jaxlib picks by default); off the CPU no option is passed."""
    x, w = jnp.ones((2, 8, 8, 16)), jnp.ones((3, 3, 16, 16))
    conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN)
    with_options = jax.jit(conv, compiler_options=conv_lowering.compiler_options())
    hlo = with_options.lower(x, w).compile().as_text()
    assert "convolution(" in hlo and "__ynn_fusion" not in hlo
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert conv_lowering.compiler_options() == {}


def _ynn_reductions(hlo: str) -> int:
    """How many reductions of a compiled CPU program YNNPACK runs (those inside its fusions)."""
    bodies = re.findall(r"^(%[\w.]+) .*?\{\n(.*?)\n\}", hlo, re.S | re.M)
    ynn = set(re.findall(r'calls=(%[\w.]+), .*"kind":"__ynn_fusion"', hlo))
    return sum(("reduce(" in body or "reduce-window(" in body) for name, body in bodies
               if name in ynn)


def test_lenet5_compiles_its_reductions_as_xla_and_other_networks_as_ynnpack():
    """A network registered with `ynn_reductions=False` (LeNet-5: XLA's reductions measured
    faster) has none of its reductions in YNNPACK; every other keeps them there."""
    x = jnp.ones((4, 14, 14, 6))
    pool_sum = lambda x: nnx.avg_pool(jnp.tanh(x), (2, 2), (2, 2)).sum(axis=(0, 1, 2))
    programs = {name: jax.jit(pool_sum, compiler_options=conv_lowering.compiler_options_for(
        name)).lower(x).compile().as_text() for name in ("lenet5", "resnet20_cifar", "nonet")}
    assert _ynn_reductions(programs["lenet5"]) == 0
    assert _ynn_reductions(programs["resnet20_cifar"]) > 0
    assert programs["nonet"] == programs["resnet20_cifar"]  # unknown: the defaults


def test_the_trainer_compiles_with_its_networks_options(monkeypatch):
    from training import loop

    seen = []
    monkeypatch.setattr(mesh_lib, "compile_train_step",
                        lambda step, mesh, state, options: seen.append(options))
    monkeypatch.setattr(mesh_lib, "compile_eval_step",
                        lambda step, mesh, state, options: seen.append(options))

    class Task:  # just what compile_steps reads
        c = config_lib.base_config()

        def make_steps(self, defs, tx):
            return (None, None)

    Task.c.model.name = "lenet5"
    loop.compile_steps(Task(), None, None, None)
    assert seen == [conv_lowering.compiler_options(ynn_reductions=False)] * 2


def test_auto_keeps_xla_convolutions_off_the_cpu(monkeypatch):
    """The rule was measured against XLA's CPU convolution, not cuDNN or the TPU's."""
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    pick = lambda *a, **k: _lowered_with(monkeypatch, "auto", *a, **k)
    assert pick((8, 2, 2, 512), (3, 3, 512, 512)) == "xla"
    assert pick((8, 32, 32, 64), (3, 3, 64, 64)) == "xla"
    assert _lowered_with(monkeypatch, "patches", (8, 2, 2, 512), (3, 3, 512, 512)) == "patches"


def test_banded_conv_keeps_the_dtypes_and_is_exact_in_bfloat16():
    """Each band entry is one kernel weight or zero, so the band loses nothing in bfloat16."""
    x = jax.random.normal(jax.random.key(0), (4, 12, 12, 1), jnp.bfloat16)
    w = jax.random.normal(jax.random.key(1), (5, 5, 1, 6), jnp.bfloat16)
    band = banded_conv.band_matrix(w, 12, 8, 1, 1)
    assert band.dtype == jnp.bfloat16 and band.shape == (5 * 12, 8 * 6)
    assert set(np.unique(np.asarray(band, np.float32))) <= set(
        np.unique(np.asarray(w, np.float32))) | {0.0}
    conv = lambda w: banded_conv.banded_conv(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1),
                                             preferred_element_type=jnp.float32)
    want = lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=DN,
                                    preferred_element_type=jnp.float32)
    assert conv(w).dtype == jnp.float32
    np.testing.assert_allclose(conv(w), want, rtol=1e-5, atol=1e-5)
    assert jax.grad(lambda w: jnp.sum(conv(w)))(w).dtype == jnp.bfloat16


def test_chunked_weight_gradient_keeps_the_kernel_dtype():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3), jnp.bfloat16)
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, 5), jnp.bfloat16)
    conv = lambda w: conv_lowering.xla_conv_chunked_dw(x, w, (1, 1), ((1, 1), (1, 1)),
                                                       (1, 1), None, 2)
    dw = jax.grad(lambda w: jnp.sum(conv(w).astype(jnp.float32)))(w)
    want = jax.grad(lambda w: jnp.sum(lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=DN).astype(jnp.float32)))(w)
    assert dw.dtype == jnp.bfloat16
    np.testing.assert_allclose(dw.astype(np.float32), want.astype(np.float32), rtol=2e-2,
                               atol=0.5)


def test_a_kernel_covering_its_input_is_one_patch():
    """LeNet-5's C5 (5x5 on 5x5): the patch is the input reshaped, same values and gradients
    as XLA's convolution, with and without padding that makes the kernel fit."""
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    for shape, pads in (((2, 5, 5, 3), ((0, 0), (0, 0))), ((2, 3, 4, 3), ((1, 1), (0, 1)))):
        x = jax.random.normal(kx, shape)
        w = jax.random.normal(kw, (5, 5, 3, 4))
        g = jax.random.normal(kg, (2, 1, 1, 4))
        ref = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=DN)
        ours = lambda x, w: conv_lowering.patches_conv(x, w, (1, 1), pads, (1, 1))
        for a, b in zip(_conv_and_grads(ref, x, w, g), _conv_and_grads(ours, x, w, g)):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def _gathered(compiled) -> list[str]:
    """The shapes of the all-gathers in a compiled program."""
    return re.findall(r"(\S+\[[^\]]*\]\S*) all-gather\(", compiled.as_text())


def test_chunked_weight_gradient_splits_the_batch_over_the_mesh():
    """Traced under a batch-sharded mesh, each device sums its own slice (5 examples here, in
    chunks of one: 4 does not divide 5) and the devices add up: no device gathers the batch,
    and the gradient is the single-device one."""
    mesh = mesh_lib.make_mesh()
    assert mesh.size == 8
    x = jax.random.normal(jax.random.key(0), (40, 6, 6, 4))
    w = jax.random.normal(jax.random.key(1), (3, 3, 4, 5))
    loss = lambda w, x: jnp.sum(conv_lowering.xla_conv_chunked_dw(
        x, w, (1, 1), ((1, 1), (1, 1)), (1, 1), None, 4) ** 2)
    grad = jax.jit(mesh_lib.traced_under(mesh, jax.grad(loss)))
    sharded = jax.device_put(x, mesh_lib.batch_sharded(mesh))
    assert _gathered(grad.lower(w, sharded).compile()) == []
    want = jax.grad(lambda w: jnp.sum(lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=DN) ** 2))(w)
    np.testing.assert_allclose(grad(w, sharded), want, rtol=1e-5, atol=1e-3)


class _TwoConvs(nnx.Module):
    """Two 3x3 convolutions at 32x32 (16 channels: XLA's), a head."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv1 = conv_lowering.Conv(3, 16, (3, 3), rngs=rngs)
        self.conv2 = conv_lowering.Conv(16, 16, (3, 3), rngs=rngs)
        self.head = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        return self.head(jnp.mean(self.conv2(nnx.relu(self.conv1(x))), axis=(1, 2)))


def test_the_trainers_step_gathers_no_activations():
    """XLA's convolutions in the trainer's 8-device step: the batch stays split (each device's
    weight gradient is summed across devices, never computed from gathered activations)."""
    assert conv_lowering.choose((16, 32, 32, 16), (3, 3, 16, 16), (1, 1), "SAME")[0] == "xla"
    tx = optax.sgd(0.1)
    defs, state = state_lib.create(_TwoConvs(nnx.Rngs(0)), tx, seed=0)
    mesh = mesh_lib.make_mesh()
    step = mesh_lib.compile_train_step(step_lib.make_train_step(defs, tx, num_classes=10),
                                       mesh, state)
    batch = {"image": jnp.zeros((16, 32, 32, 3)), "label": jnp.zeros(16, jnp.int32)}
    compiled = step.lower(mesh_lib.put_state(state, mesh),
                          jax.device_put(batch, mesh_lib.batch_sharded(mesh))).compile()
    assert not [s for s in _gathered(compiled) if s.startswith("f32[16,32,32")]


def test_the_trainers_steps_compile_with_the_lowerings_options(monkeypatch):
    """Both steps go through `compiler_options` (an option XLA does not know proves it)."""
    monkeypatch.setattr(conv_lowering, "compiler_options", lambda: {"xla_no_such_option": "1"})
    tx = optax.sgd(0.1)
    defs, state = state_lib.create(_TwoConvs(nnx.Rngs(0)), tx, seed=0)
    mesh = mesh_lib.make_mesh(devices=jax.devices()[:1])
    batch = {"image": jnp.zeros((2, 32, 32, 3)), "label": jnp.zeros(2, jnp.int32),
             "mask": jnp.ones(2, jnp.int32)}
    train = mesh_lib.compile_train_step(step_lib.make_train_step(defs, tx, num_classes=10), mesh)
    evaluate = mesh_lib.compile_eval_step(
        step_lib.make_eval_step(defs, num_classes=10), mesh)
    for step in (train, evaluate):
        with pytest.raises(Exception, match="xla_no_such_option"):
            step.lower(state, batch).compile()


def test_forcing_xla_keeps_every_convolution_a_convolution(monkeypatch):
    assert _lowered_with(monkeypatch, "xla", (8, 2, 2, 64), (3, 3, 64, 64)) == "xla"
    assert _lowered_with(monkeypatch, "xla", (8, 8, 8, 64), (1, 1, 64, 64)) == "xla"


def test_unusual_convolutions_keep_the_library_lowering(monkeypatch):
    """Grouped, transposed (input-dilated) and non-NHWC convolutions are left to XLA, even when
    the patches lowering is forced."""
    pick = lambda *a, **k: _lowered_with(monkeypatch, "patches", *a, **k)
    assert pick((2, 4, 4, 8), (3, 3, 4, 8), feature_group_count=2) == "xla"
    assert pick((2, 4, 4, 8), (3, 3, 8, 8), padding=((1, 1), (1, 1)),
                lhs_dilation=(2, 2)) == "xla"
    fn = lambda x, w: conv_lowering.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
    jaxpr = jax.make_jaxpr(fn)(jnp.zeros((2, 8, 4, 4)), jnp.zeros((8, 8, 3, 3)))
    assert "conv_general_dilated" in {e.primitive.name for e in jaxpr.jaxpr.eqns}
    assert pick((2, 4, 4, 8), (3, 3, 8, 8)) == "patches"  # the forced choice otherwise holds


def test_a_bad_forced_lowering_is_refused(monkeypatch):
    monkeypatch.setenv(conv_lowering.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="CONVJAX_CONV_LOWERING"):
        conv_lowering.lowering()


def _param_tree(name: str, **kwargs):
    model = nnx.eval_shape(lambda: models.create(name, **kwargs))
    state = nnx.state(model)
    return {jax.tree_util.keystr(p): (v.shape, v.dtype)
            for p, v in jax.tree.leaves_with_path(state)}


@pytest.mark.parametrize("name", ["lenet5", "resnet18", "mobilenet_v1"])
def test_zoo_state_tree_is_the_one_plain_nnx_conv_builds(monkeypatch, name):
    """Every variable (params and batch stats: names, shapes, dtypes) is what the net had when
    built from plain nnx.Conv, so old checkpoints still load; every conv uses the lowering."""
    ours = _param_tree(name)
    model = nnx.eval_shape(lambda: models.create(name))
    convs = [m for _, m in nnx.iter_graph(model) if isinstance(m, nnx.Conv)]
    assert convs and all(c.conv_general_dilated is conv_lowering.conv_general_dilated
                         for c in convs)
    monkeypatch.setattr(conv_lowering, "conv_general_dilated", lax.conv_general_dilated)
    assert _param_tree(name) == ours
