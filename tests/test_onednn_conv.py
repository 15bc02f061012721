"""oneDNN's convolutions through XLA's FFI (models/onednn_conv.py): built on this machine, they
compute lax's convolution and its gradients of any order, split the batch over a mesh, and a
machine that cannot build them falls back to XLA's with one warning."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from models import conv_lowering, onednn_conv
from training import mesh as mesh_lib

DN = ("NHWC", "HWIO", "NHWC")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_onednn = pytest.mark.skipif(not onednn_conv.available(),
                                  reason=f"oneDNN unavailable: {onednn_conv.unavailable_reason()}")

# (input HxWxC, kernel, output channels, stride, ((top, bottom), (left, right))): SAME and
# VALID, strided, asymmetric, non-square, 1x1 and a 7x7 stem.
SHAPES = [
    ((9, 9, 5), 3, 7, (1, 1), ((1, 1), (1, 1))),
    ((9, 8, 5), 3, 4, (2, 2), ((1, 1), (1, 1))),
    ((10, 7, 3), 5, 6, (1, 1), ((0, 0), (0, 0))),
    ((9, 9, 4), 3, 5, (2, 1), ((0, 2), (1, 0))),
    ((6, 6, 8), 1, 16, (1, 1), ((0, 0), (0, 0))),
    ((6, 6, 8), 1, 16, (2, 2), ((0, 0), (0, 0))),
    ((16, 16, 3), 7, 8, (2, 2), ((3, 3), (3, 3))),
]


def _reference(strides, pads):
    return lambda x, k: lax.conv_general_dilated(x, k, strides, pads, dimension_numbers=DN)


def _operands(hwc, kernel, cout, batch=4):
    kx, kk = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (batch, *hwc))
    k = jax.random.normal(kk, (kernel, kernel, hwc[2], cout)) * 0.3
    return x, k


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64",
                    reason="the onednn-cpu-gomp wheels are Linux x86-64 only")
def test_the_library_builds_and_loads_where_its_wheels_install():
    """On Linux x86-64 (CI's machine) the convolutions must be there: without this the suite
    would pass on XLA's convolutions and the speed would be lost unnoticed."""
    assert onednn_conv.available(), onednn_conv.unavailable_reason()
    assert onednn_conv.library_path().exists()


@needs_onednn
@pytest.mark.parametrize("hwc,kernel,cout,strides,pads", SHAPES)
def test_forward_and_both_gradients_equal_lax(hwc, kernel, cout, strides, pads):
    x, k = _operands(hwc, kernel, cout)
    ref, ours = _reference(strides, pads), lambda x, k: onednn_conv.conv(x, k, strides, pads)
    g = jax.random.normal(jax.random.key(2), jax.eval_shape(ref, x, k).shape)
    for f in (ref, ours):
        y, vjp = jax.vjp(f, x, k)
        if f is ref:
            want = (y, *vjp(g))
        else:
            got = jax.jit(lambda x, k, g: (lambda y, vjp: (y, *vjp(g)))(*jax.vjp(ours, x, k)))(
                x, k, g)
    for a, b, what in zip(want, got, ("forward", "input gradient", "weight gradient")):
        assert a.shape == b.shape and b.dtype == jnp.float32, what
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4, err_msg=what)


@needs_onednn
@pytest.mark.parametrize("argnums,targets", [
    ((0, 1), {"ConvjaxOnednnGradients"}),  # both in one call
    ((1,), {"ConvjaxOnednnWeightGradient"}),  # a first layer: its input is data
    ((0,), {"ConvjaxOnednnInputGradient"}),  # a frozen layer
])
def test_a_gradient_runs_only_the_calls_it_needs(argnums, targets):
    x, k = _operands((9, 8, 5), 3, 4)
    strides, pads = (1, 2), ((1, 1), (2, 0))
    loss = lambda conv: lambda x, k: jnp.sum(jnp.sin(conv(x, k)))
    ours = jax.jit(jax.grad(loss(lambda x, k: onednn_conv.conv(x, k, strides, pads)), argnums))
    called = {name for name in onednn_conv.TARGETS.values()
              if f"@{name}(" in ours.lower(x, k).as_text()} - {"ConvjaxOnednnForward"}
    assert called == targets
    want = jax.grad(loss(_reference(strides, pads)), argnums)(x, k)
    for a, b in zip(want, ours(x, k)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4)


@needs_onednn
def test_second_order_gradients_equal_lax():
    """Each call's gradient is one of the other two, so a gradient of a gradient (a gradient
    penalty, say) is oneDNN's too and equals XLA's."""
    x, k = _operands((9, 8, 5), 3, 4)
    strides, pads = (2, 1), ((1, 1), (0, 2))

    def penalty(conv):
        loss = lambda x, k: jnp.sum(jnp.sin(conv(x, k)))
        return lambda x, k: sum(jnp.sum(d ** 2) for d in jax.grad(loss, (0, 1))(x, k))

    want = jax.grad(penalty(_reference(strides, pads)), (0, 1))(x, k)
    got = jax.jit(jax.grad(penalty(lambda x, k: onednn_conv.conv(x, k, strides, pads)),
                           (0, 1)))(x, k)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


@needs_onednn
def test_vmap_runs_each_example_as_its_own_convolution():
    x, k = _operands((9, 9, 5), 3, 7)
    strides, pads = (1, 1), ((1, 1), (1, 1))
    per_example = jax.vmap(lambda x: onednn_conv.conv(x[None], k, strides, pads)[0])(x)
    np.testing.assert_allclose(per_example, _reference(strides, pads)(x, k), rtol=1e-5,
                               atol=1e-5)


@needs_onednn
def test_under_a_mesh_each_device_convolves_its_slice_and_the_kernel_gradient_is_summed():
    mesh = mesh_lib.make_mesh()
    assert mesh.size == 8
    x, k = _operands((9, 9, 5), 3, 7, batch=16)
    strides, pads = (1, 1), ((1, 1), (1, 1))
    loss = lambda conv: lambda x, k: jnp.sum(jnp.sin(conv(x, k)))
    want = jax.value_and_grad(loss(_reference(strides, pads)), (0, 1))(x, k)
    step = jax.jit(mesh_lib.traced_under(mesh, jax.value_and_grad(
        loss(lambda x, k: onednn_conv.conv(x, k, strides, pads)), (0, 1))))
    sharded = jax.device_put(x, mesh_lib.batch_sharded(mesh))
    assert "all-gather" not in step.lower(sharded, k).compile().as_text()  # slices stay put
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(step(sharded, k))):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


def _lowering_of(lhs_shape, rhs_shape, stride=1, padding="SAME", dtype=jnp.float32, **kwargs):
    fn = lambda x, w: conv_lowering.conv_general_dilated(
        x, w, (stride, stride), padding, dimension_numbers=DN, **kwargs)
    text = str(jax.make_jaxpr(fn)(jnp.zeros(lhs_shape, dtype), jnp.zeros(rhs_shape, dtype)))
    if onednn_conv.TARGETS["forward"] in text:
        return "onednn"
    return "xla" if "conv_general_dilated" in text else "other"


@needs_onednn
def test_the_rule_gives_onednn_the_convolutions_it_runs_fastest(monkeypatch):
    """With oneDNN here, it takes what XLA's convolution had, the strided 3x3s and the 1x1s of
    stride 1 (benchmarks/results/conv_lowering_onednn_cpu_2core.json); outputs smaller than
    the kernel, strided 1x1 projections and LeNet's narrow maps keep their lowerings."""
    monkeypatch.setenv(conv_lowering.ENV_VAR, "auto")
    assert _lowering_of((8, 32, 32, 16), (3, 3, 16, 16)) == "onednn"      # ResNet-20
    assert _lowering_of((8, 32, 32, 3), (3, 3, 3, 16)) == "onednn"        # its stem
    assert _lowering_of((8, 32, 32, 16), (3, 3, 16, 32), 2) == "onednn"   # stage entry
    assert _lowering_of((8, 56, 56, 64), (1, 1, 64, 256)) == "onednn"     # a bottleneck 1x1
    assert _lowering_of((8, 2, 2, 512), (3, 3, 512, 512)) == "other"      # patches
    assert _lowering_of((8, 16, 16, 64), (1, 1, 64, 128), 2) == "other"   # projection
    assert _lowering_of((8, 32, 32, 1), (5, 5, 1, 6), 1, "VALID") == "other"  # LeNet's band


@needs_onednn
def test_what_onednn_cannot_take_keeps_xla(monkeypatch):
    """bfloat16, dilation and padding beyond the kernel stay XLA's, even forced."""
    monkeypatch.setenv(conv_lowering.ENV_VAR, "onednn")
    assert _lowering_of((4, 16, 16, 8), (3, 3, 8, 8)) == "onednn"
    assert _lowering_of((4, 16, 16, 8), (3, 3, 8, 8), dtype=jnp.bfloat16) == "xla"
    assert _lowering_of((4, 16, 16, 8), (3, 3, 8, 8), rhs_dilation=(2, 2)) == "xla"
    assert _lowering_of((4, 16, 16, 8), (3, 3, 8, 8), padding=((3, 3), (3, 3))) == "xla"
    monkeypatch.setenv(conv_lowering.ENV_VAR, "xla")
    assert _lowering_of((4, 16, 16, 8), (3, 3, 8, 8)) == "xla"


def test_without_a_compiler_the_rule_falls_back_to_xla_with_one_warning(tmp_path):
    """A machine that cannot build the library (here: no compiler) trains on XLA's
    convolutions, and the log says why once; nothing is left in the cache."""
    script = (
        "import jax, jax.numpy as jnp\n"
        "from models import conv_lowering, onednn_conv\n"
        "f = lambda x, w: conv_lowering.conv_general_dilated(x, w, (1, 1), 'SAME',"
        " dimension_numbers=('NHWC', 'HWIO', 'NHWC'))\n"
        "x, w = jnp.ones((2, 8, 8, 16)), jnp.ones((3, 3, 16, 16))\n"
        "y = jax.jit(f)(x, w) + jax.jit(f)(x + 1, w)\n"
        "print(onednn_conv.available(), 'conv_general_dilated' in str(jax.make_jaxpr(f)(x, w)),"
        " float(y[0, 0, 0, 0]))\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), CXX="no-such-compiler",
               JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "192.0"]  # corner: 4 taps x 16 x (1 + 2)
    warnings = [line for line in done.stderr.splitlines() if "oneDNN convolutions unavailable" in line]
    assert len(warnings) == 1 and "no C++ compiler" in warnings[0]
    assert not list(tmp_path.rglob("*.so"))


@needs_onednn
def test_a_step_loaded_whole_from_the_executable_cache_finds_the_handlers(tmp_path):
    """A second launch loads its steps without tracing them (training/executable_cache.py),
    so nothing would register the handlers: the cache registers them for a step that calls
    them. Here the loading process has not imported onednn_conv before."""
    from training import executable_cache

    step = jax.jit(lambda x, k: onednn_conv.conv(x, k, (1, 1), ((1, 1), (1, 1))))
    x, k = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
    want = executable_cache.CachedStep(step, tmp_path, "onednn")(x, k)
    script = (
        "import sys, jax.numpy as jnp\n"
        "from training import executable_cache\n"
        "class NoTrace:\n"
        "    def lower(self, *_): raise AssertionError('traced')\n"
        "y = executable_cache.CachedStep(NoTrace(), __import__('pathlib').Path(sys.argv[1]),"
        " 'onednn')(jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 4)))\n"
        "assert 'models.onednn_conv' in sys.modules\n"
        "print(float(y.sum()))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300,
                          env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) == float(want.sum())
    assert "unreadable" not in done.stderr
