"""Semantic segmentation: a class per pixel (FCN, U-Net).

Batch: `image` (B, H, W, C) float32 in [0, 1], `pixel_labels` (B, H, W) int32 class ids (255:
ignored). (Sources call the label map `mask`; in a batch `mask` marks padded examples.)
Training takes random `data.patch_size` crops (0: whole images), and geometric ops of
`data.augment` (host) and `data.device_augment` (in the step) move the mask with its image
(nearest neighbour; pixels brought in from outside are ignored), photometric ones touch only
the image. A network whose output is smaller than its input (U-Net with the paper's unpadded
convolutions) or that needs a size multiple (pooling) gets its input mirrored at the borders to
`model.input_size_for(h, w)` and its output centre-cropped back to (h, w): the paper's
overlap-tile strategy, with the whole image as one tile, so the output always matches the
label. Losses (`task.loss`): ce (per-pixel cross-entropy, `task.class_weights` optional),
dice (soft Dice over classes), ce+dice. Metrics from one confusion matrix summed over the whole
eval set: `pixel_accuracy`, `miou`, `iou/<class>`. `predict` writes NAME.png (class ids at the
input's size) and NAME_overlay.png.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tasks import base, image_metrics, pictures

LOSSES = ("ce", "dice", "ce+dice")
MIRROR = "reflect"  # the U-Net paper mirrors the image at its borders


def network_input_size(model, h: int, w: int) -> tuple[int, int]:
    """The input size the network needs for an (h, w) output (its own rule, else (h, w))."""
    rule = getattr(model, "input_size_for", None)
    return tuple(rule(h, w)) if rule is not None else (h, w)


def mirror_pad(images: jax.Array, size: tuple[int, int]) -> jax.Array:
    """(B, h, w, C) mirrored at the borders to `size`, the extra split evenly (centred)."""
    (h, w), (H, W) = images.shape[1:3], size
    pads = [(0, 0), ((H - h) // 2, H - h - (H - h) // 2), ((W - w) // 2, W - w - (W - w) // 2),
            (0, 0)]
    return jnp.pad(images, pads, mode=MIRROR) if (H, W) != (h, w) else images


def check_predictable(model, h: int, w: int, path) -> None:
    """Mirroring reflects at most size - 1 pixels: a smaller image is a UserError."""
    from errors import UserError

    H, W = network_input_size(model, h, w)
    if (H - h + 1) // 2 > h - 1 or (W - w + 1) // 2 > w - 1:
        raise UserError(f"{path}: {h}x{w} is smaller than this network allows (it needs a "
                        f"{H}x{W} input for it, more than mirroring can make); give a larger image")


def centre_crop(x: jax.Array, h: int, w: int) -> jax.Array:
    top, left = (x.shape[1] - h) // 2, (x.shape[2] - w) // 2
    return x[:, top:top + h, left:left + w]


def dense_logits(model, images: jax.Array) -> jax.Array:
    """(B, h, w, K) logits for (B, h, w, C) images, whatever the network's size rule."""
    h, w = images.shape[1:3]
    logits = model(mirror_pad(images, network_input_size(model, h, w)))
    return centre_crop(logits, h, w)


def soft_dice_loss(logits: jax.Array, labels: jax.Array, valid: jax.Array) -> jax.Array:
    """1 - mean over classes of 2|P.Y| / (|P| + |Y|) on softmax probabilities (Milletari et al.
    2016), over the batch's valid pixels; a class absent from both counts as 1 (perfect)."""
    k = logits.shape[-1]
    probs = jax.nn.softmax(logits, axis=-1) * valid[..., None]
    onehot = jax.nn.one_hot(labels, k) * valid[..., None]
    inter = jnp.sum(probs * onehot, axis=(0, 1, 2))
    total = jnp.sum(probs, axis=(0, 1, 2)) + jnp.sum(onehot, axis=(0, 1, 2))
    return 1.0 - jnp.mean((2 * inter + 1e-6) / (total + 1e-6))


class Segmentation(base.Task):
    name = "segmentation"
    model_output = "pixel_logits"
    default_metric, default_mode = "miou", "max"

    def __init__(self, c, info: base.DataInfo):
        super().__init__(c, info)
        self.num_classes = info.num_classes
        self.loss_name = c.task.loss or "ce"
        self.class_names = info.class_names or tuple(str(k) for k in range(info.num_classes or 0))
        self._augment, self._device_augment = None, None
        from data import augment

        # Pixels a warp brings in from outside the image have no label: ignored by the loss.
        if c.data.augment and c.data.augment != "none":
            self._augment = augment.host_pipeline(c.data.augment,
                                                  mask_fill=image_metrics.IGNORE_LABEL)
        if c.data.device_augment and c.data.device_augment != "none":
            self._device_augment = augment.device_pipeline(c.data.device_augment,
                                                           mask_fill=image_metrics.IGNORE_LABEL)

    def check(self) -> None:
        t = self.c.task
        self.require(self.info.labels == "pixel" and self.num_classes >= 2,
                     f"task segmentation needs per-pixel labels; dataset {self.info.name!r} has "
                     "none (use seg:DIR, with image/ and label/ folders, or digit_scenes)")
        self.require(self.loss_name in LOSSES, f"unknown task.loss {self.loss_name!r} for "
                     f"segmentation; choose one of {', '.join(LOSSES)}")
        self.require(len(t.class_weights) in (0, self.num_classes),
                     f"task.class_weights has {len(t.class_weights)} values for "
                     f"{self.num_classes} classes; give one per class or none")
        self.require(self.c.data.patch_size >= 0, "data.patch_size must be >= 0")

    def metric_names(self) -> list[str]:
        return ["loss", "pixel_accuracy", "miou"] + [f"iou/{n}" for n in self.class_names]

    # --- host -------------------------------------------------------------------------------
    def decode(self, record: dict) -> dict:
        image = np.asarray(record["image"], np.float32) / 255.0
        return {"image": image, "pixel_labels": np.asarray(record["mask"], np.int32)}

    def train_example(self, example: dict, rng: np.random.Generator) -> dict:
        image, mask = example["image"], example["pixel_labels"]
        size = self.c.data.patch_size
        if size:
            h, w = mask.shape
            if size > min(h, w):
                raise ValueError(f"data.patch_size {size} exceeds an image of {h}x{w}")
            top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
            image = image[top:top + size, left:left + size]
            mask = mask[top:top + size, left:left + size]
        if self._augment is not None:
            image, mask = self._augment(image, rng, mask=mask)
        return {"image": np.asarray(image, np.float32), "pixel_labels": np.asarray(mask, np.int32)}

    # --- device -------------------------------------------------------------------------------
    def device_augment(self):
        if self._device_augment is None:
            return None

        def augment(batch: dict, key: jax.Array) -> dict:
            images, labels = self._device_augment(batch["image"], key, masks=batch["pixel_labels"])
            return {**batch, "image": images, "pixel_labels": labels}

        return augment

    def _pixel_loss(self, logits: jax.Array, labels: jax.Array, valid: jax.Array) -> jax.Array:
        """Per-image loss (B,): the mean over its valid pixels (and the batch's Dice term)."""
        safe = jnp.where(valid, labels, 0)
        per_pixel = optax.softmax_cross_entropy_with_integer_labels(logits, safe)
        weights = jnp.asarray(self.c.task.class_weights or (1.0,) * self.num_classes)
        pixel_weight = weights[safe] * valid
        ce = jnp.sum(per_pixel * pixel_weight, axis=(1, 2)) / jnp.maximum(
            jnp.sum(valid, axis=(1, 2)), 1)
        if self.loss_name == "ce":
            return ce
        dice = soft_dice_loss(logits, safe, valid) * jnp.ones_like(ce)  # a batch term, per image
        return dice if self.loss_name == "dice" else ce + dice

    def _outputs(self, logits, batch):
        labels = batch["pixel_labels"]
        valid = (labels >= 0) & (labels < self.num_classes)
        if "mask" in batch:  # eval: padded examples have no pixels
            valid &= batch["mask"][:, None, None].astype(bool)
        return {"logits": logits, "per_example": self._pixel_loss(logits, labels, valid)}

    def loss(self, model, batch: dict, key: jax.Array):
        outputs = self._outputs(dense_logits(model, batch["image"]), batch)
        return jnp.mean(outputs["per_example"]), outputs

    def eval_outputs(self, model, batch: dict):
        return self._outputs(dense_logits(model, batch["image"]), batch)

    def metric_sums(self, outputs, batch: dict, mask: jax.Array) -> dict:
        predicted = jnp.argmax(outputs["logits"], axis=-1)
        weight = mask.astype(jnp.float32)
        return {"loss": jnp.sum(outputs["per_example"] * weight), "count": jnp.sum(weight),
                "confusion": image_metrics.confusion_matrix(predicted, batch["pixel_labels"], mask,
                                                            self.num_classes)}

    def finalize(self, totals: dict) -> dict[str, float]:
        host = jax.device_get(totals)
        scores = image_metrics.segmentation_scores(np.asarray(host["confusion"], np.int64),
                                                   self.class_names)
        return {"loss": float(host["loss"] / host["count"]), **scores}

    # --- pictures and predictions ---------------------------------------------------------------
    def samples_figure(self, batch: dict, outputs, path: Path) -> None:
        predicted = np.argmax(np.asarray(outputs["logits"]), axis=-1)
        k = self.num_classes
        pictures.image_grid(
            [np.asarray(batch["image"]), pictures.colourise(np.asarray(batch["pixel_labels"]), k),
             pictures.colourise(predicted, k)],
            [f"example {i}" for i in range(len(predicted))], path,
            column_names=["image", "true classes", "predicted classes"],
            title=f"segmentation: {pictures.short_name(self.info.name)}, {k} classes "
                  "(colour = class id)")

    def check_input(self, model, image: np.ndarray, path: Path) -> None:
        check_predictable(model, *image.shape[:2], path)

    def predict(self, model, paths: list[Path], out: Path) -> list[Path]:
        """Whole images, any size: mirrored to the network's size rule (one overlap tile)."""
        from flax import nnx

        from data import image_files

        forward = nnx.jit(dense_logits)
        written = []
        for path in paths:
            image = image_files.read_for_model(path, self.info.in_channels)
            logits = forward(model, jnp.asarray(image[None], jnp.float32) / 255.0)
            ids = np.argmax(np.asarray(logits)[0], axis=-1)
            image_files.save_png(ids.astype(np.uint8), out / f"{path.stem}.png")
            colours = pictures.colourise(ids, self.num_classes)
            shown = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
            overlay = 0.55 * shown / 255.0 + 0.45 * colours
            image_files.save_png(image_files.to_uint8(overlay), out / f"{path.stem}_overlay.png")
            written += [out / f"{path.stem}.png", out / f"{path.stem}_overlay.png"]
        return written
