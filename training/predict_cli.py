"""`launch.py predict --workdir RUN --input PATH --out DIR [--checkpoint best|latest|STEP]`:
the trained network of RUN applied to an image or a folder of images (for a signal task, a
.npy or .wav signal or a folder of them), with the run's own preprocessing; what is written is
the task's (classification: predictions.csv and logits.npy; segmentation: NAME.png class ids
and NAME_overlay.png; super-resolution, denoising and autoencoders: NAME.png restored).

Every input is read and checked before anything is written: an unreadable image, a channel
count the network cannot take, an image smaller than the network allows, a run with no
checkpoint or an --out that is a file is one line on stderr and exit status 2.
"""

from __future__ import annotations

from pathlib import Path

from errors import UserError


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(__doc__.strip())
        return 0
    from training import eval_cli

    args, rest = eval_cli.own_flags(argv, "input", "out")
    if rest:
        raise UserError(f"{rest[0].split('=')[0]}: predict takes no config overrides; it uses "
                        "the run's own")
    from data import image_files
    from training import run_dir

    out = image_files.output_dir(args.out)
    run = run_dir.open_trained(Path(args.workdir), args.checkpoint)
    c, task, step, model = run.config, run.task, run.step, run.model
    paths = task.input_paths(args.input)  # images, or signals for a signal task
    for path in paths:  # all of them readable and of a size the network takes, before writing
        task.check_input(model, task.read_input(path), path)
    out.mkdir(parents=True, exist_ok=True)
    written = task.predict(model, paths, out)
    print(f"{len(paths)} input(s) through {c.model.name} (checkpoint {args.checkpoint}, step "
          f"{step}): wrote {len(written)} file(s) to {out}")
    return 0
