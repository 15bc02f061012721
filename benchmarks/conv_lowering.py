"""Microbenchmark behind `models.conv_lowering`'s rule: XLA's convolution against patches +
matmul, per shape, forward and forward + backward (input and weight gradients).

    uv run python -m benchmarks.conv_lowering [--grid square|zoo|threshold|narrow|all]
        [--modes fwd,fwd_bwd,dx,dw] [--repeats 5]
        [--max-gflop 3] [--json out.json]

Variants: `xla` (lax.conv_general_dilated), `patches` (models.conv_lowering: strided slices
+ one dot_general; its gradient is pads/adds + dots), `lax_patches`
(lax.conv_general_dilated_patches + dot: the patches are themselves an identity-kernel
grouped convolution, so its gradient is a convolution again), `chunked_dw` (XLA's
convolution, its weight gradient summed over batch chunks), `onednn` (models/onednn_conv.py),
`banded` (models/banded_conv.py:
KH input rows side by side @ the kernel as a banded matrix along the width), `banded_blocks`
(the same, one band per block of `conv_lowering.banded_block` output columns) and `auto` (what
the rule picks, the last column). Every shape's variants are
compiled first, then timed interleaved (round-robin) `--repeats` times; each sample averages
enough calls to last ~20 ms, and the table shows medians and the first variant's time over
the second's (default xla/patches; >1: the second faster). The shared 2-core machine is
noisy: read ratios within ~1.3x as ties.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
from jax import lax

from models import banded_conv, conv_lowering, onednn_conv

DN = ("NHWC", "HWIO", "NHWC")


def _xla(x, w, stride, pads):
    return lax.conv_general_dilated(x, w, (stride, stride), pads, dimension_numbers=DN)


def _patches(x, w, stride, pads):
    return conv_lowering.patches_conv(x, w, (stride, stride), pads, (1, 1))


def _lax_patches(x, w, stride, pads):
    kh, kw, cin, cout = w.shape
    p = lax.conv_general_dilated_patches(x, (kh, kw), (stride, stride), pads,
                                         dimension_numbers=DN,
                                         precision=lax.Precision.HIGHEST)
    # patches' features are ordered (c, u, v): match the kernel to it
    return p @ w.transpose(2, 0, 1, 3).reshape(cin * kh * kw, cout)


def _chunked_dw(x, w, stride, pads):
    """XLA's convolution, its weight gradient over batch chunks of the rule's size."""
    out_hw = jax.eval_shape(lambda: _xla(x, w, stride, pads)).shape[1:3]
    chunk = conv_lowering.largest_chunk(x.shape[0], out_hw)
    return conv_lowering.xla_conv_chunked_dw(x, w, (stride, stride), pads, (1, 1), None, chunk)


def _banded(x, w, stride, pads):
    return banded_conv.banded_conv(x, w, (stride, stride), pads, (1, 1))


def _banded_blocks(x, w, stride, pads):
    """The band per block of output columns, of the rule's size (`banded_block`)."""
    out_w = jax.eval_shape(lambda: _xla(x, w, stride, pads)).shape[2]
    return banded_conv.banded_conv(x, w, (stride, stride), pads, (1, 1),
                                   block=conv_lowering.banded_block(out_w))


def _onednn(x, w, stride, pads):
    return onednn_conv.conv(x, w, (stride, stride), pads)


def _auto(x, w, stride, pads):
    return conv_lowering.conv_general_dilated(x, w, (stride, stride), pads,
                                              dimension_numbers=DN)


VARIANTS = {"xla": _xla, "patches": _patches, "lax_patches": _lax_patches,
            "chunked_dw": _chunked_dw, "banded": _banded, "banded_blocks": _banded_blocks,
            "onednn": _onednn, "auto": _auto}


def compiled(variant: str, mode: str, stride: int, pads):
    """A jitted forward ('fwd'), forward + input and weight gradients ('fwd_bwd'), or
    forward + one gradient ('dx', 'dw')."""
    conv = VARIANTS[variant]
    options = conv_lowering.compiler_options()  # compiled as the trainer's steps are
    if mode == "fwd":
        return jax.jit(lambda x, w, g: conv(x, w, stride, pads), compiler_options=options)
    # d/d(x, w) of sum(y * g): the cotangent g is dense, as in training, and an argument (a
    # closed-over constant would be folded into the program at compile time)
    argnums = {"fwd_bwd": (0, 1), "dx": 0, "dw": 1}[mode]
    return jax.jit(jax.grad(lambda x, w, g: jnp.vdot(conv(x, w, stride, pads), g), argnums),
                   compiler_options=options)


def sample(fn, args, inner: int) -> float:
    """Seconds per call, averaged over `inner` calls."""
    start = time.perf_counter()
    for _ in range(inner):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / inner


def time_interleaved(fns: dict, args, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, sampled round-robin."""
    inner = {}
    for name, fn in fns.items():
        jax.block_until_ready(fn(*args))  # compile
        once = sample(fn, args, 1)
        inner[name] = max(1, min(50, int(0.02 / max(once, 1e-6))))
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(sample(fn, args, inner[name]))
    return {name: statistics.median(s) for name, s in samples.items()}


def square_grid(max_gflop: float):
    """3x3 SAME stride-1 convolutions, C -> C, over spatial sizes x channels x batch."""
    for batch in (32, 128):
        for hw in (1, 2, 4, 8, 16, 32):
            for c in (16, 32, 64, 128, 256, 512):
                if 2 * batch * hw * hw * 9 * c * c / 1e9 <= max_gflop:
                    yield dict(batch=batch, hw=hw, cin=c, cout=c, k=3, stride=1, pad=1)


def _within(shapes, max_gflop: float):
    """(batch, hw, cin, cout, k, stride, pad) tuples as configs, those within the FLOP cap."""
    for batch, hw, cin, cout, k, stride, pad in shapes:
        cfg = dict(batch=batch, hw=hw, cin=cin, cout=cout, k=k, stride=stride, pad=pad)
        if _gflop(cfg) <= max_gflop:
            yield cfg


def zoo_grid(max_gflop: float):
    """The convolutions of lenet5, resnet20_cifar and resnet18 at the benchmark's batches
    (strided and 1x1 ones included), and some 1x1 convolutions at large spatial size."""
    shapes = [
        # lenet5 b128: C1, C3, C5 (5x5 VALID)
        (128, 32, 1, 6, 5, 1, 0), (128, 14, 6, 16, 5, 1, 0), (128, 5, 16, 120, 5, 1, 0),
        # resnet20_cifar b128 (3x3, pad 1)
        (128, 32, 3, 16, 3, 1, 1), (128, 32, 16, 16, 3, 1, 1), (128, 32, 16, 32, 3, 2, 1),
        (128, 16, 32, 32, 3, 1, 1), (128, 16, 32, 64, 3, 2, 1), (128, 8, 64, 64, 3, 1, 1),
        # resnet18 b32 at 64x64: stem 7x7/2, stages, strided 3x3 and 1x1 projections
        (32, 64, 3, 64, 7, 2, 3), (32, 16, 64, 64, 3, 1, 1), (32, 16, 64, 128, 3, 2, 1),
        (32, 16, 64, 128, 1, 2, 0), (32, 8, 128, 128, 3, 1, 1), (32, 8, 128, 256, 3, 2, 1),
        (32, 8, 128, 256, 1, 2, 0), (32, 4, 256, 256, 3, 1, 1), (32, 4, 256, 512, 3, 2, 1),
        (32, 4, 256, 512, 1, 2, 0), (32, 2, 512, 512, 3, 1, 1),
        # 1x1 stride 1 (ResNet-50's bottlenecks)
        (16, 56, 64, 256, 1, 1, 0), (16, 28, 512, 128, 1, 1, 0), (16, 14, 1024, 256, 1, 1, 0),
        (16, 7, 2048, 512, 1, 1, 0),
    ]
    yield from _within(shapes, max_gflop)


def threshold_grid(max_gflop: float):
    """Around the crossover: 3x3 (and GoogLeNet's 5x5) convolutions whose output has 1-36
    positions, stride 1 and 2, at ResNet-18's and ResNet-50's batches."""
    def shapes():
        for batch in (16, 32):
            for c in (64, 128, 256, 512):
                for hw in (1, 2, 3, 4, 5, 6):
                    yield dict(batch=batch, hw=hw, cin=c, cout=c, k=3, stride=1, pad=1)
                for hw in (2, 4, 6, 8):
                    yield dict(batch=batch, hw=hw, cin=c, cout=2 * c, k=3, stride=2, pad=1)
            for hw in (2, 4, 7):
                yield dict(batch=batch, hw=hw, cin=48, cout=128, k=5, stride=1, pad=2)
    yield from (cfg for cfg in shapes() if _gflop(cfg) <= max_gflop)


def narrow_grid(max_gflop: float):
    """Few channels (LeNet-5's C1 and C3 and their neighbours, first layers reading a grey
    image, DenseNet-like 12-channel outputs), and larger 5x5 and strided shapes."""
    shapes = [
        (128, 32, 1, 6, 5, 1, 0), (64, 32, 1, 6, 5, 1, 0), (64, 32, 1, 6, 3, 1, 0),
        (64, 40, 1, 64, 3, 1, 1), (4, 256, 1, 64, 3, 1, 1), (64, 28, 1, 32, 3, 1, 1),
        (128, 14, 6, 16, 5, 1, 0), (64, 14, 6, 16, 5, 1, 0), (64, 12, 6, 16, 3, 1, 0),
        (64, 14, 3, 16, 5, 1, 0), (64, 28, 6, 16, 5, 1, 0), (64, 10, 16, 16, 5, 1, 0),
        (64, 14, 16, 32, 5, 1, 0), (64, 14, 8, 8, 3, 1, 1), (64, 7, 16, 32, 3, 1, 1),
        (64, 32, 48, 12, 3, 1, 1), (64, 16, 48, 12, 3, 1, 1), (64, 32, 16, 8, 3, 1, 1),
        (64, 32, 8, 16, 3, 1, 1), (64, 32, 8, 8, 3, 1, 1), (64, 32, 12, 24, 3, 1, 1),
        (128, 32, 3, 16, 3, 1, 1), (128, 32, 3, 32, 5, 1, 2), (32, 28, 16, 32, 5, 1, 2),
        (32, 14, 32, 64, 5, 1, 2), (32, 64, 3, 64, 7, 2, 3), (32, 112, 64, 128, 3, 2, 1),
    ]
    yield from _within(shapes, max_gflop)


def _out_hw(cfg) -> int:
    return (cfg["hw"] + 2 * cfg["pad"] - cfg["k"]) // cfg["stride"] + 1


def _gflop(cfg) -> float:
    return 2 * cfg["batch"] * _out_hw(cfg) ** 2 * cfg["k"] ** 2 * cfg["cin"] * cfg["cout"] / 1e9


def measure(cfg: dict, repeats: int, variants, modes) -> dict:
    """One row: the shape, and per mode the median ms of each variant."""
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (cfg["batch"], cfg["hw"], cfg["hw"], cfg["cin"]))
    w = jax.random.normal(kw, (cfg["k"], cfg["k"], cfg["cin"], cfg["cout"])) * 0.05
    pads = ((cfg["pad"], cfg["pad"]),) * 2
    g = jax.random.normal(jax.random.key(2),
                          (cfg["batch"], _out_hw(cfg), _out_hw(cfg), cfg["cout"]))
    row = dict(cfg, out_positions=_out_hw(cfg) ** 2, gflop_fwd=_gflop(cfg))
    for mode in modes:
        fns = {v: compiled(v, mode, cfg["stride"], pads) for v in variants}
        row[mode] = {v: s * 1e3 for v, s in time_interleaved(fns, (x, w, g), repeats).items()}
    row["rule"] = conv_lowering.choose(x.shape, w.shape, (cfg["stride"],) * 2, pads)[0]
    return row


def _print_row(row: dict, variants, modes) -> None:
    shape = (f"b{row['batch']} {row['hw']}x{row['hw']}x{row['cin']}->{row['cout']} "
             f"k{row['k']}s{row['stride']}")
    cells = []
    for mode in modes:
        ms = row[mode]
        cells.append(" ".join(f"{ms[v]:9.2f}" for v in variants)
                     + f" {ms[variants[0]] / ms[variants[1]]:7.2f}x")
    print(f"{shape:<34}{row['out_positions']:>6}  " + "  |".join(cells)
          + f"   {row['rule']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=("square", "zoo", "threshold", "narrow", "all"),
                        default="all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-gflop", type=float, default=3.0,
                        help="skip shapes whose forward costs more (keeps the run short)")
    parser.add_argument("--variants", default="xla,patches",
                        help="of " + ",".join(VARIANTS) + " (the ratio: first/second)")
    parser.add_argument("--modes", default="fwd,fwd_bwd", help="of fwd,fwd_bwd,dx,dw")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    variants, modes = args.variants.split(","), args.modes.split(",")
    grids = {"square": [square_grid], "zoo": [zoo_grid], "threshold": [threshold_grid],
             "narrow": [narrow_grid],
             "all": [square_grid, zoo_grid, threshold_grid, narrow_grid]}
    header = " ".join(f"{v:>9}" for v in variants) + "  1st/2nd"
    print(f"{'shape':<34}{'out':>6}  " + "  |".join(f"{m} ms: {header}" for m in modes)
          + "   rule")
    rows = []
    for grid in grids[args.grid]:
        for cfg in grid(args.max_gflop):
            rows.append(measure(cfg, args.repeats, variants, modes))
            _print_row(rows[-1], variants, modes)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": jax.default_backend(), "repeats": args.repeats,
                       "rows": rows},
                      f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
