#!/usr/bin/env python3
"""convjax's one entry point: `launch.py COMMAND [args]` (run `launch.py --help` for the list).

Each command lives in its own module as `main(argv: list[str]) -> int`; this file only
dispatches, and turns a `UserError` into one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import sys

from errors import UserError
from training import compile_cache

COMMANDS = {
    "train": ("training.cli", "train a model from an experiment config (resumes an existing --workdir)"),
    "eval": ("training.eval_cli", "evaluate a trained run on its eval split or another dataset"),
    "predict": ("training.predict_cli", "apply a trained run to an image or a folder of images"),
    "embed": ("training.embed_cli", "embeddings (or a classifier's penultimate features) of images, as .npz"),
    "retrieve": ("training.retrieve_cli", "a query image beside its k nearest images of a folder, by a run's embeddings"),
    "embed": ("training.embed_cli", "embeddings (or a classifier's penultimate features) of images, as .npz"),
    "retrieve": ("training.retrieve_cli", "a query image beside its k nearest images of a folder, by a run's embeddings"),
    "bench": ("benchmarks.train_step", "time the compiled train step against a PyTorch twin in the same run"),
    "sweep": ("training.sweep", "run an experiment's get_sweep() ablation (in parallel, or on SLURM)"),
    "report": ("training.report", "a sweep's table (mean, std, 95% CI, Welch p vs a baseline) and plots"),
    "reproduce": ("training.reproduce_cli", "rerun a run from its record and compare the weights fingerprint"),
    "models": ("models.cli", "list the registered networks"),
    "prepare": ("data.cli", "download and write a TFDS dataset as ArrayRecord files"),
    "summary": ("analysis.summary_cli", "per-layer shapes, parameters, FLOPs, receptive fields of a network"),
    "stats": ("data.stats_cli", "per-channel mean/std of a dataset, cached for normalize(NAME)"),
    "analyze": ("analysis.cli", "pictures of what a trained network does: filters, saliency, Grad-CAM, ..."),
    "show-data": ("training.show_data_cli", "a picture grid of augmented training examples with their labels"),
    "generate": ("training.generate_cli", "signals generated sample by sample by a trained WaveNet run, as .npz"),
}


def _usage() -> str:
    lines = ["usage: launch.py COMMAND [args]   (launch.py COMMAND --help for its options)", ""]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"launch.py: unknown command {command!r}; run `launch.py --help` for the list",
              file=sys.stderr)
        return 2
    compile_cache.enable()  # before anything compiles: a second launch loads, not compiles
    try:
        module = importlib.import_module(COMMANDS[command][0])
        return module.main(rest) or 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
