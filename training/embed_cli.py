"""`launch.py embed --workdir RUN --input PATH --out FILE.npz [--checkpoint best|latest|STEP]`:
the embeddings of an image or a folder of images (with class sub-folders or without) under a
trained run, in `FILE.npz`: `embeddings` (n, D) float32, L2-normalised, and `files`, their paths.

An embedding run (task embedding) gives its learned embedding; a classification run gives its
network's penultimate features (`features(x)`, the layer its output layer reads), normalised
likewise, so that nearest neighbours by Euclidean distance are nearest by cosine similarity:
retrieval with CNN features and k-NN. Every input is read before anything is written; a run of
another task, a network without `features`, an unreadable image or an --out that is not a
.npz file is one line on stderr and exit status 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from errors import UserError


def image_paths(path: str | Path) -> list[Path]:
    """The image at `path`, or the images in the folder `path` and its class sub-folders."""
    from data import image_files

    path = Path(path)
    if not path.is_dir():
        return image_files.input_paths(path)
    found = sorted(p for p in [*path.glob("*"), *path.glob("*/*")]
                   if p.is_file() and p.suffix.lower() in image_files.EXTENSIONS)
    if not found:
        raise UserError(f"{path} holds no images ({', '.join(image_files.EXTENSIONS)}), directly "
                        "or in class sub-folders; give an image or a folder of images")
    return found


def open_run(workdir: Path, which: str):
    """(task, eval-mode model, checkpoint step, model name) of the run in `workdir`."""
    from training import run_dir

    run = run_dir.open_trained(workdir, which, needs=("embedding", "classification"),
                               command="embed")
    c, task, step, model = run.config, run.task, run.step, run.model
    if task.name == "classification" and not hasattr(model, "features"):
        raise UserError(f"model {c.model.name!r} has no features(x) (penultimate layer) to embed "
                        "with; use a network that has one, or train an embedding run")
    return task, model, step, c.model.name


def embedder(task):
    """`(model, images) -> (B, D)` unit-length embeddings, for the run's task."""
    from tasks.embedding import l2_normalize

    if task.name == "embedding":
        return task.embed
    return lambda model, images: l2_normalize(model.features(images).reshape(len(images), -1))


def embed_paths(task, model, paths: list[Path]) -> np.ndarray:
    """(n, D) float32 embeddings of the images at `paths`, each prepared as the run's data."""
    from flax import nnx

    from data import image_files
    from tasks.embedding import embed_batched

    images = [task.predict_input(image_files.read_for_model(p, task.info.in_channels))
              for p in paths]
    return embed_batched(nnx.jit(embedder(task)), model, images)


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(__doc__.strip())
        return 0
    from training import eval_cli

    args, rest = eval_cli.own_flags(argv, "input", "out")
    if rest:
        raise UserError(f"{rest[0].split('=')[0]}: embed takes no config overrides; it uses "
                        "the run's own")
    out = Path(args.out)
    if out.suffix != ".npz" or out.is_dir():
        raise UserError(f"--out {out}: give a .npz file to write the embeddings to")
    paths = image_paths(args.input)
    task, model, step, name = open_run(Path(args.workdir), args.checkpoint)
    embeddings = embed_paths(task, model, paths)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, embeddings=embeddings, files=np.array([str(p) for p in paths]))
    print(f"{len(paths)} image(s) through {name} (checkpoint {args.checkpoint}, step {step}): "
          f"{embeddings.shape[1]}-d embeddings in {out}")
    return 0
