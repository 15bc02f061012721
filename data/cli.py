"""`launch.py prepare NAME [--data-dir DIR]`: writes a TFDS dataset as ArrayRecord files.

Run it on a machine with network access (or with the dataset's manual files in
DIR/downloads/manual), then train anywhere that sees DIR.
"""

from __future__ import annotations

import argparse

from data import folder, sources
from errors import UserError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="launch.py prepare", description=__doc__)
    parser.add_argument("name", help="TFDS name, e.g. mnist, cifar10, imagenette, digits")
    parser.add_argument("--data-dir", default=None,
                        help="TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    args = parser.parse_args(argv)
    if folder.is_folder(args.name):
        raise UserError(f"{args.name} is read straight from its image files: train on it with "
                        f"--config.data.name={args.name}, nothing to prepare")
    path = sources.prepare(args.name, args.data_dir)
    b = sources.builder(args.name, args.data_dir)
    splits = ", ".join(f"{name} {info.num_examples:,}" for name, info in b.info.splits.items())
    print(f"{args.name}: prepared in {path} ({splits})")
    return 0
