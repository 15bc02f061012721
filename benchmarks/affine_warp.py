"""The device augmentation's bilinear warp: dm-pix's `affine_transform(order=1)` against
convjax's `data.augment.geometric.bilinear_warp`, vmapped over a batch, interleaved in one
process.

    uv run python -m benchmarks.affine_warp [--batch 64] [--size 32] [--channels 1]
        [--rounds 5] [--steps 20] [--json OUT]

Both sample the same points with the same edge clamp and zero fill (dm-pix's result masked as
convjax's is); the table gives the median ms of each (median of round medians) and the largest
difference between their outputs.

Measured on the shared 2-core CPU under heavy load from other jobs (absolute times are several
times a quiet machine's), the default experiment's batch, 64 x 32x32x1: dm-pix 374.9 ms,
convjax 30.8 ms (12.2x; load average 36; benchmarks/results/affine_warp_cpu_2core.json), and
in an earlier run 105.5 against 12.0 ms (8.8x; load 19); outputs equal to 4.8e-7. dm-pix indexes with (row, col) pairs, which XLA's CPU backend runs as a slow
general gather; one gather of flat pixel indices is what convjax does instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import dm_pix as pix
import jax
import jax.numpy as jnp

from data.augment import geometric


def dm_pix_warp(image, matrix, offset):
    """dm-pix's bilinear warp with convjax's zero fill (what affine_device did before)."""
    m = jnp.eye(3, dtype=jnp.float32).at[:2, :2].set(matrix)
    o = jnp.concatenate([offset, jnp.zeros(1, jnp.float32)])
    warped = pix.affine_transform(image, m, offset=o, order=1, mode="nearest")
    return jnp.where(geometric._inside(jnp, image.shape, matrix, offset)[..., None], warped, 0)


def random_maps(batch: int, size: int):
    """Rotations by up to 11 degrees, zoom 1.05, shifts up to 3 pixels: the default experiment's
    range."""
    k1, k2 = jax.random.split(jax.random.key(3))
    angle = jax.random.uniform(k1, (batch,), minval=-0.2, maxval=0.2)
    rows = [jnp.stack([jnp.cos(angle), -jnp.sin(angle)], -1),
            jnp.stack([jnp.sin(angle), jnp.cos(angle)], -1)]
    offset = jax.random.uniform(k2, (batch, 2), minval=-3, maxval=3)
    return jnp.stack(rows, -2) * 1.05, offset


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    images = jax.random.normal(jax.random.key(0), (args.batch, args.size, args.size,
                                                   args.channels))
    matrices, offsets = random_maps(args.batch, args.size)
    ours = lambda im, m, o: geometric.bilinear_warp(jnp, im, m, o)
    fns = {"dm_pix": jax.jit(jax.vmap(dm_pix_warp)), "convjax": jax.jit(jax.vmap(ours))}
    outs = {k: f(images, matrices, offsets) for k, f in fns.items()}
    diff = float(jnp.abs(outs["dm_pix"] - outs["convjax"]).max())
    rounds = {k: [] for k in fns}
    for _ in range(args.rounds):
        for name, f in fns.items():
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                jax.block_until_ready(f(images, matrices, offsets))
                times.append(time.perf_counter() - start)
            rounds[name].append(statistics.median(times) * 1e3)
    ms = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"{args.batch} x {args.size}x{args.size}x{args.channels}: dm-pix {ms['dm_pix']:.2f} ms, "
          f"convjax {ms['convjax']:.2f} ms ({ms['dm_pix'] / ms['convjax']:.1f}x); "
          f"max |difference| {diff:.2g}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": jax.default_backend(), "batch": args.batch,
                       "shape": [args.size, args.size, args.channels], "ms": ms,
                       "round_ms": rounds, "speedup": ms["dm_pix"] / ms["convjax"],
                       "max_abs_difference": diff}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
