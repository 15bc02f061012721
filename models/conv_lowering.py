"""How a 2-D convolution is lowered: oneDNN's convolution (models/onednn_conv.py, on the CPU
where it can be built), XLA's own, patches + one matmul, or rows + one banded matmul
(models/banded_conv.py), and where XLA's convolution is kept, how its weight gradient is
computed.

A convolution is a linear map, so it can be written as "gather every output position's
receptive field into a row (im2col), then multiply by the kernel reshaped to a matrix". XLA's
CPU convolution is pathological when the output is smaller than the kernel (ResNet-18's last
stage at 64x64: a 3x3 conv on 2x2x512 takes ~90x longer forward, ~56x forward+backward, than
the matmul doing the same work), while for large spatial sizes its own convolution stays
faster. With this lowering ResNet-18's train step at 64x64 (b32) drops from 4.3-4.5 s to
0.56-0.62 s on the 2-core CPU (benchmarks/results/train_step_cpu_2core.json).
`conv_general_dilated` here has `lax.conv_general_dilated`'s signature (so
`nnx.Conv(..., conv_general_dilated=...)` takes it) and picks the lowering per static shape
with `use_banded` and `use_patches`, the one place the rule and its thresholds live. The
steps are compiled with `compiler_options()`, which keeps XLA's convolutions out of YNNPACK.

`CONVJAX_CONV_LOWERING=xla|onednn|patches|banded|chunked_dw|auto` (read at call time, i.e. when a
step is traced; `forced` sets it for a block) forces one lowering, for benchmarking
(`chunked_dw`: XLA's convolution with its weight gradient as patches summed over batch chunks,
`chunked_weight_gradient`; on a mesh each device sums its own slice, `split_over_mesh`); `auto`
(the default) applies the rule on CPU and keeps XLA's convolution on GPU and TPU, whose
libraries (cuDNN, the TPU's convolution units) were not what the rule was measured against.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax
from jax.sharding import PartitionSpec as P

from models import onednn_conv
from models.banded_conv import banded_conv, output_size, pad_spatial

LOWERINGS = ("auto", "xla", "onednn", "patches", "banded", "chunked_dw")
ENV_VAR = "CONVJAX_CONV_LOWERING"

# The rule (`use_patches`) and its thresholds, from benchmarks/conv_lowering.py on the 2-core CPU
# container (float32; medians of 5-7 interleaved samples; fwd+bwd = forward, input and weight
# gradients; ratio = XLA ms / patches ms, > 1: patches faster). The first sweep (157 shapes,
# benchmarks/results/conv_lowering_cpu_2core.json) ran on shared cores; the clauses marked
# "quiet" were measured with nothing else running (conv_lowering_quiet_cpu_2core.json):
# - Output smaller than the kernel (69 shapes): XLA's convolution is pathological, patches
#   win 5.4x at the median and 16x in total time (9.0 s -> 0.56 s). 3x3 on 2x2x512, b32: fwd
#   614 ms vs 6.8 (91x), fwd+bwd 633 vs 11 (56x); LeNet-5's C5 (5x5 on 5x5x16): 5.8x (quiet).
#   With >= 256 input channels the crossover is at twice the kernel (quiet): 3x3 on 3x3-5x5
#   outputs, 256-512 channels, b16/b32: 1.07-2.06x (ResNet-18's stage 3 at 64x64: 4x4x256,
#   1.11-1.64x); with 128 channels it is a tie (0.72-1.28x), with 64 XLA wins (0.55-0.68x).
# - Strided convolutions off the image (quiet): XLA's input gradient of a strided convolution
#   is slow: of the 20 strided 3x3 shapes measured whose output is not already smaller than
#   the kernel, patches win fwd+bwd on 19, 1.06-2.2x (the 20th: 0.98x). ResNet-20's
#   32x32x16->32 1.43x, 16x16x32->64 1.91x; ResNet-18's 16x16x64->128 1.18x, 8x8x128->256
#   1.34x. On the image itself (<= 3 channels) there is no input gradient to save, and XLA's
#   forward is faster (ResNet-18's 7x7/2 stem: fwd+dw 27-29 ms vs 33-46), so the stem keeps
#   XLA's.
# - Narrow convolutions (quiet), fewer than 8 input channels: patches win fwd+bwd when the
#   output is at most twice the kernel (LeNet-5's C3, 14x14x6->16 5x5: 1.13-1.39x; 12x12x6->16
#   3x3: 1.41-1.48x; 14x14x3->16 5x5: 1.56-2.18x) or has fewer than 16 channels. The latter
#   is LeNet-5's C1 (32x32x1->6 5x5), which needs no input gradient: alone its fwd+dw is a tie
#   or a loss (0.7-1.2x over runs), but in LeNet-5's whole step (b64) patches for C1 alone
#   took 13.2 ms to 12.4, for C3 alone to 12.3, for both to 10.2 (the patch gather fuses with
#   the tanh and pooling around it). Wider outputs or larger maps keep XLA's (1->32/64
#   channels: fwd+dw 0.6-0.8x; ResNet-20's stem 32x32x3->16: 0.61-0.78x; 8 or 16 input
#   channels: 0.6-0.9x fwd+bwd).
# - 1x1 kernels (no patches to gather: one plain matmul): fwd+bwd 2.0-3.7x faster at 7x7 to
#   56x56 (ResNet-50's bottleneck 1x1s; XLA's weight gradient of a 1x1 conv is slow), 1.7-1.8x
#   for strided 1x1 projections (quiet).
# - Everything else keeps XLA's: at larger maps patches' im2col copy costs more than the
#   products (ResNet-20's 32x32x16 3x3: 0.49x; 28x28x16->32 5x5: 0.43-0.49x; quiet).
# On whole train steps (quiet, interleaved; benchmarks/results/train_step_cpu_2core.json has
# the table of record) the strided and narrow clauses took LeNet-5 b64 from 13.8 to 9.9 ms
# and b128 from 28.2 to 20.0, ResNet-20 b128 from 766 to 701 ms; ResNet-18 b32 at 64x64
# moved within the noise (387 -> 380).
# Where oneDNN runs (`onednn_takes`), it beats patches and XLA on most of these clauses too
# (`--grid zoo --variants onednn,patches,xla --modes fwd_bwd`,
# benchmarks/results/conv_lowering_onednn_cpu_2core.json; ms oneDNN / patches / XLA):
# ResNet-20's strided 32x32x16->32 11.2 / 23.9 / 19.4 and 16x16x32->64 5.4 / 7.6 / 10.2,
# ResNet-18's 16x16x64->128 3.1 / 4.1 / 3.8, ResNet-50's 1x1s at 56x56 18.1 / 23.5 / 38.2 and
# 28x28 13.6 / 20.4 / 21.9, ResNet-20's 3x3s 11.3 / 95.7 / 32.6 (32x32x16) and 5.6 / 23.3 / 8.8
# (8x8x64). So with oneDNN only two clauses keep patches: outputs smaller than the kernel
# (ResNet-18's 2x2x512 17.9 / 6.4; LeNet-5's C5 8.3 / 0.5) and strided 1x1 projections (at
# 4-64 output positions: 1.11-1.44 / 0.66-0.96); and the band keeps LeNet-5's narrow maps
# (its whole step b128, medians of 7 rounds in two runs: 7.6 and 9.2 ms with the band, 8.9
# and 10.3 with oneDNN there).
IMAGE_CHANNELS = 3       # at most this many input channels: the convolution reads the image
NARROW_IN, NARROW_OUT = 8, 16
WIDE_IN = 256

# The forced `chunked_dw` lowering computes XLA's weight gradient (a convolution over the batch)
# as patches^T @ cotangent, summed over batch chunks of at most CHUNK_ROWS patch rows so that
# each chunk's patches stay in cache. It was the rule's choice for XLA-lowered convolutions
# while they ran in YNNPACK, whose weight gradient was the slowest of the three products (b128
# 3x3 32x32x16: 21.4 -> 9.6 ms; benchmarks/results/conv_weight_gradient_cpu_2core.json). With
# XLA's own convolution (`compiler_options`) the weight gradient is 6-11 ms at ResNet-20's
# shapes and the chunks lose on whole steps (in one process, medians of 5-7 rounds: ResNet-20
# b128 339-372 ms without them against 372-454 with them, ResNet-18 b32 190-198 against
# 199-226), so `auto` no longer picks it.
CHUNK_ROWS = 4096

# The banded lowering (models/banded_conv.py) multiplies W / KW times the convolution's
# arithmetic but copies the input only KH times; with very few input channels that beats
# im2col's KH*KW copies. `benchmarks.conv_lowering --grid narrow --variants
# patches,banded,xla,auto --modes fwd_bwd,dw` (benchmarks/results/conv_banded_cpu_2core.json;
# fwd+bwd, and fwd + weight gradient as a first layer needs, patches -> banded ms): LeNet-5's C1
# (b128 32x32x1 -> 6 5x5) 8.9 -> 4.1 and 4.6 -> 2.3, 3x3 (b64) 2.6 -> 1.9; C3 (b128 14x14x6 ->
# 16 5x5, 2.8 kernels wide) 6.1 -> 3.5; b64 14x14x3 -> 16 5x5 1.3 -> 1.1. More outputs grow
# the band: one channel to 32 or 64 outputs loses 1.9-7.7x (b64 28x28x1 -> 32 3x3: 4.7 -> 8.9);
# so do maps four or more kernels wide (b64 12x12x6 -> 16 3x3: 1.1 -> 1.3; ResNet-20's stem
# 32x32x3 -> 16: 14.3 -> 22.9).
BANDED_ONE_CHANNEL_WIDTH = 12  # one input channel: padded width <= this many kernel widths
BANDED_NARROW_WIDTH = 3        # < NARROW_IN channels: padded width <= this many kernel widths
# One band for a whole output row multiplies W / KW times the arithmetic; a band per block of
# a few output columns reads only the input columns under it (`banded_conv`'s `block`), for
# span / block times the arithmetic. Blocks of 4-5 columns, against the whole row (`--grid
# narrow --variants banded,banded_blocks,patches,auto --modes fwd_bwd,dw`,
# benchmarks/results/conv_banded_blocks_cpu_2core.json; ms): C1 fwd+dw b128 2.66 -> 1.96, b64
# 1.61 -> 0.91; 3x3 on 32x32x1 b64 fwd+dw 1.34 -> 0.91; C3 (blocks of 5) fwd+bwd b128 3.65 vs
# 3.75, b64 2.13 vs 2.05, ties. Blocks of 2-14 columns swept at b128 (C1 fwd+dw, C3 fwd+bwd):
# 4 and 5 were the fastest (C1 1.9 ms, C3 3.1-3.2), the whole row among the slowest (3.0, 3.9).
# LeNet-5's step, interleaved in one process: b128 12.35 -> 11.29 ms (p25 of each round's 20
# steps, median of 15 rounds), b64 6.03 -> 5.30 (medians of 9 rounds' medians). Where the
# rule does not pick the band, blocks do not make it win either (that grid: 1->32/64 channels
# and maps of 28-32 columns with 3-12 channels stay XLA's or patches').
BANDED_BLOCKS = (5, 4, 3)      # output columns per block: the first dividing the width, else 4


# Which library runs the convolutions XLA keeps. This jaxlib hands every convolution to YNNPACK
# by default (with dots and reductions); XLA's own (Eigen) convolution is faster at ResNet
# shapes, so the steps are compiled with convolutions left out of YNNPACK's fusions (dots and
# reductions stay; `compiler_options`, per program: no process-wide flag). b128 3x3, forward /
# input gradient / weight gradient ms, YNNPACK -> Eigen: 16x16x32 4.7/4.7/21.1 -> 2.9/2.9/6.1,
# 8x8x64 4.3/4.4/11.4 -> 2.6/2.7/4.0, 32x32x16 4.7/6.1/24.9 -> 4.9/4.8/11.6. Whole train steps
# (benchmarks/ynn_convolutions.py): 0.65x ResNet-20, 0.87x ResNet-18, 0.67x airbench94,
# 0.86-0.94x VGG-A, GoogLeNet, ResNet-50, DenseNet-BC; MobileNet's depthwise convolutions lose
# (1.03-1.12x), a cost taken for one simple rule. The rule's clauses
# above were measured against YNNPACK's convolutions; on whole steps with XLA's own they still
# win (in one process: ResNet-20 b128 339-372 ms with the strided clause, 388-403 without;
# ResNet-18 b32 190-198 ms with the small-output clause, 1,290-1,390 without).
CPU_COMPILER_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE",
}
# The same without reductions, for a network that declares `ynn_reductions=False` (models/
# registry.py; LeNet-5, measured in models/lenet.py)
CPU_COMPILER_OPTIONS_XLA_REDUCTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT",
}


def compiler_options(ynn_reductions: bool = True) -> dict[str, str]:
    """XLA options for compiling a step that runs these convolutions: CPU_COMPILER_OPTIONS on
    CPU (without YNNPACK's reductions when not `ynn_reductions`), none elsewhere (GPU and TPU
    convolutions are their own libraries')."""
    if jax.default_backend() != "cpu":
        return {}
    return dict(CPU_COMPILER_OPTIONS if ynn_reductions else CPU_COMPILER_OPTIONS_XLA_REDUCTIONS)


def compiler_options_for(model_name: str) -> dict[str, str]:
    """`compiler_options` for the registered network `model_name` (its `ynn_reductions`);
    the defaults for a name the registry does not know."""
    from models import registry

    try:
        return compiler_options(registry.spec(model_name).ynn_reductions)
    except registry.UnknownModelError:
        return compiler_options()


def lowering() -> str:
    """The lowering forced by $CONVJAX_CONV_LOWERING, or 'auto'."""
    name = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if name not in LOWERINGS:
        raise ValueError(f"{ENV_VAR}={name!r}; choose one of {', '.join(LOWERINGS)}")
    return name


def use_patches(out_hw: Sequence[int], kernel_hw: Sequence[int], strides: Sequence[int],
                cin: int, cout: int, onednn: bool = False) -> bool:
    """The rule: patches + matmul for a 1x1 kernel (the "patches" are the input itself: one
    plain matmul); for an output smaller than the kernel along a spatial axis (twice the
    kernel with WIDE_IN or more input channels); for a strided convolution off the image;
    for a narrow one (fewer than NARROW_IN input channels, and fewer than NARROW_OUT output
    channels or an output at most twice the kernel). XLA's convolution otherwise. Where
    `onednn` runs the rest, only outputs smaller than the kernel and strided 1x1 kernels.
    Measurements above."""
    small = lambda factor: any(o < factor * k for o, k in zip(out_hw, kernel_hw))
    if small(1) or (cin >= WIDE_IN and small(2)):
        return True
    if onednn:  # oneDNN beats patches everywhere else but on strided 1x1 projections
        return math.prod(kernel_hw) == 1 and max(strides) > 1
    if math.prod(kernel_hw) == 1:
        return True
    if max(strides) > 1 and cin > IMAGE_CHANNELS:
        return True
    at_most_twice = any(o <= 2 * k for o, k in zip(out_hw, kernel_hw))
    return cin < NARROW_IN and (cout < NARROW_OUT or at_most_twice)


def use_banded(padded_w: int, kernel_w: int, cin: int, cout: int) -> bool:
    """The rule for the banded lowering: one input channel, fewer than NARROW_OUT output
    channels, a map at most BANDED_ONE_CHANNEL_WIDTH (dilated) kernels wide; or fewer than
    NARROW_IN input channels on a map at most BANDED_NARROW_WIDTH kernels wide. Never a 1x1
    kernel (one plain matmul). Measurements above."""
    if kernel_w == 1:
        return False
    if cin == 1 and cout < NARROW_OUT and padded_w <= BANDED_ONE_CHANNEL_WIDTH * kernel_w:
        return True
    return cin < NARROW_IN and padded_w <= BANDED_NARROW_WIDTH * kernel_w


def banded_block(out_w: int) -> int:
    """Output columns per band block (`BANDED_BLOCKS`): the first that divides the output
    width, so no block computes on padding; else the second, the last block cropped."""
    return next((b for b in BANDED_BLOCKS if out_w % b == 0), BANDED_BLOCKS[1])


@contextlib.contextmanager
def forced(name: str):
    """Sets $CONVJAX_CONV_LOWERING to `name` while the body traces, then restores it."""
    saved = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = name
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = saved


def largest_chunk(batch: int, out_hw: Sequence[int]) -> int:
    """The most examples, a divisor of the batch, whose patch rows (examples x output
    positions) fit in CHUNK_ROWS; at least one."""
    positions = math.prod(out_hw)
    return max(c for c in range(1, batch + 1) if batch % c == 0
               and (c == 1 or c * positions <= CHUNK_ROWS))


# ---------------------------------------------------------------------------------------------
# The patches lowering


def _explicit_padding(in_spatial, kernel_spatial, strides, padding, rhs_dilation):
    """((lo, hi), ...) for 'SAME'/'VALID'/'SAME_LOWER' or explicit pairs."""
    if isinstance(padding, str):
        dilated = [(k - 1) * d + 1 for k, d in zip(kernel_spatial, rhs_dilation)]
        return tuple(lax.padtype_to_pads(in_spatial, dilated, strides, padding))
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def extract_patches(x: jax.Array, kernel_hw: tuple[int, int], strides, pads,
                    dilation) -> jax.Array:
    """(B, H, W, C) -> (B, oh, ow, kh*kw*C), features in (u, v, c) order, i.e. the order of an
    HWIO kernel reshaped to (kh*kw*C, O). Built from strided slices of the padded input, so it
    is exact in every dtype and its gradient is pads and adds (no convolution)."""
    kh, kw = kernel_hw
    (sh, sw), (dh, dw) = strides, dilation
    x = pad_spatial(x, pads)
    _, hp, wp, _ = x.shape
    if (kh, kw, dh, dw) == (hp, wp, 1, 1):  # the kernel covers the input: one patch, in order
        return x.reshape(x.shape[0], 1, 1, -1)  # (LeNet-5's C5: 25 slices saved)
    oh, ow = output_size(hp, kh, sh, dh), output_size(wp, kw, sw, dw)
    cols = [lax.slice(x, (0, u * dh, v * dw, 0),
                      (x.shape[0], u * dh + (oh - 1) * sh + 1, v * dw + (ow - 1) * sw + 1,
                       x.shape[3]), (1, sh, sw, 1))
            for u in range(kh) for v in range(kw)]
    return cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)


def patches_conv(lhs: jax.Array, rhs: jax.Array, window_strides, pads, rhs_dilation, *,
                 precision=None, preferred_element_type=None) -> jax.Array:
    """NHWC x HWIO -> NHWC convolution as patches @ kernel matrix (explicit `pads`)."""
    kh, kw, cin, cout = rhs.shape
    patches = extract_patches(lhs, (kh, kw), window_strides, pads, rhs_dilation)
    rows = patches.reshape(-1, kh * kw * cin)  # 2-D: see banded_conv's product
    out = lax.dot_general(rows, rhs.reshape(kh * kw * cin, cout), (((1,), (0,)), ((), ())),
                          precision=precision, preferred_element_type=preferred_element_type)
    return out.reshape(*patches.shape[:3], cout)


# ---------------------------------------------------------------------------------------------
# XLA's convolution, its weight gradient as chunked patches

_NHWC_NAMES = ("NHWC", "HWIO", "NHWC")


def _xla_conv(lhs, rhs, strides, pads, dilation, precision):
    return lax.conv_general_dilated(lhs, rhs, strides, pads, rhs_dilation=dilation,
                                    dimension_numbers=_NHWC_NAMES, precision=precision)


def chunked_weight_gradient(lhs, cotangent, kernel_shape, strides, pads, dilation, chunk, *,
                            precision=None) -> jax.Array:
    """dL/dkernel (HWIO, float32) of the NHWC convolution of `lhs`, from its output's
    cotangent: the sum over batch chunks of cotangent^T @ patches, in a loop so that only one
    chunk's patches exist at a time."""
    kh, kw, cin, cout = kernel_shape

    def add_chunk(i, total):
        # Sliced by index from the whole arrays, not scanned over them reshaped to
        # (chunks, chunk, ...): XLA then reads the activation the forward saved instead of
        # first copying it into that layout (ResNet-20 b128: 1-5% of the step, 4 runs)
        x = lax.dynamic_slice_in_dim(lhs, i * chunk, chunk)
        g = lax.dynamic_slice_in_dim(cotangent, i * chunk, chunk).reshape(-1, cout)
        patches = extract_patches(x, (kh, kw), strides, pads, dilation)
        # As 2-D matrices, (cout, rows) @ (rows, kh*kw*cin): with the rows left as three
        # axes, or in the transposed orientation, the product ran half as fast (measured)
        product = lax.dot_general(g, patches.reshape(g.shape[0], -1), (((0,), (0,)), ((), ())),
                                  precision=precision, preferred_element_type=jnp.float32)
        return total + product

    total = lax.fori_loop(0, lhs.shape[0] // chunk, add_chunk,
                          jnp.zeros((cout, kh * kw * cin), jnp.float32))
    return total.T.reshape(kh, kw, cin, cout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def xla_conv_chunked_dw(lhs, rhs, strides, pads, dilation, precision, chunk) -> jax.Array:
    """XLA's NHWC x HWIO convolution and input gradient; the weight gradient by
    `chunked_weight_gradient` with `chunk` examples a chunk."""
    return _xla_conv(lhs, rhs, strides, pads, dilation, precision)


def _chunked_dw_forward(lhs, rhs, strides, pads, dilation, precision, chunk):
    return _xla_conv(lhs, rhs, strides, pads, dilation, precision), (lhs, rhs)


def _chunked_dw_backward(strides, pads, dilation, precision, chunk, residuals, cotangent):
    lhs, rhs = residuals
    _, input_vjp = jax.vjp(lambda x: _xla_conv(x, rhs, strides, pads, dilation, precision),
                           lhs)
    # On a device's slice of the batch, chunks of at most `chunk` examples dividing it
    local_chunk = lambda n: max(c for c in range(1, min(chunk, n) + 1) if n % c == 0)
    weight = split_over_mesh(
        lambda x, g: chunked_weight_gradient(x, g, rhs.shape, strides, pads, dilation,
                                             local_chunk(x.shape[0]), precision=precision),
        lhs, cotangent)
    return input_vjp(cotangent)[0], weight.astype(rhs.dtype)


def split_over_mesh(batch_sum, lhs, cotangent):
    """`batch_sum(lhs, cotangent)`, a sum over the batch, computed on each device's slice of
    the batch and added up across devices, when a step traces under a mesh
    (`jax.sharding.use_abstract_mesh`; the trainer's steps do) whose device count divides
    the batch. Without it the SPMD partitioner sees the loop's slices of the batch axis and
    gathers the whole batch onto every device, each then computing the whole sum (measured:
    an all-gather of both operands per convolution on a batch-sharded mesh)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or mesh.size == 1 or lhs.shape[0] % mesh.size:
        return batch_sum(lhs, cotangent)
    axes = mesh.axis_names  # the batch split over every device, whatever the mesh's axes
    local = lambda x, g: lax.psum(batch_sum(x, g), axes)
    return jax.shard_map(local, mesh=mesh, in_specs=(P(axes), P(axes)), out_specs=P(),
                         check_vma=False)(  # the loop's zero carry is not marked per-device
        lhs, cotangent)


xla_conv_chunked_dw.defvjp(_chunked_dw_forward, _chunked_dw_backward)


# ---------------------------------------------------------------------------------------------
# The dispatcher

_NHWC = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))


def _patches_applicable(lhs, rhs, dimension_numbers, lhs_dilation, feature_group_count,
                        batch_group_count, out_sharding) -> bool:
    """The patches path covers plain 2-D NHWC/HWIO convolutions; anything else (groups,
    transposed convolution, other layouts, explicit output sharding) keeps XLA's."""
    if lhs.ndim != 4 or rhs.ndim != 4 or feature_group_count != 1 or batch_group_count != 1:
        return False
    if out_sharding is not None or any(d != 1 for d in (lhs_dilation or (1, 1))):
        return False
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    return dn == _NHWC


def choose(lhs_shape: Sequence[int], rhs_shape: Sequence[int], window_strides, padding,
           rhs_dilation=None, dtype=jnp.float32) -> tuple[str, tuple, int | None]:
    """(lowering, explicit pads, its size) for an NHWC x HWIO convolution, by the rule and
    $CONVJAX_CONV_LOWERING, for operands of `dtype` (None: mixed). The lowering is 'onednn',
    'patches', 'banded', 'xla' or 'chunked_dw' (XLA's convolution, the weight gradient
    chunked); the size is the examples per chunk for 'chunked_dw', the output columns per
    band block for 'banded', else None."""
    rhs_dilation = tuple(rhs_dilation or (1, 1))
    pads = _explicit_padding(lhs_shape[1:3], rhs_shape[:2], window_strides, padding,
                             rhs_dilation)
    out_hw = [output_size(n + lo + hi, k, s, d) for n, (lo, hi), k, d, s in
              zip(lhs_shape[1:3], pads, rhs_shape[:2], rhs_dilation, window_strides)]
    forced = lowering()
    if forced == "chunked_dw":
        return forced, pads, largest_chunk(lhs_shape[0], out_hw)
    if forced == "banded":
        return forced, pads, banded_block(out_hw[1])
    if forced == "onednn":  # where oneDNN cannot run it, XLA's convolution
        return ("onednn" if onednn_takes(rhs_shape, pads, rhs_dilation, dtype) else "xla"), \
            pads, None
    if forced != "auto" or jax.default_backend() != "cpu":
        return ("xla" if forced == "auto" else forced), pads, None
    padded_w = lhs_shape[2] + sum(pads[1])
    if use_banded(padded_w, (rhs_shape[1] - 1) * rhs_dilation[1] + 1, rhs_shape[2],
                  rhs_shape[3]):
        return "banded", pads, banded_block(out_hw[1])
    patches = functools.partial(use_patches, out_hw, rhs_shape[:2], window_strides,
                                rhs_shape[2], rhs_shape[3])
    if patches(onednn=True):  # patches with or without oneDNN: asks no library to load
        return "patches", pads, None
    if onednn_takes(rhs_shape, pads, rhs_dilation, dtype):
        return "onednn", pads, None
    return ("patches" if patches() else "xla"), pads, None


def onednn_takes(kernel_shape: Sequence[int], pads, rhs_dilation, dtype) -> bool:
    """Whether oneDNN (models/onednn_conv.py) can run this convolution here: float32, no
    dilation, padding within the kernel, and the library available on this backend."""
    if dtype != jnp.float32 or tuple(rhs_dilation) != (1, 1):
        return False
    if any(not 0 <= p < k for pair, k in zip(pads, kernel_shape[:2]) for p in pair):
        return False
    return onednn_conv.available()


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None,
                         out_sharding=None) -> jax.Array:
    """`lax.conv_general_dilated`, lowered by shape (plain 2-D NHWC/HWIO convolutions only):
    rows + banded matmul where `use_banded` says so, patches + matmul where `use_patches`
    does, oneDNN's convolution where it runs (`onednn_takes`), XLA's otherwise."""
    xla = lambda: lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
        feature_group_count, batch_group_count, precision, preferred_element_type,
        out_sharding=out_sharding)
    if not _patches_applicable(lhs, rhs, dimension_numbers, lhs_dilation,
                               feature_group_count, batch_group_count, out_sharding):
        return xla()
    window_strides, rhs_dilation = tuple(window_strides), tuple(rhs_dilation or (1, 1))
    # One dtype throughout, or none that oneDNN takes
    dtype = lhs.dtype if rhs.dtype == lhs.dtype and preferred_element_type in (
        None, lhs.dtype) else None
    kind, pads, size = choose(lhs.shape, rhs.shape, window_strides, padding, rhs_dilation, dtype)
    if kind == "onednn":
        return onednn_conv.conv(lhs, rhs, window_strides, pads)
    if kind == "xla" or (kind == "chunked_dw" and preferred_element_type is not None):
        return xla()
    if kind == "chunked_dw":
        return xla_conv_chunked_dw(lhs, rhs, window_strides, pads, rhs_dilation, precision,
                                   size)
    if kind == "banded":
        return banded_conv(lhs, rhs, window_strides, pads, rhs_dilation, block=size,
                           precision=precision, preferred_element_type=preferred_element_type)
    return patches_conv(lhs, rhs, window_strides, pads, rhs_dilation, precision=precision,
                        preferred_element_type=preferred_element_type)


def Conv(*args, **kwargs) -> nnx.Conv:  # noqa: N802 (a factory standing in for the class)
    """`nnx.Conv` lowered by shape (`conv_general_dilated` above). It is a plain nnx.Conv,
    so parameter names, shapes and the state pytree are those of `nnx.Conv`; only the
    function it calls differs (a static attribute, not state: checkpoints are unaffected)."""
    kwargs.setdefault("conv_general_dilated", conv_general_dilated)
    return nnx.Conv(*args, **kwargs)
