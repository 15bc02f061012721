"""Fréchet Inception Distance (Heusel et al. 2017) with a convjax classifier's features.

FID is the Fréchet distance between two Gaussians fitted to the features of real and generated
images: |mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)). The paper's features are
Inception-v3's pool3; on small data (the digits) an ImageNet network is the wrong observer, so
the features here are a classifier's own penultimate activations (the input of its last dense
layer), trained by convjax on the same data. Values are therefore comparable between runs with
the same feature network only, never with published Inception FIDs.

The feature network is `task.feature_run=RUN_DIR` (a classification run: its config, data info
and latest checkpoint are read), or by default a LeNet-5 trained here once on the run's own
train split at 32x32 and cached in the data directory (`convjax_fid/`), so FID works from a
fresh clone. Images of another size are resized to the classifier's before it sees them.
That training is a fixed recipe of its own (Adam 1e-3, batch 64, `task.feature_steps` steps),
written out here rather than through the trainer because tasks must not depend on training/.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from flax import nnx

from errors import UserError, one_line

CACHE = "convjax_fid"
LENET_SIZE = 32  # LeNet-5's input side: the default classifier sees every dataset at 32x32


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of (N, F) features, in float64; covariance with N - 1 as np.cov."""
    x = np.asarray(features, np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """|mu1 - mu2|^2 + Tr(cov1 + cov2 - 2 sqrt(cov1 cov2)), as in Heusel et al.'s reference code:
    a product that is singular (fewer samples than features) gets 1e-6 on the diagonal, and the
    tiny imaginary part sqrtm returns for a real PSD product is dropped."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    cov1, cov2 = np.atleast_2d(cov1), np.atleast_2d(cov2)
    root = scipy.linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(root).all():
        offset = np.eye(len(cov1)) * 1e-6
        root = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    root = root.real if np.iscomplexobj(root) else root
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(root), 0.0))


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two sets of (N, F) features."""
    return frechet_distance(*gaussian(real), *gaussian(fake))


# --- the feature network ----------------------------------------------------------------------

@dataclasses.dataclass
class FeatureNet:
    """A trained classifier, eval mode, with how it reads images."""

    graphdef: nnx.GraphDef
    state: nnx.State
    image_size: int
    pad: int
    in_channels: int
    num_classes: int
    source: str          # what it is, for the run's opening lines

    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(B, S, S, C) images in [0, 1] -> (penultimate features (B, F), logits (B, K)).
        Images of another side are resized (antialiased bilinear) to the classifier's."""
        size = self.image_size
        if images.shape[1:3] != (size, size):
            images = jax.image.resize(images, (images.shape[0], size, size, images.shape[3]),
                                      "linear", antialias=True)
        if self.pad:
            p = self.pad
            images = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
        model = nnx.merge(self.graphdef, self.state)
        logits, sown = nnx.capture(model, nnx.Intermediate)(images)
        taps = [leaf for path, leaf in jax.tree.leaves_with_path(sown)
                if any(getattr(k, "key", None) == _TAP for k in path)]
        features = taps[0] if taps else logits  # a net without a dense layer: its logits
        return features.reshape(features.shape[0], -1), logits


_TAP = "fid_features"


class _Tap(nnx.Module):
    """Wraps a classifier's last dense layer and sows its input: the penultimate features."""

    def __init__(self, layer: nnx.Module):
        self.layer = layer

    def __call__(self, x):
        self.sow(nnx.Intermediate, _TAP, x)
        return self.layer(x)


def _tap_last_dense(model: nnx.Module, example: np.ndarray) -> None:
    """Finds the dense layer called last on `example` (the output layer: attribute order says
    nothing about call order) by one eager probe, and wraps it in a `_Tap`, in place."""
    dense = {path: m for path, m in nnx.iter_modules(model)
             if isinstance(m, nnx.Linear) and path}
    calls: list = []
    for path, layer in dense.items():
        _set(model, path, _Probe(layer, calls, path))
    try:
        model(jnp.asarray(example[None]))
    finally:
        for path, layer in dense.items():
            _set(model, path, layer)
    if calls:
        _set(model, calls[-1], _Tap(dense[calls[-1]]))


class _Probe(nnx.Module):
    """Records that its layer was called (eagerly, once)."""

    def __init__(self, layer, calls: list, path):
        self.layer, self.calls, self.path = layer, calls, path

    def __call__(self, x):
        self.calls.append(self.path)
        return self.layer(x)


def _set(model, path: tuple, value) -> None:
    parent = model
    for key in path[:-1]:
        parent = parent[key] if isinstance(key, int) else getattr(parent, key)
    if isinstance(path[-1], int):
        parent[path[-1]] = value
    else:
        setattr(parent, path[-1], value)


def _build(name: str, options: dict, num_classes: int, in_channels: int, params: dict,
           batch_stats: dict, image_size: int, pad: int, source: str) -> FeatureNet:
    import models

    model = models.create(name, num_classes=num_classes, in_channels=in_channels, **options)
    _, param_state, stat_state, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    nnx.replace_by_pure_dict(param_state, params)
    nnx.replace_by_pure_dict(stat_state, batch_stats)
    nnx.update(model, param_state, stat_state)
    model.eval()
    _tap_last_dense(model, np.zeros((image_size + 2 * pad,) * 2 + (in_channels,), np.float32))
    graphdef, state = nnx.split(model)
    return FeatureNet(graphdef, state, image_size, pad, in_channels, num_classes, source)


def check_feature_run(run: str) -> None:
    """A UserError unless `run` looks like a classification run directory with a checkpoint."""
    path = Path(run)
    config = path / "config.json"
    if not config.is_file():
        raise UserError(f"task.feature_run {run} is not a convjax run directory (no config.json); "
                        "give a classification run, e.g. one of experiments/lenet5_digits.py")
    task = json.loads(config.read_text()).get("task", {}).get("name", "classification")
    if task != "classification":
        raise UserError(f"task.feature_run {run} is a {task} run; FID needs a classification run")
    if not _checkpoint_steps(path):
        raise UserError(f"task.feature_run {run} has no checkpoint; train it first")


def _checkpoint_steps(run: Path) -> list[int]:
    directory = run / "checkpoints"
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def load_run(run: str) -> FeatureNet:
    """The classifier of a classification run directory, from its latest checkpoint."""
    import orbax.checkpoint as ocp

    check_feature_run(run)
    path = Path(run).absolute()
    config = json.loads((path / "config.json").read_text())
    info = json.loads((path / "data_info.json").read_text())
    step = _checkpoint_steps(path)[-1]
    try:
        state = ocp.StandardCheckpointer().restore(path / "checkpoints" / str(step) / "state")
    except Exception as err:  # Orbax/TensorStore raise many types for an unreadable checkpoint
        raise UserError(f"cannot read the checkpoint of task.feature_run {run}: "
                        f"{one_line(err)[:160]}") from None
    model = dict(config["model"])
    name = model.pop("name")
    return _build(name, model, info["num_classes"], info["in_channels"], state["params"],
                  state["batch_stats"], config["data"]["image_size"], config["data"]["pad"],
                  f"classifier of {run} (step {step})")


# --- the default: a LeNet-5 trained once on the run's data, cached --------------------------

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")


def cache_path(c) -> Path:
    from data import sources

    d = c.data
    name = f"{_slug(d.name)}_{_slug(d.train_split)}_lenet5_{c.task.feature_steps}steps_seed{c.seed}"
    return Path(sources.resolve_data_dir(d.data_dir)) / CACHE / name


def default_net(c, info) -> FeatureNet:
    """The cached LeNet-5 of this data, trained now if it is not there yet."""
    from safetensors.numpy import load_file, save_file

    if info.labels != "class" or not info.num_classes:
        raise UserError(f"dataset {info.name!r} has no class labels to train FID's feature "
                        "network on; give one with --config.task.feature_run=RUN_DIR")
    path = cache_path(c)
    weights, meta = path / "weights.safetensors", path / "classifier.json"
    if not weights.is_file():
        params, batch_stats, accuracy = train_lenet(c, info)
        path.mkdir(parents=True, exist_ok=True)
        save_file({**_flat(params, "params/"), **_flat(batch_stats, "batch_stats/")},
                  str(weights))
        meta.write_text(json.dumps({"model": "lenet5", "eval_accuracy": accuracy,
                                    "steps": c.task.feature_steps}, indent=2) + "\n")
        print(f"FID features: trained LeNet-5 on {c.data.name} ({c.task.feature_steps} steps, "
              f"eval accuracy {accuracy:.4f}), cached in {path}", file=sys.stderr)
    flat = load_file(str(weights))
    accuracy = json.loads(meta.read_text())["eval_accuracy"]
    return _build("lenet5", {}, info.num_classes, info.in_channels,
                  _nested(flat, "params/"), _nested(flat, "batch_stats/"), LENET_SIZE, 0,
                  f"LeNet-5 cached in {path} (eval accuracy {accuracy:.4f})")


def _flat(tree: dict, prefix: str) -> dict[str, np.ndarray]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = np.asarray(value)
    return out


def _nested(flat: dict, prefix: str) -> dict:
    out: dict = {}
    for key, value in flat.items():
        if key.startswith(prefix):
            *parents, leaf = key[len(prefix):].split("/")
            node = out
            for p in parents:
                node = node.setdefault(int(p) if p.isdigit() else p, {})
            node[int(leaf) if leaf.isdigit() else leaf] = value
    return out


def train_lenet(c, info) -> tuple[dict, dict, float]:
    """(params, batch_stats as pure dicts, eval accuracy) of a LeNet-5 trained on c's data."""
    import optax

    import models
    from data import inputs, pipeline

    data = inputs.open_data(c)
    size, pad, seed = LENET_SIZE, 0, c.seed
    small = len(data.train_source) <= 20_000  # decode a small set once
    train_ds = pipeline.decoded(data.train_source, cache=small, image_size=size, pad=pad)
    batches = iter(pipeline.train_dataset(train_ds, batch_size=64, seed=seed))
    model = models.create("lenet5", num_classes=info.num_classes, in_channels=info.in_channels,
                          seed=seed)
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, images, labels):
        def loss(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(images), labels).mean()

        optimizer.update(model, nnx.grad(loss)(model))

    for _ in range(c.task.feature_steps):
        batch = next(batches)
        step(model, optimizer, batch["image"], batch["label"])
    model.eval()
    predict = nnx.jit(lambda m, x: jnp.argmax(m(x), -1))
    eval_ds = pipeline.decoded(data.eval_source, cache=False, image_size=size, pad=pad)
    correct = 0
    for start in range(0, len(eval_ds), 256):
        chunk = [eval_ds[i] for i in range(start, min(start + 256, len(eval_ds)))]
        images = np.stack([e["image"] for e in chunk])
        labels = np.array([e["label"] for e in chunk])
        padded = np.concatenate([images, np.zeros((256 - len(chunk), *images.shape[1:]),
                                                  images.dtype)])  # one compiled shape
        correct += int(np.sum(np.asarray(predict(model, padded))[:len(chunk)] == labels))
    _, params, batch_stats, _ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    return (nnx.to_pure_dict(params), nnx.to_pure_dict(batch_stats),
            correct / max(len(eval_ds), 1))


def feature_net(c, info) -> FeatureNet:
    """`task.feature_run`'s classifier, else the cached default."""
    return load_run(c.task.feature_run) if c.task.feature_run else default_net(c, info)
