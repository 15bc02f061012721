"""Metric learning: a network that maps images to an embedding where a class's examples lie
close together, for few-shot recognition and retrieval of classes never seen in training
(the Siamese networks of the notes; Koch et al. 2015).

Network: any registered classifier whose output layer is sized `task.embedding_dim` (its own
head, a linear map of its penultimate features, becomes the embedding head), L2-normalised.
Batch: `image` (B, H, W, C) float32, `label` (B,) class ids, prepared as for classification
(`data.image_size`, `data.pad`, `data.augment`, `data.device_augment`). Train batches should be
class-balanced P x K (`data.classes_per_batch` = P), so that every anchor has positives.

Loss (`task.loss`): triplet (default) or contrastive, on triplets picked by `task.mining`
(batch_hard, semi_hard, all), with `task.margin` (tasks/mining.py). Evaluation, on the eval
split (`data.eval_classes`: classes kept out of training with `data.train_classes`): `loss`
(mined within each eval batch), and from all eval embeddings at once (tasks/base.py's `gather`)
`recall@1`, `recall@5` and, for each K of `task.shots`, `way{N}_shot{K}` accuracy over
`task.episodes` seeded N-way K-shot episodes with the half-width of its 95% confidence interval
as `way{N}_shot{K}_ci95` (tasks/retrieval_metrics.py). `predict` writes `embeddings.npz`
(`embeddings` (n, D) float32, `files`).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from data import pipeline
from data.augment import hook as augment_hook
from tasks import base, mining, retrieval_metrics

DEFAULT_MARGIN = {"triplet": 0.2, "contrastive": 1.0}
RECALL_AT = (1, 5)


def l2_normalize(x: jax.Array) -> jax.Array:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def embed_batched(forward, model, images: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """(n, D) float32: `forward(model, batch)` over `images` (prepared HWC arrays), in batches."""
    return np.concatenate([np.asarray(forward(model, np.stack(images[i:i + batch_size])))
                           for i in range(0, len(images), batch_size)]).astype(np.float32)


class Embedding(base.Task):
    name = "embedding"
    model_output = "class_logits"
    default_metric, default_mode = "recall@1", "max"
    options = {
        "embedding_dim": 64,
        "mining": "batch_hard",  # batch_hard, semi_hard, all (tasks/mining.py)
        "margin": 0.0,           # 0: the loss's own (triplet 0.2, as FaceNet; contrastive 1.0)
        "ways": 5,               # N of the N-way K-shot episodes
        "shots": (1, 5),         # each K gives a metric way{N}_shot{K}
        "queries": 5,            # query examples per class and episode
        "episodes": 1000,
    }

    def __init__(self, c, info: base.DataInfo, *, host_augment=None, device_hook=None):
        super().__init__(c, info)
        t = c.task
        self.loss_name = t.loss or "triplet"
        self.margin = t.margin or DEFAULT_MARGIN.get(self.loss_name, 0.0)
        self._host_augment, self._device_hook = host_augment, device_hook

    @classmethod
    def from_config(cls, c, info: base.DataInfo) -> "Embedding":
        d = c.data
        host = None
        if d.augment and d.augment != "none":
            from data import augment  # imported only when used: it pulls in the op registry

            host = augment.host_pipeline(d.augment)
        device = augment_hook.build(d.device_augment, "none", 0.0, 0, 0.0)
        return cls(c, info, host_augment=host, device_hook=device)

    def check(self) -> None:
        t, d = self.c.task, self.c.data
        self.require(self.info.labels == "class" and (self.info.num_classes or 0) > 1,
                     f"task embedding needs class labels; dataset {self.info.name!r} has none")
        self.require(self.loss_name in mining.LOSSES, f"unknown task.loss {self.loss_name!r} "
                     f"for embedding; choose one of {', '.join(mining.LOSSES)}")
        self.require(t.mining in mining.MINING, f"unknown task.mining {t.mining!r}; choose one "
                     f"of {', '.join(mining.MINING)}")
        self.require(t.embedding_dim >= 1, "task.embedding_dim must be >= 1")
        self.require(self.margin > 0, f"task.margin must be > 0, got {t.margin}")
        self.require(self.c.train.mix == "none", "train.mix mixes labels, which an embedding "
                     "has none of; set --config.train.mix=none")
        eval_classes = len(d.get("eval_classes", ())) or self.info.num_classes
        self.require(2 <= t.ways <= eval_classes, f"task.ways={t.ways} needs that many eval "
                     f"classes; the eval split has {eval_classes} (lower task.ways)")
        self.require(len(t.shots) > 0 and min(t.shots) >= 1, "task.shots must name shot counts "
                     ">= 1, e.g. (1, 5)")
        self.require(t.queries >= 1 and t.episodes >= 1, "task.queries and task.episodes must "
                     "be >= 1")

    def metric_names(self) -> list[str]:
        episodic = [f"{self._episode_name(k)}{s}" for k in self.c.task.shots for s in ("", "_ci95")]
        return ["loss"] + [f"recall@{k}" for k in RECALL_AT] + episodic

    def _episode_name(self, shots: int) -> str:
        return f"way{self.c.task.ways}_shot{shots}"

    def model_kwargs(self) -> dict:
        return {"in_channels": self.info.in_channels, "num_classes": self.c.task.embedding_dim}

    # --- host -------------------------------------------------------------------------------
    def decode(self, record: dict) -> dict:
        return pipeline.decode(record, self.c.data.image_size, self.c.data.pad)

    def train_example(self, example: dict, rng: np.random.Generator) -> dict:
        if self._host_augment is None:
            return example
        return {**example, "image": self._host_augment(example["image"], rng)}

    # --- device -------------------------------------------------------------------------------
    def device_augment(self):
        if self._device_hook is None:
            return None
        hook = self._device_hook

        def augment(batch: dict, key: jax.Array) -> dict:
            return {**batch, "image": hook(batch["image"], batch["label"], key)[0]}

        return augment

    @staticmethod
    def embed(model, images: jax.Array) -> jax.Array:
        """(B, D) unit-length embeddings of prepared images."""
        return l2_normalize(model(images))

    def _mined(self, embeddings, labels, valid) -> dict:
        per_anchor, has = mining.per_anchor_loss(embeddings, labels, valid, loss=self.loss_name,
                                                 mining=self.c.task.mining, margin=self.margin)
        return {"embedding": embeddings, "per_anchor": per_anchor, "has": has}

    def loss(self, model, batch: dict, key: jax.Array):
        labels = batch["label"]
        out = self._mined(self.embed(model, batch["image"]), labels, jnp.ones_like(labels, bool))
        has = out["has"].astype(jnp.float32)
        return jnp.sum(out["per_anchor"] * has) / jnp.maximum(jnp.sum(has), 1.0), out

    def eval_outputs(self, model, batch: dict):
        return self._mined(self.embed(model, batch["image"]), batch["label"], batch["mask"])

    def metric_sums(self, outputs, batch: dict, mask: jax.Array) -> dict:
        weight = outputs["has"] * mask.astype(bool)
        return {"loss": jnp.sum(jnp.where(weight, outputs["per_anchor"], 0.0)),
                "count": jnp.sum(weight.astype(jnp.float32))}

    def gather(self, outputs, batch: dict) -> dict:
        return {"embedding": outputs["embedding"], "label": batch["label"]}

    def finalize(self, totals: dict) -> dict[str, float]:
        values = base.means(totals)
        if base.GATHERED not in totals:  # training's sums: the loss only
            return values
        rows = base.gathered(totals)
        embeddings, labels = rows["embedding"], rows["label"]
        recalls = retrieval_metrics.recall_at(embeddings, labels, RECALL_AT)
        values.update({f"recall@{k}": v for k, v in recalls.items()})
        t = self.c.task
        for shots in t.shots:
            accuracy, half_width = retrieval_metrics.few_shot_accuracy(
                embeddings, labels, ways=t.ways, shots=shots, queries=t.queries,
                count=t.episodes, seed=self.c.seed)
            values[self._episode_name(shots)] = accuracy
            values[f"{self._episode_name(shots)}_ci95"] = half_width
        return values

    # --- pictures and predictions ---------------------------------------------------------------
    def samples_figure(self, batch: dict, outputs, path: Path) -> None:
        """The eval examples beside the matrix of their embeddings' distances."""
        from matplotlib.figure import Figure

        images, emb = np.asarray(batch["image"]), np.asarray(outputs["embedding"], np.float64)
        names = self.info.class_names or tuple(str(k) for k in range(self.info.num_classes))
        labels = [names[int(k)] for k in batch["label"]]
        d = np.sqrt(retrieval_metrics.squared_distances(emb, emb))
        n = len(images)
        fig = Figure(figsize=(2 + 0.9 * n, 1.2 + 0.9 * n), dpi=100, layout="constrained")
        grid = fig.add_gridspec(n + 1, n + 1)
        for i in range(n):
            for where in (grid[0, i + 1], grid[i + 1, 0]):
                ax = fig.add_subplot(where)
                ax.imshow(images[i].squeeze(), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([]), ax.set_yticks([])
                ax.set_title(f"class {labels[i]}", fontsize=7)
        ax = fig.add_subplot(grid[1:, 1:])
        shown = ax.imshow(d, cmap="viridis", vmin=0, vmax=2)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{d[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if d[i, j] < 1 else "black")
        ax.set_xticks([]), ax.set_yticks([])
        fig.colorbar(shown, ax=ax, shrink=0.8, label="embedding distance (0 to 2)")
        fig.suptitle(f"embedding distances of {n} eval examples (dark: close)", fontsize=9)
        fig.savefig(path)

    def predict_input(self, image: np.ndarray) -> np.ndarray:
        """A user's image as the run's own preprocessing gives it to the network."""
        return self.decode({"image": image, "label": 0})["image"]

    def predict(self, model, paths: list[Path], out: Path) -> list[Path]:
        from data import image_files

        images = [self.predict_input(image_files.read_for_model(p, self.info.in_channels))
                  for p in paths]
        embeddings = embed_batched(nnx.jit(self.embed), model, images)
        np.savez(out / "embeddings.npz", embeddings=embeddings,
                 files=np.array([str(p) for p in paths]))
        return [out / "embeddings.npz"]
