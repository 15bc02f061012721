"""`launch.py show-data [--config EXP] [--n 64] [--out grid.png] [--config.FIELD=VALUE ...]`:
a picture grid of augmented training examples with their labels, i.e. what the network sees.

The examples are the first N of the run's training stream (data/inputs.py's open_data and
build_inputs with the classifier's decode: the Grain pipeline with host augmentation
`data.augment`, balanced sampling if asked), then the train step's own device hook
(`data.device_augment`, `train.mix`, data/augment/hook.py) with the key of step 0, applied to
those N (so MixUp/CutMix pair them among themselves). Mixed examples
show their two largest label weights (label smoothing taken out). Normalisation ops are undone
for display; pixels are then clipped to [0, 1]. The caption says all of this.
"""

from __future__ import annotations

import argparse
import math
import textwrap
from pathlib import Path

import numpy as np

from errors import UserError

CELL_IN, CAPTION_IN, DPI = 1.25, 1.0, 100   # a cell is 125 px square; the caption 100 px
LABEL_IN = 0.3                               # of each cell, the label's strip above the image


def _own_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """--n and --out; everything else goes to training/cli.py's parser (config overrides)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--out", default="grid.png")
    try:
        args, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError as err:
        raise UserError(f"launch.py show-data: {err}") from None
    if args.n <= 0:
        raise UserError(f"--n must be positive, got {args.n}")
    return args, rest


def grid_size_px(n: int) -> tuple[int, int]:
    """(width, height) of the picture for `n` examples: at least 4 columns, so the caption fits."""
    cols = max(4, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    return round(cols * CELL_IN * DPI), round((rows * CELL_IN + CAPTION_IN) * DPI)


def examples(c, data, n: int):
    """(images NHWC in [0, 1], label weights (n, K), whether normalisation was undone) of the
    first n training examples."""
    import jax

    from data import augment, inputs, pipeline
    from data.augment import hook as augment_hook

    # The run's own train stream; caching and workers change its speed, not its examples.
    c.data.cache, c.data.num_workers = False, 0
    host = augment.host_pipeline(c.data.augment) if c.data.augment not in ("", "none") else None
    train_iter = inputs.build_inputs(
        c, data, decode=lambda r: pipeline.decode(r, c.data.image_size, c.data.pad),
        train_example=lambda ex, rng: ex if host is None else {**ex, "image": host(ex["image"], rng)},
        eval_example=lambda ex, i: ex).train_iter
    batches = [next(train_iter) for _ in range(-(-n // c.train.batch_size))]
    images = np.concatenate([b["image"] for b in batches])[:n]
    labels = np.concatenate([b["label"] for b in batches])[:n]
    t = c.train
    hook = augment_hook.build(c.data.device_augment, t.mix, t.mix_alpha, data.info.num_classes,
                              t.label_smoothing)
    if hook is not None:
        root = jax.random.key_data(jax.random.key(c.seed))
        images, labels = jax.jit(hook)(images, labels, augment_hook.step_key(root, 0)[0])
    images, labels = np.asarray(images, np.float32), np.asarray(labels)
    if labels.ndim == 1:
        weights = np.eye(data.info.num_classes, dtype=np.float32)[labels]
    else:  # soft labels: undo label smoothing, y = (1 - e) t + e / K
        eps = c.train.label_smoothing
        weights = (labels - eps / data.info.num_classes) / (1 - eps)
    images, undone = _denormalize(images, c)
    return images, weights, undone


def _denormalize(images: np.ndarray, c) -> tuple[np.ndarray, bool]:
    """Undoes every normalize op, last applied first (device ops run after host ops)."""
    from data.augment.pipeline import resolve

    undone = False
    for spec in (c.data.device_augment, c.data.augment):
        for op, args in reversed(resolve(spec)):
            if op.name == "normalize":
                images = images * np.float32(args["std"]) + np.float32(args["mean"])
                undone = True
    return np.clip(images, 0.0, 1.0), undone


def _label_text(weights: np.ndarray, names: list[str]) -> str:
    top = np.argsort(-weights)[:2]
    shown = [i for i in top if weights[i] > 1e-3]
    if len(shown) == 1 and weights[shown[0]] > 0.999:
        return names[shown[0]][:16]
    return "\n".join(f"{names[i][:11]} {weights[i]:.2f}" for i in shown)


def draw(images: np.ndarray, weights: np.ndarray, names: list[str], caption: str, out: Path):
    from matplotlib.figure import Figure  # the Agg canvas, without pyplot's global state

    n = len(images)
    width, height = grid_size_px(n)
    cols = max(4, math.ceil(math.sqrt(n)))
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    w_in, h_in = width / DPI, height / DPI
    side = CELL_IN - LABEL_IN
    for i, (image, w) in enumerate(zip(images, weights)):
        row, col = divmod(i, cols)
        left = col * CELL_IN + LABEL_IN / 2
        bottom = h_in - CAPTION_IN - (row + 1) * CELL_IN + 0.05
        ax = fig.add_axes((left / w_in, bottom / h_in, side / w_in, side / h_in))
        grey = image.shape[-1] == 1
        ax.imshow(image[..., 0] if grey else image, cmap="gray" if grey else None,
                  vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(_label_text(w, names), fontsize=7, pad=2)
        ax.set_axis_off()
    fig.text(0.01, 1 - 0.05 / h_in, "\n".join(textwrap.wrap(caption, int(w_in * 15))[:6]),
             ha="left", va="top", fontsize=7)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(__doc__.strip() + "\n\nConfig flags are those of `launch.py train --help`.")
        return 0
    args, rest = _own_flags(argv)
    from training import cli

    config, fv = cli.parse(rest, prog="launch.py show-data")
    from data import inputs, sources
    from training import config as config_lib  # after parsing: bad flags answer fast

    config_lib.validate(config, 1)  # nothing is sharded here: any batch size will do
    if config.task.name != "classification":
        raise UserError(f"show-data draws a classifier's stream; task {config.task.name} is not "
                        "one (its run leaves samples.png instead)")
    data = inputs.open_data(config)
    images, weights, undone = examples(config, data, args.n)
    d, t = config.data, config.train
    caption = (f"{Path(fv['config'].config_filename).stem}: {d.name} {d.train_split}, the first "
               f"{args.n} examples of the training stream (seed {config.seed}), "
               f"{d.image_size}x{d.image_size} + pad {d.pad}; host augment: {d.augment or 'none'}; "
               f"device augment: {d.device_augment or 'none'}; mix: {t.mix}"
               + (f" (alpha {t.mix_alpha})" if t.mix != "none" else "")
               + f"; shown {'with normalisation undone, ' if undone else ''}clipped to [0, 1]")
    out = Path(args.out)
    draw(images, weights, sources.class_names(d.name, d.data_dir), caption, out)
    width, height = grid_size_px(args.n)
    print(f"wrote {out} ({width}x{height} px, {args.n} examples of {d.name} {d.train_split})")
    return 0
