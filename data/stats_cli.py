"""`launch.py stats NAME [--data-dir DIR] [--split train] [--image-size N] [--skip-bad]`:
per-channel mean and std of a dataset split, cached for `normalize(NAME)` (data/stats.py).

NAME is a TFDS name (digits, cifar10, ...) or folder:/path/to/root. Images are measured as the
pipeline decodes them: floats in [0, 1], resized to N x N, before any augmentation or padding.
"""

from __future__ import annotations

import argparse

from data import stats
from errors import UserError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="launch.py stats", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="TFDS name or folder:/path/to/root")
    parser.add_argument("--data-dir", default=None,
                        help="data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets); the "
                             "statistics are written under DIR/convjax_stats/")
    parser.add_argument("--split", default="train")
    parser.add_argument("--image-size", type=int, default=stats.DEFAULT_SIZE)
    parser.add_argument("--skip-bad", action="store_true",
                        help="folder datasets: leave out unreadable images instead of stopping")
    args = parser.parse_args(argv)
    if args.image_size <= 0:
        raise UserError(f"--image-size must be positive, got {args.image_size}")
    result, path = stats.compute_and_cache(args.name, args.split, args.image_size,
                                           args.data_dir, skip_bad=args.skip_bad)
    fmt = lambda values: "(" + ", ".join(f"{v:.6f}" for v in values) + ")"  # noqa: E731
    print(f"{args.name} {args.split} at {args.image_size}x{args.image_size}, "
          f"{result['images']:,} images: mean {fmt(result['mean'])} std {fmt(result['std'])}")
    print(f"wrote {path}")
    return 0
