"""2-D convolutions on the CPU by oneDNN, Intel's library of CPU kernels (the one PyTorch's CPU
convolutions run), called from the compiled step through XLA's FFI.

Why by hand: this jaxlib's CPU backend runs a convolution either in YNNPACK or in Eigen, and
both are 1.5-3x slower than oneDNN at the shapes of the notes' small networks (b128 3x3, forward
+ both gradients, ms, Eigen -> oneDNN: ResNet-20's 32x32x16 32.2 -> 10.6, 16x16x32 14.6 -> 6.8,
8x8x64 12.1 -> 8.3). jaxlib links a oneDNN of its own but hands it no convolution, and no
Python package wraps oneDNN for JAX; the `onednn-cpu-gomp` wheels ship the library and its
headers. So onednn_conv.cc (short handlers: forward, input gradient, weight gradient, both
gradients in one call) is compiled on first use, against those headers and jaxlib's FFI
headers, into the user's cache (`library_path`), and later processes only load it. Without a
C++ compiler or the wheels, `available()` is False, says why in `unavailable_reason()`, and
`auto` keeps XLA's convolutions.

The calls are bilinear and each one's gradient is made of the others (below), so gradients
of any order work in reverse mode; forward mode (`jax.jvp`) does not (`jax.custom_vjp`). Under
a mesh (the trainer's steps trace under one) each device convolves its slice of the batch
(`shard_map`), since XLA's partitioner would otherwise gather a custom call's whole batch.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import jax
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.sharding import PartitionSpec as P

SOURCE = Path(__file__).with_name("onednn_conv.cc")
TARGETS = {"forward": "ConvjaxOnednnForward", "input_gradient": "ConvjaxOnednnInputGradient",
           "weight_gradient": "ConvjaxOnednnWeightGradient", "gradients": "ConvjaxOnednnGradients"}
_unavailable: list[str] = []  # why the library could not be loaded, once tried


def _prefix() -> Path:
    """Where the onednn-cpu-gomp wheels put include/ and lib/: the environment's prefix."""
    return Path(sysconfig.get_path("data"))


def _compile_command(output: Path) -> list[str]:
    prefix = _prefix()
    return [os.environ.get("CXX", "g++"), "-O2", "-std=c++17", "-shared", "-fPIC",
            "-w",  # jaxlib's FFI headers warn under GCC; the compiler's verdict is its exit code
            f"-I{jax.ffi.include_dir()}", f"-I{prefix / 'include'}", str(SOURCE),
            "-o", str(output), f"-L{prefix / 'lib'}", "-ldnnl", f"-Wl,-rpath,{prefix / 'lib'}"]


def library_path() -> Path:
    """The built library in the user's cache, named by a digest of what went into it."""
    import jaxlib

    digest = hashlib.sha256()
    digest.update(SOURCE.read_bytes())
    digest.update(" ".join(_compile_command(Path("out"))).encode())
    digest.update(jaxlib.__version__.encode())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convjax"
    return root / "onednn" / f"onednn_conv-{digest.hexdigest()[:16]}.so"


def _build(target: Path) -> None:
    """Compiles onednn_conv.cc into `target`, atomically: a concurrent process (a test worker)
    finds either no file or a whole one."""
    if not (_prefix() / "include" / "oneapi" / "dnnl" / "dnnl.hpp").exists():
        raise RuntimeError("oneDNN's headers are not installed (uv sync installs "
                           "onednn-devel-cpu-gomp on Linux x86-64)")
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        raise RuntimeError("no C++ compiler (g++, or $CXX) to build the oneDNN convolutions")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        done = subprocess.run(_compile_command(partial), capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"g++ failed on {SOURCE.name}: {done.stderr.strip()[-500:]}")
        os.replace(partial, target)


@functools.cache
def available() -> bool:
    """Whether the oneDNN convolutions can run here: on the CPU backend, with the library
    built (now, if this is its first use) and its handlers registered with XLA."""
    if jax.default_backend() != "cpu":
        _unavailable.append("oneDNN convolutions run on the CPU backend only")
        return False
    try:
        path = library_path()
        if not path.exists():
            _build(path)
        library = ctypes.cdll.LoadLibrary(str(path))
    except (OSError, RuntimeError) as err:
        _unavailable.append(str(err).splitlines()[0] if str(err) else type(err).__name__)
        logging.getLogger(__name__).warning(
            "oneDNN convolutions unavailable (%s); XLA's convolutions run instead", _unavailable[-1])
        return False
    for symbol in TARGETS.values():
        jax.ffi.register_ffi_target(symbol, jax.ffi.pycapsule(getattr(library, symbol)),
                                    platform="cpu")
    return True


def unavailable_reason() -> str | None:
    """Why `available()` said False, or None."""
    return None if available() else _unavailable[-1]


# ---------------------------------------------------------------------------------------------
# The bilinear calls. `pads` is ((top, bottom), (left, right)); every static argument is
# a tuple of ints, so the calls are hashable for custom_vjp.


def _call(which: str, out_shapes, operands, strides, pads) -> list[jax.Array]:
    """The `which` handler on `operands`: one result per shape of `out_shapes`."""
    if not available():  # also registers the handlers, before the first program uses them
        raise RuntimeError(f"oneDNN convolutions are unavailable: {unavailable_reason()}")
    (top, bottom), (left, right) = pads
    attrs = dict(stride_h=strides[0], stride_w=strides[1], pad_top=top, pad_bottom=bottom,
                 pad_left=left, pad_right=right)
    results = [jax.ShapeDtypeStruct(shape, operands[0].dtype) for shape in out_shapes]
    return jax.ffi.ffi_call(TARGETS[which], results, vmap_method="sequential")(
        *operands, **{name: np.int64(value) for name, value in attrs.items()})


def output_shape(lhs_shape, kernel_shape, strides, pads) -> tuple[int, ...]:
    """(N, OH, OW, O) of the NHWC x HWIO convolution."""
    spatial = [(n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in
               zip(lhs_shape[1:3], pads, kernel_shape[:2], strides)]
    return (lhs_shape[0], *spatial, kernel_shape[3])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def forward(lhs: jax.Array, rhs: jax.Array, strides, pads) -> jax.Array:
    """The NHWC x HWIO -> NHWC convolution."""
    (out,) = _call("forward", [output_shape(lhs.shape, rhs.shape, strides, pads)], (lhs, rhs),
                   strides, pads)
    return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def input_gradient(cotangent, rhs, strides, pads, lhs_shape) -> jax.Array:
    """d<forward(lhs, rhs), cotangent>/d lhs, for an input of `lhs_shape`."""
    (out,) = _call("input_gradient", [lhs_shape], (cotangent, rhs), strides, pads)
    return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def weight_gradient(lhs, cotangent, strides, pads, rhs_shape) -> jax.Array:
    """d<forward(lhs, rhs), cotangent>/d rhs, for a kernel of `rhs_shape`."""
    (out,) = _call("weight_gradient", [rhs_shape], (lhs, cotangent), strides, pads)
    return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def gradients(lhs, cotangent, rhs, strides, pads) -> tuple[jax.Array, jax.Array]:
    """(input_gradient, weight_gradient) in one call: the second reads the cotangent while it
    is still in cache (ResNet-20's 3x3 gradients at b128: 72 ms against 82 ms as two calls)."""
    dlhs, drhs = _call("gradients", [lhs.shape, rhs.shape], (lhs, cotangent, rhs), strides,
                       pads)
    return dlhs, drhs


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class _Wanted:
    """Which operands of `forward` are differentiated (static: part of the residuals' tree).
    A network's first layer needs no input gradient, a frozen layer no weight gradient."""
    lhs: bool
    rhs: bool


# <forward(x, k), g> = <x, input_gradient(g, k)> = <k, weight_gradient(x, g)>: each call's
# gradient with respect to either operand is one of the other two.
def _forward_fwd(lhs, rhs, strides, pads):
    # symbolic zeros: lhs and rhs come as CustomVJPPrimal, which says whether each is perturbed
    wanted = _Wanted(lhs.perturbed, rhs.perturbed)
    return forward(lhs.value, rhs.value, strides, pads), (lhs.value, rhs.value, wanted)


def _forward_bwd(strides, pads, saved, g):
    lhs, rhs, wanted = saved
    if isinstance(g, SymbolicZero):
        return None, None
    if wanted.lhs and wanted.rhs:
        return gradients(lhs, g, rhs, strides, pads)
    return (input_gradient(g, rhs, strides, pads, lhs.shape) if wanted.lhs else None,
            weight_gradient(lhs, g, strides, pads, rhs.shape) if wanted.rhs else None)


def _input_gradient_fwd(cotangent, rhs, strides, pads, lhs_shape):
    return input_gradient(cotangent, rhs, strides, pads, lhs_shape), (cotangent, rhs)


def _input_gradient_bwd(strides, pads, lhs_shape, saved, g):
    cotangent, rhs = saved
    return forward(g, rhs, strides, pads), weight_gradient(g, cotangent, strides, pads, rhs.shape)


def _weight_gradient_fwd(lhs, cotangent, strides, pads, rhs_shape):
    return weight_gradient(lhs, cotangent, strides, pads, rhs_shape), (lhs, cotangent)


def _weight_gradient_bwd(strides, pads, rhs_shape, saved, g):
    lhs, cotangent = saved
    return input_gradient(cotangent, g, strides, pads, lhs.shape), forward(lhs, g, strides, pads)


def _gradients_fwd(lhs, cotangent, rhs, strides, pads):
    return gradients(lhs, cotangent, rhs, strides, pads), (lhs, cotangent, rhs)


def _gradients_bwd(strides, pads, saved, g):
    # the two calls' gradients (above), summed where both reach the cotangent
    lhs, cotangent, rhs = saved
    g_lhs, g_rhs = g
    return (input_gradient(cotangent, g_rhs, strides, pads, lhs.shape),
            forward(g_lhs, rhs, strides, pads) + forward(lhs, g_rhs, strides, pads),
            weight_gradient(g_lhs, cotangent, strides, pads, rhs.shape))


forward.defvjp(_forward_fwd, _forward_bwd, symbolic_zeros=True)
input_gradient.defvjp(_input_gradient_fwd, _input_gradient_bwd)
weight_gradient.defvjp(_weight_gradient_fwd, _weight_gradient_bwd)
gradients.defvjp(_gradients_fwd, _gradients_bwd)


def conv(lhs: jax.Array, rhs: jax.Array, strides, pads) -> jax.Array:
    """`forward`, on each device's slice of the batch when traced under a mesh whose device
    count divides the batch (the kernel's gradient is then summed across devices)."""
    strides = tuple(int(s) for s in strides)
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or mesh.size == 1 or lhs.shape[0] % mesh.size:
        return forward(lhs, rhs, strides, pads)
    axes = mesh.axis_names  # the batch split over every device, whatever the mesh's axes
    return jax.shard_map(lambda x, k: forward(x, k, strides, pads), mesh=mesh,
                         in_specs=(P(axes), P()), out_specs=P(axes),
                         check_vma=False)(  # an FFI call's result is not typed per device
        lhs, rhs)
