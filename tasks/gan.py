"""Generative adversarial networks (Goodfellow et al. 2014) with DCGAN's players (models/dcgan.py).

Batch: `image` (B, S, S, C) in [-1, 1] (the generator's tanh range), `label` (B,) class ids
(0 for unlabelled images), and in evaluation `index`, the example's index in the eval split.

Two players, each with its own parameters, BatchNorm statistics and optimizer state (the
config's optimizer, one instance per player: Adam 2e-4, beta1 0.5 in the experiments, as the
paper), in one state (`GANState`), one checkpoint and one compiled step. A step is PyTorch's
DCGAN iteration: the generator runs once on z ~ N(0, I) drawn from (seed, step); the
discriminator takes a step on a real batch and that fake batch (separate batches, so its
BatchNorm sees each alone); then the generator takes a step against the updated discriminator
on the same fakes, its gradient pulled back through the one forward pass (jax.vjp).

Losses (`task.loss`): `non_saturating` (default: G maximises log D(G(z))), `minimax` (the
paper's log(1 - D(G(z))), which saturates early in training) and `hinge` (Lim and Ye 2017).
`task.conditional`: the class-conditional GAN of Mirza and Osindero 2014 (both players see the
label; evaluation generates each eval example's own class).

Evaluation generates one image per eval example from z drawn from (seed, example index), the
same at every evaluation, and reports `fid` (tasks/fid.py: with a convjax classifier's
features), `coverage` (the fraction of classes whose share of the generated images, as the
classifier labels them, is at least half their share of the real eval images) and, when
conditional, `label_accuracy` (generated images the classifier assigns to the class asked
for). Pictures: `samples/step_N.png` (a fixed 8x8 grid of z, at every evaluation),
`samples.png` (eval examples beside their generated twins) and `interpolation.png` (straight
lines in z between pairs of points, at the end). `launch.py sample` writes generated images.
"""

from __future__ import annotations

from pathlib import Path

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from data import pipeline
from tasks import base, fid, pictures

LOSSES = ("non_saturating", "minimax", "hinge")
EVAL_STREAM, GRID_STREAM, LERP_STREAM = 1, 2, 3   # fold_in tags of the fixed noise draws


@flax.struct.dataclass
class PairDefs:
    """The pair's graph definitions, train and eval mode (the loop's `defs.train/.eval`)."""

    train: nnx.GraphDef = flax.struct.field(pytree_node=False)
    eval: nnx.GraphDef = flax.struct.field(pytree_node=False)


@flax.struct.dataclass
class GANState:
    """The loop's state fields, with both players inside each: params, batch_stats and rest
    have `generator` and `discriminator` subtrees, opt_state is {player: optimizer state}."""

    step: jax.Array
    params: nnx.State
    batch_stats: nnx.State
    rest: nnx.State
    opt_state: dict
    root_key: jax.Array  # raw uint32 key data, as in training/state.py


def discriminator_loss(real_logits, fake_logits, kind: str) -> jax.Array:
    if kind == "hinge":
        return jnp.mean(nnx.relu(1 - real_logits)) + jnp.mean(nnx.relu(1 + fake_logits))
    # -log sigmoid(real) - log(1 - sigmoid(fake)), written with softplus for stability
    return jnp.mean(nnx.softplus(-real_logits)) + jnp.mean(nnx.softplus(fake_logits))


def generator_loss(fake_logits, kind: str) -> jax.Array:
    if kind == "minimax":      # minimise log(1 - D(G(z)))
        return -jnp.mean(nnx.softplus(fake_logits))
    if kind == "hinge":
        return -jnp.mean(fake_logits)
    return jnp.mean(nnx.softplus(-fake_logits))  # non-saturating: minimise -log D(G(z))


def coverage(real_classes: np.ndarray, fake_classes: np.ndarray, num_classes: int) -> float:
    """Fraction of the classes present among the real images whose share among the generated
    ones is at least half their real share: a generator that drops a mode loses its class."""
    real = np.bincount(real_classes, minlength=num_classes) / max(len(real_classes), 1)
    fake = np.bincount(fake_classes, minlength=num_classes) / max(len(fake_classes), 1)
    present = real > 0
    return float(np.mean(fake[present] >= 0.5 * real[present]))


def to_unit(images) -> np.ndarray:
    """[-1, 1] -> [0, 1]."""
    return np.clip((np.asarray(images, np.float32) + 1) / 2, 0, 1)


_generate = nnx.jit(lambda generator, z, labels: generator(z, labels))
CHUNK = 64  # images generated per call


def mosaic(images: np.ndarray, per_row: int) -> np.ndarray:
    """(N, H, W, C) in [0, 1] -> one (rows * (H + 1) - 1, per_row * (W + 1) - 1, C) image with
    1-pixel grey gaps; one imshow draws in a moment what 64 subplots take seconds to."""
    n, h, w, ch = images.shape
    rows = -(-n // per_row)
    canvas = np.full((rows * (h + 1) - 1, per_row * (w + 1) - 1, ch), 0.5, np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, per_row)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = image
    return canvas


def save_mosaic(images: np.ndarray, per_row: int, path: Path, title: str,
                column_names: list[str] | None = None) -> None:
    from matplotlib.figure import Figure

    canvas = mosaic(images, per_row)
    h, w = canvas.shape[:2]
    fig = Figure(figsize=(max(4.0, w / 28), h / 28 + 0.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    grey = canvas.shape[-1] == 1
    ax.imshow(canvas[..., 0] if grey else canvas, cmap="gray" if grey else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_yticks([])
    if column_names:
        step = images.shape[2] + 1
        ax.set_xticks([c * step + (step - 1) / 2 for c in range(per_row)],
                      column_names[:per_row], fontsize=7)
        ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
    ax.set_title(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


class GAN(base.Task):
    name = "gan"
    model_output = "gan"
    default_metric, default_mode = "fid", "min"
    options = {"conditional": False,   # class-conditional (Mirza and Osindero 2014)
               "feature_run": "",      # FID's classifier: a classification run directory;
                                       # "" = a LeNet-5 trained once on this data, cached
               "feature_steps": 1000}  # that LeNet-5's training steps

    def __init__(self, c, info: base.DataInfo):
        super().__init__(c, info)
        self.opt = {k: c.task.get(k, v) for k, v in self.options.items()}
        self.loss_name = c.task.loss or "non_saturating"
        self.conditional = bool(self.opt["conditional"])
        self.num_classes = info.num_classes or 0
        self._features: fid.FeatureNet | None = None

    def check(self) -> None:
        self.require(self.loss_name in LOSSES, f"unknown task.loss {self.loss_name!r} for a GAN; "
                     f"choose one of {', '.join(LOSSES)}")
        self.require(not self.conditional or (self.info.labels == "class" and self.num_classes),
                     f"task.conditional needs class labels; dataset {self.info.name!r} has none")
        self.require(self.c.data.pad == 0, "data.pad must be 0 for a GAN: the generator makes "
                     "data.image_size images")
        if self.opt["feature_run"]:
            fid.check_feature_run(self.opt["feature_run"])
        else:
            self.require(self.info.labels == "class" and self.num_classes > 1,
                         f"dataset {self.info.name!r} has no class labels to train FID's feature "
                         "network on; give one with --config.task.feature_run=RUN_DIR")
        self.require(int(self.opt["feature_steps"]) > 0, "task.feature_steps must be positive")
        # The task's own train step (`make_steps`) computes in float32 and applies every update:
        # the generic step's precision policy and non-finite skipping are not part of it.
        dtype = self.c.train.get("dtype", "float32")
        self.require(dtype == "float32", f"train.dtype={dtype!r}: the GAN task trains in "
                     "float32 only; use --config.train.dtype=float32")
        self.require(not self.c.train.get("skip_nonfinite", False),
                     "train.skip_nonfinite is not applied by the GAN task's own step; turn it "
                     "off (a non-finite GAN update stops the run, exit 3)")

    def metric_names(self) -> list[str]:
        return ["fid", "coverage"] + (["label_accuracy"] if self.conditional else [])

    def model_kwargs(self) -> dict:
        return {"in_channels": self.info.in_channels, "image_size": self.c.data.image_size,
                "num_classes": self.num_classes or None, "conditional": self.conditional}

    def check_model(self, model_name: str, model) -> None:
        self.z_dim = model.z_dim

    # --- host -------------------------------------------------------------------------------
    def decode(self, record: dict) -> dict:
        example = pipeline.decode({"image": record["image"], "label": record.get("label", 0)},
                                  self.c.data.image_size)
        return {"image": example["image"] * 2 - 1, "label": example["label"]}

    def eval_example(self, example: dict, index: int) -> dict:
        return {**example, "index": np.int32(index)}

    # --- state and steps ----------------------------------------------------------------------
    def create_state(self, model, tx, seed: int):
        model.eval()
        eval_def, *_ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
        model.train()
        train_def, params, batch_stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
        opt_state = {player: tx.init(params[player]) for player in ("generator", "discriminator")}
        state = GANState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                         rest=rest, opt_state=opt_state,
                         root_key=jax.random.key_data(jax.random.key(seed)))
        return PairDefs(train_def, eval_def), state

    def make_steps(self, defs: PairDefs, tx):
        return self.train_step(defs, tx), self.eval_step(defs)

    def train_step(self, defs: PairDefs, tx):
        kind, conditional = self.loss_name, self.conditional

        def step(state: GANState, batch: dict):
            real = batch["image"]
            labels = batch["label"] if conditional else None
            key = jax.random.fold_in(jax.random.wrap_key_data(state.root_key), state.step)
            pair = nnx.merge(defs.train, state.params, state.batch_stats, state.rest)
            g_def, g_params, g_rest = nnx.split(pair.generator, nnx.Param, ...)
            d_def, d_params, d_rest = nnx.split(pair.discriminator, nnx.Param, ...)
            z = jax.random.normal(key, (real.shape[0], pair.z_dim))

            # Each player is merged afresh (copy=True) inside each differentiated function: nnx
            # variables may only be updated (BatchNorm statistics) at the trace level they
            # were made in.
            def generate(params, rest):
                generator = nnx.merge(g_def, params, rest, copy=True)
                fake = generator(z, labels)
                return fake, nnx.split(generator, nnx.Param, ...)[2]

            fake, pull_back, g_rest = jax.vjp(generate, g_params, g_rest, has_aux=True)

            def d_objective(params, rest, fake):
                discriminator = nnx.merge(d_def, params, rest, copy=True)
                real_logits, fake_logits = discriminator(real, labels), discriminator(fake, labels)
                new_rest = nnx.split(discriminator, nnx.Param, ...)[2]
                return (discriminator_loss(real_logits, fake_logits, kind),
                        (new_rest, real_logits, fake_logits))

            (d_loss, (d_rest, real_logits, fake_logits)), d_grads = jax.value_and_grad(
                d_objective, has_aux=True)(d_params, d_rest, jax.lax.stop_gradient(fake))
            d_updates, d_opt = tx.update(d_grads, state.opt_state["discriminator"], d_params)
            d_params = optax.apply_updates(d_params, d_updates)

            def g_objective(fake, params, rest):  # the updated discriminator, whose
                # statistics stay those of its own step
                return generator_loss(nnx.merge(d_def, params, rest, copy=True)(fake, labels), kind)

            g_loss, fake_grad = jax.value_and_grad(g_objective)(fake, d_params, d_rest)
            g_grads, _ = pull_back(fake_grad)
            g_updates, g_opt = tx.update(g_grads, state.opt_state["generator"], g_params)
            g_params = optax.apply_updates(g_params, g_updates)

            nnx.update(pair.generator, g_params, g_rest)
            nnx.update(pair.discriminator, d_params, d_rest)
            _, params, batch_stats, rest = nnx.split(pair, nnx.Param, nnx.BatchStat, ...)
            n = jnp.float32(real.shape[0])
            sums = {"d_loss": d_loss * n, "g_loss": g_loss * n, "count": n,
                    "d_real": jnp.sum(nnx.sigmoid(real_logits)),
                    "d_fake": jnp.sum(nnx.sigmoid(fake_logits)),
                    # the players' gradients in the order of the state's params (sorted keys)
                    base.HEALTH: base.step_health(d_loss + g_loss, {
                        "discriminator": d_grads, "generator": g_grads})}
            return state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                                 rest=rest, opt_state={"generator": g_opt,
                                                       "discriminator": d_opt}), sums

        return step

    def eval_noise(self, indices: jax.Array) -> jax.Array:
        """z of each eval example, from (seed, index): the same at every evaluation."""
        key = jax.random.fold_in(jax.random.key(self.c.seed), EVAL_STREAM)
        return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i),
                                                    (self.z_dim,)))(indices)

    def eval_outputs(self, model, batch: dict):
        labels = batch["label"] if self.conditional else None
        return {"fake": model.generator(self.eval_noise(batch["index"]), labels)}

    def features(self) -> fid.FeatureNet:
        if self._features is None:
            self._features = fid.feature_net(self.c, self.info)
            self.require(self._features.in_channels == self.info.in_channels,
                         f"FID's classifier ({self._features.source}) takes "
                         f"{self._features.in_channels} channel(s) but {self.info.name!r} has "
                         f"{self.info.in_channels}")
        return self._features

    def eval_step(self, defs: PairDefs):
        features = self.features()

        def step(state: GANState, batch: dict):
            pair = nnx.merge(defs.eval, state.params, state.batch_stats, state.rest)
            fake = self.eval_outputs(pair, batch)["fake"]
            real_features, real_logits = features((batch["image"] + 1) / 2)
            fake_features, fake_logits = features((fake + 1) / 2)
            rows = {"real": real_features, "fake": fake_features, "label": batch["label"],
                    "real_class": jnp.argmax(real_logits, -1),
                    "fake_class": jnp.argmax(fake_logits, -1), "mask": batch["mask"]}
            return {"count": jnp.sum(batch["mask"]), base.GATHERED: rows}

        return step

    def metric_sums(self, outputs, batch: dict, mask: jax.Array) -> dict:
        return {"count": jnp.sum(mask)}  # the eval step is the task's own (eval_step)

    def finalize(self, totals: dict) -> dict[str, float]:
        if base.GATHERED not in totals:  # a train log: the players' mean losses
            return base.means(totals)
        rows = base.gathered(totals)
        k = self.features().num_classes
        values = {"fid": fid.fid(rows["real"], rows["fake"]),
                  "coverage": coverage(rows["real_class"], rows["fake_class"], k)}
        if self.conditional:
            values["label_accuracy"] = float(np.mean(rows["fake_class"] == rows["label"]))
        return values

    # --- generating -----------------------------------------------------------------------------
    def generator(self, defs: PairDefs, state: GANState):
        """The eval-mode generator (running BatchNorm statistics) of `state`."""
        state = jax.device_get(state)
        return nnx.merge(defs.eval, state.params, state.batch_stats, state.rest).generator

    def generate(self, generator, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """Images in [0, 1], (N, S, S, C), in chunks of CHUNK (the last one padded), so every
        picture and `sample` reuse one compiled generator."""
        n = len(z)
        padded = -(-n // CHUNK) * CHUNK
        z = np.concatenate([z, np.zeros((padded - n, z.shape[1]), z.dtype)])
        labels = None if labels is None else np.concatenate(
            [labels, np.zeros(padded - n, np.int32)])
        out = [to_unit(_generate(generator, jnp.asarray(z[i:i + CHUNK]),
                                 None if labels is None else jnp.asarray(labels[i:i + CHUNK])))
               for i in range(0, padded, CHUNK)]
        return np.concatenate(out)[:n]

    def sample(self, defs: PairDefs, state: GANState, n: int, seed: int):
        """(n images as uint8 NHWC, their class ids or None): z ~ N(0, I) from `seed`; a
        conditional model's classes in turn 0, 1, ..., K-1, 0, ..."""
        generator = self.generator(defs, state)
        z = np.asarray(jax.random.normal(jax.random.key(seed), (n, generator.z_dim)))
        labels = np.arange(n, dtype=np.int32) % self.num_classes if self.conditional else None
        images = np.round(self.generate(generator, z, labels) * 255).astype(np.uint8)
        return images, labels

    # --- pictures -------------------------------------------------------------------------------
    def grid_figure(self, images: np.ndarray, labels, path: Path, title: str) -> None:
        """uint8 images as one mosaic; a conditional model's in columns of one class each
        (`sample` cycles through the classes)."""
        per_row = self.num_classes if labels is not None else 8
        names = None
        if labels is not None:
            names = list(self.info.class_names or map(str, range(self.num_classes)))
        save_mosaic(np.asarray(images, np.float32) / 255, per_row, path, title, names)

    def eval_pictures(self, defs, state, directory: Path, step: int) -> None:
        """`samples/step_N.png`: the same 64 z (and classes) at every evaluation."""
        images, labels = self.sample(defs, state, 64, self._stream(GRID_STREAM))
        self.grid_figure(images, labels, directory / "samples" / f"step_{step:06d}.png",
                         f"{self.name}: generated at step {step} (fixed z)")

    def final_pictures(self, defs, state, directory: Path) -> None:
        """`interpolation.png`: 8 rows, each a straight line in z between two random points."""
        generator = self.generator(defs, state)
        key = jax.random.key(self._stream(LERP_STREAM))
        ends = np.asarray(jax.random.normal(key, (2, 8, generator.z_dim)))
        ts = np.linspace(0, 1, 10)
        z = np.concatenate([(1 - t) * ends[0] + t * ends[1] for t in ts])
        labels = (np.tile(np.arange(8) % self.num_classes, len(ts)).astype(np.int32)
                  if self.conditional else None)
        images = self.generate(generator, z, labels)
        rows = images.reshape(len(ts), 8, *images.shape[1:]).swapaxes(0, 1)  # a row per pair
        save_mosaic(rows.reshape(-1, *images.shape[1:]), len(ts), directory / "interpolation.png",
                    f"{self.name}: straight lines in z between 8 pairs of points",
                    [f"{t:.2f}" for t in ts])

    def _stream(self, tag: int) -> int:
        return int(self.c.seed) * 1000 + tag

    def samples_figure(self, batch: dict, outputs, path: Path) -> None:
        columns = [to_unit(batch["image"]), to_unit(outputs["fake"])]
        names = self.info.class_names or tuple(str(k) for k in range(max(self.num_classes, 1)))
        titles = [f"example {int(i)}" + (f" ({names[int(y)]})" if self.conditional else "")
                  for i, y in zip(batch["index"], batch["label"])]
        pictures.image_grid(columns, titles, path, column_names=["real", "generated"],
                            title=f"{self.name}: eval examples and the images generated "
                                  "from their z")

