"""`launch.py retrieve --workdir RUN --index DIR --query IMAGE [--k 5] --out PNG
[--checkpoint best|latest|STEP]`: the query image beside its k nearest images of the folder DIR
(images directly in it, or in class sub-folders), by Euclidean distance between the run's
embeddings (`launch.py embed`: an embedding run's, or a classifier's penultimate features),
each labelled with its class folder (or file name) and distance.

The query itself, if it is in DIR, is not its own neighbour. A --k the index cannot fill, an
--out that is not a .png, an unreadable image or a run that gives no embedding is one line on
stderr and exit status 2, with nothing written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from errors import UserError, one_line


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    for name in ("workdir", "index", "query", "out"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--checkpoint", default="best")
    try:
        args, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError as err:
        raise UserError(f"{one_line(err)}; see --help") from None
    if rest:
        raise UserError(f"unknown argument {rest[0]!r}; see --help")
    if args.k < 1:
        raise UserError(f"--k {args.k}: give at least 1 neighbour")
    if Path(args.out).suffix.lower() != ".png":
        raise UserError(f"--out {args.out}: give a .png file for the picture")
    return args


def label_of(path: Path, index: Path) -> str:
    """The class sub-folder's name, or the file's stem for an image directly in the index."""
    parts = path.resolve().relative_to(index.resolve()).parts
    return parts[0] if len(parts) > 1 else path.stem


def draw(query: np.ndarray, query_label: str, neighbours: list[np.ndarray], labels: list[str],
         distances: np.ndarray, path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    k = len(neighbours)
    fig = Figure(figsize=(1.7 * (k + 1) + 0.3, 2.4), dpi=100, layout="constrained")
    images = [query, *neighbours]
    names = [f"query\n{query_label}"] + [f"{i + 1}: {label}\nd = {d:.3f}"
                                          for i, (label, d) in enumerate(zip(labels, distances))]
    for i, (image, name) in enumerate(zip(images, names)):
        ax = fig.add_subplot(1, k + 1, i + 1)
        grey = image.shape[-1] == 1
        ax.imshow(image[..., 0] if grey else image, cmap="gray" if grey else None,
                  interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(name, fontsize=8, color="black" if i else "tab:blue")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path)


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(__doc__.strip())
        return 0
    args = parse(argv)
    from data import image_files
    from tasks import retrieval_metrics
    from training import embed_cli

    index, query = Path(args.index), Path(args.query)
    if not index.is_dir():
        raise UserError(f"--index {index} is not a folder; give a folder of images")
    if not query.is_file():
        raise UserError(f"--query {query} is not a file; give an image")
    paths = [p for p in embed_cli.image_paths(index) if p.resolve() != query.resolve()]
    if len(paths) < args.k:
        raise UserError(f"--index {index} has {len(paths)} image(s) besides the query, fewer "
                        f"than --k {args.k}; lower --k or add images")
    task, model, step, name = embed_cli.open_run(Path(args.workdir), args.checkpoint)
    embeddings = embed_cli.embed_paths(task, model, [query, *paths])
    nearest = retrieval_metrics.nearest(embeddings[1:], embeddings[:1], args.k)[0]
    distances = np.sqrt(retrieval_metrics.squared_distances(embeddings[:1],
                                                            embeddings[1:][nearest]))[0]
    shown = [image_files.read(paths[i]) for i in nearest]
    query_label = (label_of(query, index) if query.resolve().is_relative_to(index.resolve())
                   else query.name)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    draw(image_files.read(query), query_label, shown, [label_of(paths[i], index) for i in nearest],
         distances, out, f"{args.k} nearest of {len(paths)} images in {index.name}/ by {name} "
                         f"embeddings (step {step})")
    print(f"{query.name}: {args.k} nearest of {len(paths)} in {index}: "
          + ", ".join(f"{label_of(paths[i], index)} ({d:.3f})" for i, d in zip(nearest, distances))
          + f"; wrote {out}")
    return 0
