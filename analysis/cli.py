"""`launch.py analyze KIND --workdir RUN [--input IMAGE] [--layer NAME] [--class C] --out PNG`:
a picture of what a trained run's network does (analysis/, one file per KIND).

KIND: filters, activations, saliency, gradcam, guided_backprop, deconvnet, occlusion,
top_patches, dream, class_model, style, adversarial, equivariance.

Options: --input IMAGE (else eval image --index N, default 0; the run's preprocessing is
applied), --layer NAME (a module path such as c3 or convs.layers.4; an unknown one lists
them), --class C (default: the predicted class; class_model: every class), --channel K
(top_patches, default: the most active), --style IMAGE (style), --shift K (equivariance,
default 2), --eval N (adversarial: eval images, default all), --steps N,
--checkpoint best|latest|STEP. A mistake is one line and exit status 2, before anything is
written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from errors import UserError, one_line

KINDS = ("filters", "activations", "saliency", "gradcam", "guided_backprop", "deconvnet",
         "occlusion", "top_patches", "dream", "class_model", "style", "adversarial",
         "equivariance")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="launch.py analyze", add_help=False,
                                     allow_abbrev=False, exit_on_error=False)
    parser.add_argument("kind")
    parser.add_argument("--workdir")
    parser.add_argument("--out")
    parser.add_argument("--checkpoint", default="best")
    parser.add_argument("--input")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--layer")
    parser.add_argument("--class", dest="class_id", type=int)
    parser.add_argument("--channel", type=int)
    parser.add_argument("--style")
    parser.add_argument("--shift", type=int, default=2)
    parser.add_argument("--eval", type=int)
    parser.add_argument("--steps", type=int)
    try:
        args, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError as err:
        raise UserError(f"{one_line(err)}; see `launch.py analyze --help`") from None
    if rest:
        raise UserError(f"unknown argument {rest[0]!r}; see `launch.py analyze --help`")
    if args.kind not in KINDS:
        raise UserError(f"unknown analysis {args.kind!r}; choose one of {', '.join(KINDS)}")
    # checked here: argparse exits on a missing required option even with exit_on_error off
    for flag in ("workdir", "out"):
        if getattr(args, flag) is None:
            raise UserError(f"--{flag} is required; see `launch.py analyze --help`")
    if Path(args.out).suffix.lower() != ".png":
        raise UserError(f"--out {args.out}: give a .png file name for the picture")
    if Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a folder; give a .png file name")
    if args.kind == "style" and not (args.input and args.style):
        raise UserError("style needs --input CONTENT.png and --style STYLE.png")
    return args


def main(argv: list[str]) -> int:
    if not argv or "--help" in argv or "-h" in argv:
        print(__doc__.strip())
        return 0
    args = parse(argv)
    from analysis import kinds, run

    if args.input:  # read before the network is restored: a bad file costs nothing
        from data import image_files

        image_files.read(Path(args.input))
    opened = run.open_run(args.workdir, args.checkpoint)
    if args.class_id is not None and not 0 <= args.class_id < opened.info.num_classes:
        raise UserError(f"--class {args.class_id}: this run has classes 0 to "
                        f"{opened.info.num_classes - 1}")
    path, line = getattr(kinds, args.kind)(opened, args)
    print(f"{line}\nwrote {path}")
    return 0


def image_of(opened, args) -> tuple[np.ndarray, str]:
    """(the image to analyse, what it is)."""
    if args.input:
        return opened.read_image(Path(args.input)), Path(args.input).name
    images, labels = opened.eval_set(args.index + 1)
    if args.index >= len(images):
        raise UserError(f"--index {args.index}: the eval set has {len(images)} images")
    return images[args.index], (f"eval image {args.index} (label "
                                f"{opened.class_names[labels[args.index]]})")
