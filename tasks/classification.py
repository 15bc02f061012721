"""Image classification: softmax cross-entropy on class logits, accuracy and top-5.

Batch: `image` (B, H, W, C) float32, `label` (B,) int32 class ids. Examples are resized to
`data.image_size` and padded by `data.pad` (data/pipeline.py:decode); host ops (`data.augment`)
run in Grain, device ops (`data.device_augment`) and MixUp/CutMix (`train.mix`) in the step.
Auxiliary classifiers (GoogLeNet) are found as the logits a model sows under `aux_logits` and
add `train.aux_loss_weight` times their loss. Metrics: loss, accuracy, top5 (more than 5
classes). `predict` writes `predictions.csv` and `logits.npy` in the same row order.
"""

from __future__ import annotations

import csv
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from data import pipeline, preprocess
from data.augment import hook as augment_hook
from tasks import attacks, base, pictures, tta


def cross_entropy(logits: jax.Array, labels: jax.Array, num_classes: int,
                  label_smoothing: float) -> jax.Array:
    """Per-example cross-entropy; `labels` are class ids, smoothed here, or probability vectors
    (mixed batches), which arrive already smoothed."""
    logits = logits.astype(jnp.float32)  # the loss in float32 whatever the compute dtype
    if labels.ndim == 1:
        labels = jax.nn.one_hot(labels, num_classes)
        labels = optax.smooth_labels(labels, label_smoothing) if label_smoothing else labels
    return optax.softmax_cross_entropy(logits, labels)


def classification_sums(logits: jax.Array, labels: jax.Array, per_example_loss: jax.Array,
                        mask: jax.Array) -> dict[str, jax.Array]:
    """Summed loss, correct top-1 (and top-5 when there are more than 5 classes), and count."""
    mask = mask.astype(jnp.float32)
    top1 = jnp.argmax(logits, axis=-1) == labels
    sums = {"loss": jnp.sum(per_example_loss * mask), "accuracy": jnp.sum(top1 * mask),
            "count": jnp.sum(mask)}
    if logits.shape[-1] > 5:
        _, top5_idx = jax.lax.top_k(logits, 5)
        in_top5 = jnp.any(top5_idx == labels[:, None], axis=-1)
        sums["top5"] = jnp.sum(in_top5 * mask)
    return sums


def _aux_logits(sown: nnx.State) -> list[jax.Array]:
    """Logits the model sowed as `aux_logits` (GoogLeNet's auxiliary heads), if any."""
    return [leaf for path, leaf in jax.tree.leaves_with_path(sown)
            if any(getattr(k, "key", None) == "aux_logits" for k in path)]


class Classification(base.Task):
    name = "classification"
    model_output = "class_logits"
    default_metric, default_mode = "accuracy", "max"

    def __init__(self, c, info: base.DataInfo, *, host_augment=None, device_hook=None):
        super().__init__(c, info)
        self.num_classes = info.num_classes
        self.label_smoothing = c.train.label_smoothing
        self.aux_loss_weight = c.train.aux_loss_weight
        self.adversarial = c.train.get("adversarial", "none")
        self._host_augment = host_augment
        self._device_hook = device_hook

    @classmethod
    def from_config(cls, c, info: base.DataInfo) -> "Classification":
        d, t = c.data, c.train
        host = None
        if d.augment and d.augment != "none":
            from data import augment  # imported only when used: it pulls in the op registry

            host = augment.host_pipeline(d.augment)
        device = augment_hook.build(d.device_augment, t.mix, t.mix_alpha, info.num_classes,
                                    t.label_smoothing)
        return cls(c, info, host_augment=host, device_hook=device)

    def check(self) -> None:
        self.require(self.info.labels == "class" and self.num_classes > 1,
                     f"task classification needs labelled data; dataset {self.info.name!r} has "
                     "no class per image (use --config.task.name=segmentation for masks, or an "
                     "image-to-image task such as autoencoder for unlabelled images)")

    def metric_names(self) -> list[str]:
        return ["loss", "accuracy"] + (["top5"] if self.num_classes > 5 else [])

    # --- host -------------------------------------------------------------------------------
    def decode(self, record: dict) -> dict:
        if self.c.data.get("resize_shorter", 0):  # imported weights' own transform
            return preprocess.decode(record, self.c.data)
        return pipeline.decode(record, self.c.data.image_size, self.c.data.pad)

    def train_example(self, example: dict, rng: np.random.Generator) -> dict:
        if self._host_augment is None:
            return example
        return {**example, "image": self._host_augment(example["image"], rng)}

    def prepares_train_examples(self) -> bool:
        return self._host_augment is not None

    # --- device -------------------------------------------------------------------------------
    def device_augment(self):
        if self._device_hook is None:
            return None
        hook = self._device_hook

        def augment(batch: dict, key: jax.Array) -> dict:
            images, labels = hook(batch["image"], batch["label"], key)
            return {**batch, "image": images, "label": labels}

        return augment

    def loss(self, model, batch: dict, key: jax.Array):
        labels = batch["label"]
        images = batch["image"]
        if self.adversarial != "none":  # adversarial training: the batch's attacks instead
            images = attacks.training_attack(model, images, lambda z: jnp.sum(cross_entropy(
                z, labels, self.num_classes, 0.0)), self.c.train, key)
        logits, sown = nnx.capture(model, nnx.Intermediate)(images)
        per_example = cross_entropy(logits, labels, self.num_classes, self.label_smoothing)
        loss = jnp.mean(per_example)
        for aux in _aux_logits(sown):
            loss += self.aux_loss_weight * jnp.mean(
                cross_entropy(aux, labels, self.num_classes, self.label_smoothing))
        return loss, {"logits": logits, "per_example": per_example}

    def eval_outputs(self, model, batch: dict):
        tta_mode = (self.c.get("eval") or {}).get("tta", "none")  # eval.tta (tasks/tta.py)
        logits = tta.logits(model, batch["image"], tta_mode)
        return {"logits": logits,
                "per_example": cross_entropy(logits, batch["label"], self.num_classes, 0.0)}

    def metric_sums(self, outputs, batch: dict, mask: jax.Array) -> dict:
        labels = batch["label"]
        hard = labels if labels.ndim == 1 else jnp.argmax(labels, axis=-1)
        return classification_sums(outputs["logits"], hard, outputs["per_example"], mask)

    # --- pictures and predictions ---------------------------------------------------------------
    def samples_figure(self, batch: dict, outputs, path: Path) -> None:
        predicted = np.argmax(np.asarray(outputs["logits"]), axis=-1)
        names = self.info.class_names or tuple(str(k) for k in range(self.num_classes))
        titles = [f"true {names[t]}\npred {names[p]}" for t, p in zip(batch["label"], predicted)]
        wrong = [int(t) != int(p) for t, p in zip(batch["label"], predicted)]
        pictures.image_grid([np.asarray(batch["image"])], titles, path, marked=wrong,
                            title="eval examples: true and predicted class (red: mistaken)")

    def predict_input(self, image: np.ndarray) -> np.ndarray:
        """A user's image as the run's own preprocessing gives it to the network."""
        return self.decode({"image": image, "label": 0})["image"]

    def predict(self, model, paths: list[Path], out: Path) -> list[Path]:
        images = [self.predict_input(self.read_input(p)) for p in paths]
        forward = nnx.jit(lambda m, x: m(x))
        logits = np.concatenate([np.asarray(forward(model, np.stack(images[i:i + 64])))
                                 for i in range(0, len(images), 64)])
        probs = np.asarray(jax.nn.softmax(logits, axis=-1))
        names = self.info.class_names or tuple(str(k) for k in range(self.num_classes))
        k = min(5, probs.shape[-1])
        with open(out / "predictions.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "class", "probability"]
                            + [f"{kind}{i}" for i in range(1, k + 1) for kind in ("top", "p")])
            for path, p in zip(paths, probs):
                top = np.argsort(-p)[:k]
                writer.writerow([path.name, names[top[0]], f"{p[top[0]]:.6f}"]
                                + [x for t in top for x in (names[t], f"{p[t]:.6f}")])
        np.save(out / "logits.npy", logits.astype(np.float32))
        return [out / "predictions.csv", out / "logits.npy"]
