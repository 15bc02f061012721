"""`launch.py probe --workdir RUN [--checkpoint best|latest|STEP] [--k=5]
[--config.data.FIELD=VALUE ...]`: a trained (or imported) network as a fixed feature extractor.

The network's `features(x)` (its penultimate representation, eval mode) is computed once per
split and cached in `RUN/features/` (keyed by checkpoint step and the data fields that decide
which images and how they are prepared); then a linear probe (multinomial logistic regression,
scikit-learn's L-BFGS on standardised features) and k-nearest neighbours (cosine distance) are
fitted on the train split's features and scored on the eval split's. Prints both accuracies and
writes `RUN/probe-<dataset>.json`.

`--config.data.` overrides choose the data (e.g. new classes and a few labelled examples per
class: `--config.data.train_classes='(5,6,7,8,9)' --config.data.train_per_class=10
--config.data.eval_classes='(5,6,7,8,9)'`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from errors import UserError, one_line

# The data fields that decide which examples a split holds and how they are prepared.
_CACHE_FIELDS = ("name", "train_split", "eval_split", "image_size", "pad", "train_classes",
                 "eval_classes", "train_per_class", "resize_shorter", "center_crop", "mean",
                 "std", "resize_interpolation")


def _key(c, step: int, split: str) -> str:
    fields = {k: c.data.get(k) for k in _CACHE_FIELDS}
    text = json.dumps({"step": step, "split": split, **fields}, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def split_features(model, dataset, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), labels (N,)) of every example of a decoded dataset, in order."""
    from flax import nnx

    if not hasattr(model, "features"):
        raise UserError(f"{type(model).__name__} has no features(x); probe a classifier")
    forward = nnx.jit(lambda m, x: m.features(x).reshape(x.shape[0], -1))
    feats, labels = [], []
    for start in range(0, len(dataset), batch_size):
        batch = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        feats.append(np.asarray(forward(model, np.stack([b["image"] for b in batch]))))
        labels.append(np.array([int(b["label"]) for b in batch]))
    return np.concatenate(feats), np.concatenate(labels)


def cached_features(workdir: Path, c, step: int, split: str, model, source, task):
    """The features of `source` (one split), from RUN/features/ or computed and cached there."""
    from data import pipeline

    path = workdir / "features" / f"{split}-{_key(c, step, split)}.npz"
    if path.is_file():
        with np.load(path) as f:
            return f["features"], f["labels"]
    dataset = pipeline.decoded(source, prepare=task.decode, cache=False)
    feats, labels = split_features(model, dataset, c.eval.batch_size)
    path.parent.mkdir(exist_ok=True)
    np.savez(path, features=feats, labels=labels)
    return feats, labels


def linear_probe(train_x, train_y, test_x, test_y) -> float:
    """Accuracy of multinomial logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(clf.fit(train_x, train_y).score(test_x, test_y))


def knn(train_x, train_y, test_x, test_y, k: int) -> float:
    """Accuracy of k-nearest neighbours (cosine distance, majority vote)."""
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=min(k, len(train_y)), metric="cosine")
    return float(clf.fit(train_x, train_y).score(test_x, test_y))


def probe(workdir: Path, c, which: str = "best", k: int = 5) -> dict:
    """{linear_probe, knn, ...} of the run in `workdir` on c's data (train fits, eval scores)."""
    from flax import nnx

    import tasks
    from data import inputs as inputs_lib
    from training import run_dir

    info = run_dir.saved_data_info(workdir)
    data = inputs_lib.open_data(c)
    task = tasks.create(c, info or data.info)
    defs, state, step = run_dir.restore(workdir, c, task, which)
    model = nnx.merge(defs.eval, state.params, state.batch_stats, state.rest)
    train = cached_features(workdir, c, step, "train", model, data.train_source, task)
    test = cached_features(workdir, c, step, "eval", model, data.eval_source, task)
    return {"step": step, "checkpoint": which, "dataset": c.data.name, "k": k,
            "train_examples": len(train[1]), "eval_examples": len(test[1]),
            "feature_dim": int(train[0].shape[1]),
            "linear_probe": linear_probe(*train, *test), "knn": knn(*train, *test, k)}


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(__doc__.strip())
        return 0
    from training import eval_cli, run_dir

    k_args = [a for a in argv if a.startswith("--k=")]
    argv = [a for a in argv if not a.startswith("--k=")]
    try:
        k = int(k_args[-1].split("=", 1)[1]) if k_args else 5
    except ValueError as err:
        raise UserError(f"--k: {one_line(err)}; give a positive integer") from None
    args, rest = eval_cli.own_flags(argv)
    workdir = Path(args.workdir)
    c = eval_cli.apply_overrides(run_dir.load_config(workdir), rest, allowed=("data", "eval"))
    result = probe(workdir, c, args.checkpoint, k)
    out = workdir / f"probe-{eval_cli.dataset_tag(c.data.name)}.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"{c.data.name}: {result['train_examples']} train / {result['eval_examples']} eval "
          f"examples, {result['feature_dim']}-d features of step {result['step']}: linear probe "
          f"{result['linear_probe']:.4f}, {k}-NN {result['knn']:.4f}; wrote {out}")
    return 0
