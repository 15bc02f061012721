"""Object detection in the style of YOLO v1 (Redmon et al. 2016): one network pass predicts, on an
S x S grid, B boxes per cell with confidences and C class probabilities per cell.

Records hold `image` and `objects` ({bbox: (n, 4) normalised (ymin, xmin, ymax, xmax), label:
(n,)}, n varying: data/digit_scenes.py). On the host each example becomes fixed-size arrays, so
batches stack:
    image        (H, W, C) float32 in [0, 1], resized to data.image_size (boxes are normalised,
                 so resizing leaves them as they are)
    grid_object  (S, S) 1 where an object's centre falls in the cell (the paper's 1obj_i)
    grid_box     (S, S, 4) that object's (x, y, sqrt w, sqrt h): centre offset inside the cell,
                 square roots of its size as fractions of the image
    grid_class   (S, S) its class
    boxes        (M, 4), labels (M,): every object, padded with label -1 to task.max_objects,
                 for the mAP
A cell holds one object, the paper's limit; where two centres share a cell the larger box wins.
Training moves each scene by a random whole-pixel translation of up to task.max_shift of its
size (the paper's "random translations of up to 20%"), chosen so that no object leaves the
image, boxes moved with it; the paper's random scaling and colour changes are left out, and so
are `data.augment`'s generic ops, which would not move the boxes.

Loss (the paper's eq. 3), summed over the cells of an image, averaged over the batch: of a cell's
B predictors the responsible one is the one whose box has the highest IoU with the cell's object
(darknet's rule where none overlaps it: the lowest coordinate error);
    lambda_coord (5) * [(x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
  + (C - IoU)^2 for the responsible predictor (its target confidence is its IoU, held fixed)
  + lambda_noobj (0.5) * C^2 for every other predictor
  + sum over classes of (p(c) - 1[c = class])^2 for cells holding an object.
Decoding (on device): box = ((j + x) / S, (i + y) / S, w = (sqrt w)^2, h = (sqrt h)^2), clipped
to the image; class score = confidence x p(c) for every box and class, both clipped to [0, 1]
(the outputs are linear); the best 4 x task.max_detections candidates go through class-aware
non-maximum suppression at IoU task.nms_iou, and the best task.max_detections survivors are
kept (tasks/boxes.py).

Metrics: `map50`, PASCAL VOC mean average precision at IoU 0.5 with all-point interpolation,
over every detection of the eval set (gathered on the host: tasks/base.py `gather`),
`ap50/<class>` (NaN for a class absent from the eval set, left out of the mean), the loss and
its four terms. `predict` writes NAME.json (boxes in pixels of the input image, classes, scores
of the detections scoring at least task.score_threshold) and NAME_overlay.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from data import pipeline
from errors import UserError
from tasks import base, box_pictures, boxes as box_ops

LOSS_TERMS = ("loss_coord", "loss_object", "loss_noobject", "loss_class")
GATHERED_KEYS = ("boxes", "scores", "classes", "true_boxes", "true_labels")


# --- the target grid (host) ---------------------------------------------------------------------

def encode_targets(boxes: np.ndarray, labels: np.ndarray, grid_size: int,
                   max_objects: int) -> dict[str, np.ndarray]:
    """The fixed-size arrays of one example's objects (module docstring)."""
    s = grid_size
    obj = np.zeros((s, s), np.float32)
    cell_box = np.zeros((s, s, 4), np.float32)
    cell_class = np.zeros((s, s), np.int32)
    taken_area = np.zeros((s, s), np.float32)
    for (ymin, xmin, ymax, xmax), label in zip(boxes, labels):
        h, w = ymax - ymin, xmax - xmin
        cy, cx = (ymin + ymax) / 2 * s, (xmin + xmax) / 2 * s
        i, j = min(int(cy), s - 1), min(int(cx), s - 1)
        if obj[i, j] and taken_area[i, j] >= h * w:
            continue
        obj[i, j], taken_area[i, j], cell_class[i, j] = 1.0, h * w, label
        cell_box[i, j] = (cx - j, cy - i, np.sqrt(w), np.sqrt(h))
    padded = np.zeros((max_objects, 4), np.float32)
    padded_labels = np.full(max_objects, -1, np.int32)
    padded[:len(boxes)], padded_labels[:len(boxes)] = boxes, labels
    return {"grid_object": obj, "grid_box": cell_box, "grid_class": cell_class,
            "boxes": padded, "labels": padded_labels}


def random_shift(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
                 max_shift: float) -> tuple[np.ndarray, np.ndarray]:
    """The image moved by whole pixels (zero fill), at most `max_shift` of its size each way and
    never so far that an object leaves it; the boxes moved with it."""
    h, w = image.shape[:2]
    if max_shift <= 0:
        return image, boxes
    limit = np.floor(max_shift * np.array([h, w]))
    low, high = -limit, limit
    if len(boxes):  # room above/left of the highest/leftmost box, below/right of the lowest
        low = -np.minimum(np.floor(boxes[:, :2].min(0) * (h, w)), limit)
        high = np.minimum(np.floor((1 - boxes[:, 2:].max(0)) * (h, w)), limit)
    dy, dx = (int(rng.integers(lo, hi, endpoint=True)) for lo, hi in zip(low, high))
    moved = np.zeros_like(image)
    moved[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    offset = np.array([dy / h, dx / w, dy / h, dx / w], np.float32)
    return moved, (boxes + offset).astype(np.float32)


# --- loss and decoding (device) -----------------------------------------------------------------

def split_grid(grid: jax.Array, boxes_per_cell: int) -> tuple[jax.Array, jax.Array]:
    """(N, S, S, B*5 + C) -> per-box (N, S, S, B, 5) of (x, y, sqrt w, sqrt h, confidence) and
    per-cell class probabilities (N, S, S, C)."""
    n, s = grid.shape[:2]
    per_box = grid[..., :boxes_per_cell * 5].reshape(n, s, s, boxes_per_cell, 5)
    return per_box, grid[..., boxes_per_cell * 5:]


def cell_corners(xy: jax.Array, sqrt_wh: jax.Array) -> jax.Array:
    """(N, S, S, ..., 2) cell offsets (x, y) and square-root sizes -> normalised (ymin, xmin,
    ymax, xmax) (N, S, S, ..., 4)."""
    s = xy.shape[1]
    extra = (1,) * (xy.ndim - 4)
    col = jnp.arange(s, dtype=xy.dtype).reshape((1, 1, s) + extra)
    row = jnp.arange(s, dtype=xy.dtype).reshape((1, s, 1) + extra)
    cx, cy = (col + xy[..., 0]) / s, (row + xy[..., 1]) / s
    w, h = sqrt_wh[..., 0] ** 2, sqrt_wh[..., 1] ** 2
    return jnp.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


def yolo_loss(grid: jax.Array, targets: dict, *, boxes_per_cell: int, lambda_coord: float = 5.0,
              lambda_noobj: float = 0.5) -> tuple[jax.Array, dict]:
    """(per-image loss (N,), {term: per-image value}) of the paper's eq. 3 (module docstring)."""
    per_box, probs = split_grid(grid, boxes_per_cell)
    xy, sqrt_wh, conf = per_box[..., :2], per_box[..., 2:4], per_box[..., 4]
    obj, true = targets["grid_object"], targets["grid_box"][..., None, :]
    ious = box_ops.iou(cell_corners(xy, sqrt_wh), cell_corners(true[..., :2], true[..., 2:]), jnp)
    coord_err = (jnp.sum((xy - true[..., :2]) ** 2, -1)
                 + jnp.sum((sqrt_wh - true[..., 2:]) ** 2, -1))
    rank = jnp.where(jnp.max(ious, -1, keepdims=True) > 0, ious, -coord_err)
    responsible = jax.nn.one_hot(jnp.argmax(rank, -1), boxes_per_cell) * obj[..., None]
    onehot = jax.nn.one_hot(targets["grid_class"], probs.shape[-1])
    cells = lambda x: jnp.sum(x, axis=tuple(range(1, x.ndim)))
    terms = {
        "loss_coord": lambda_coord * cells(responsible * coord_err),
        "loss_object": cells(responsible * (conf - jax.lax.stop_gradient(ious)) ** 2),
        "loss_noobject": lambda_noobj * cells((1 - responsible) * conf ** 2),
        "loss_class": cells(obj * jnp.sum((probs - onehot) ** 2, -1)),
    }
    return sum(terms.values()), terms


def decode_detections(grid: jax.Array, *, boxes_per_cell: int, max_detections: int,
                      nms_iou: float) -> dict[str, jax.Array]:
    """{boxes (N, K, 4) normalised, scores (N, K), classes (N, K)}: the best K detections of
    each image after NMS (score 0 and class -1 where fewer)."""
    per_box, probs = split_grid(grid, boxes_per_cell)
    n, num_classes = grid.shape[0], probs.shape[-1]
    corners = jnp.clip(cell_corners(per_box[..., :2], per_box[..., 2:4]), 0.0, 1.0)
    scores = (jnp.clip(per_box[..., 4], 0, 1)[..., None]
              * jnp.clip(probs, 0, 1)[..., None, :])          # (N, S, S, B, C)
    scores = scores.reshape(n, -1)
    top = min(scores.shape[1], 4 * max_detections)
    best, index = jax.lax.top_k(scores, top)
    box_of = jnp.take_along_axis(corners.reshape(n, -1, 4), (index // num_classes)[..., None], 1)
    nms = jax.vmap(lambda b, s, c: box_ops.nms(b, s, c, iou_threshold=nms_iou,
                                               max_out=max_detections))
    kept_boxes, kept_scores, kept_classes = nms(box_of, best, index % num_classes)
    return {"boxes": kept_boxes, "scores": kept_scores, "classes": kept_classes}


def mean_average_precision(rows: dict, num_classes: int, iou_threshold: float = 0.5) -> np.ndarray:
    """Per-class VOC AP from gathered rows: per image its detections (boxes, scores, classes;
    score 0 = none) and its true boxes and labels (-1 = padding)."""
    n, k = rows["scores"].shape
    image = np.repeat(np.arange(n), k).reshape(n, k)
    real = rows["scores"] > 0
    detections = {"image": image[real], "boxes": rows["boxes"][real],
                  "scores": rows["scores"][real], "classes": rows["classes"][real]}
    m = rows["true_labels"].shape[1]
    present = rows["true_labels"] >= 0
    truth = {"image": np.repeat(np.arange(n), m).reshape(n, m)[present],
             "boxes": rows["true_boxes"][present], "classes": rows["true_labels"][present]}
    return box_ops.average_precision(detections, truth, num_classes, iou_threshold)


class Detection(base.Task):
    name = "detection"
    model_output = "grid_detections"
    default_metric, default_mode = "map50", "max"
    options = {"grid_size": 8, "boxes_per_cell": 2, "lambda_coord": 5.0, "lambda_noobj": 0.5,
               "max_objects": 16, "max_detections": 32, "nms_iou": 0.5, "score_threshold": 0.2,
               "max_shift": 0.2}

    def __init__(self, c, info: base.DataInfo):
        super().__init__(c, info)
        t = {**self.options, **c.task.to_dict()}
        self.grid_size, self.boxes_per_cell = int(t["grid_size"]), int(t["boxes_per_cell"])
        self.lambda_coord, self.lambda_noobj = float(t["lambda_coord"]), float(t["lambda_noobj"])
        self.max_objects, self.max_detections = int(t["max_objects"]), int(t["max_detections"])
        self.nms_iou, self.score_threshold = float(t["nms_iou"]), float(t["score_threshold"])
        self.max_shift, self.image_size = float(t["max_shift"]), int(c.data.image_size)
        # A dataset with a mask lists its mask's classes, background first; boxes have none.
        names = tuple(info.class_names)
        self.class_names = names[1:] if names[:1] == ("background",) else names
        self.num_classes = len(self.class_names)

    def check(self) -> None:
        from data import sources

        d = self.c.data
        self.require("objects" in sources.record_keys(d.name, d.data_dir),
                     f"task detection needs boxes; dataset {d.name!r} has no `objects` "
                     "(use digit_scenes)")
        self.require(self.num_classes >= 1, f"dataset {d.name!r} names no object classes")
        self.require(d.augment in ("", "none") and d.device_augment in ("", "none"),
                     "task detection does not take data.augment/data.device_augment (they would "
                     "not move the boxes); it translates scenes itself (task.max_shift)")
        self.require(self.grid_size >= 1 and self.boxes_per_cell >= 1,
                     "task.grid_size and task.boxes_per_cell must be >= 1")
        self.require(0 <= self.max_shift < 0.5, "task.max_shift must be in [0, 0.5)")
        self.require(0 < self.nms_iou <= 1, "task.nms_iou must be in (0, 1]")

    def metric_names(self) -> list[str]:
        return ["loss", *LOSS_TERMS, "map50"] + [f"ap50/{n}" for n in self.class_names]

    def model_kwargs(self) -> dict:
        return {"in_channels": self.info.in_channels, "num_classes": self.num_classes,
                "grid_size": self.grid_size, "boxes_per_cell": self.boxes_per_cell,
                "input_size": self.image_size}

    # --- host -------------------------------------------------------------------------------
    def decode(self, record: dict) -> dict:
        objects = record["objects"]
        return {"image": pipeline.to_float_image(record["image"], self.image_size),
                "object_boxes": np.asarray(objects["bbox"], np.float32).reshape(-1, 4),
                "object_labels": np.asarray(objects["label"], np.int32).reshape(-1)}

    def _targets(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray) -> dict:
        if len(boxes) > self.max_objects:
            raise UserError(f"a scene holds {len(boxes)} objects, more than task.max_objects="
                            f"{self.max_objects}; raise task.max_objects")
        return {"image": image, **encode_targets(boxes, labels, self.grid_size, self.max_objects)}

    def train_example(self, example: dict, rng: np.random.Generator) -> dict:
        image, boxes = random_shift(example["image"], example["object_boxes"], rng,
                                    self.max_shift)
        return self._targets(image, boxes, example["object_labels"])

    def eval_example(self, example: dict, index: int) -> dict:
        return self._targets(example["image"], example["object_boxes"], example["object_labels"])

    # --- device -------------------------------------------------------------------------------
    def _loss(self, grid, batch):
        return yolo_loss(grid, batch, boxes_per_cell=self.boxes_per_cell,
                         lambda_coord=self.lambda_coord, lambda_noobj=self.lambda_noobj)

    def _detect(self, grid):
        return decode_detections(grid, boxes_per_cell=self.boxes_per_cell,
                                 max_detections=self.max_detections, nms_iou=self.nms_iou)

    def loss(self, model, batch: dict, key: jax.Array):
        per_example, terms = self._loss(model(batch["image"]), batch)
        return jnp.mean(per_example), {"per_example": per_example, **terms}

    def eval_outputs(self, model, batch: dict):
        grid = model(batch["image"])
        per_example, terms = self._loss(grid, batch)
        return {"per_example": per_example, **terms, **self._detect(grid)}

    def metric_sums(self, outputs, batch: dict, mask: jax.Array) -> dict:
        w = mask.astype(jnp.float32)
        sums = {k: jnp.sum(outputs[k] * w) for k in LOSS_TERMS}
        return {"loss": jnp.sum(outputs["per_example"] * w), **sums, "count": jnp.sum(w)}

    def gather(self, outputs, batch: dict) -> dict:
        return {"boxes": outputs["boxes"], "scores": outputs["scores"],
                "classes": outputs["classes"], "true_boxes": batch["boxes"],
                "true_labels": batch["labels"]}

    def finalize(self, totals: dict) -> dict[str, float]:
        values = base.means(totals)
        if base.GATHERED not in totals:  # training: losses only
            return values
        aps = mean_average_precision(base.gathered(totals), self.num_classes)
        values["map50"] = float(np.nanmean(aps)) if np.isfinite(aps).any() else float("nan")
        values.update({f"ap50/{n}": float(ap) for n, ap in zip(self.class_names, aps)})
        return values

    # --- pictures and predictions ---------------------------------------------------------------
    def samples_figure(self, batch: dict, outputs, path: Path) -> None:
        box_pictures.samples_figure(batch, outputs, path, self.class_names, self.score_threshold,
                                    title=f"detection: {self.info.name}")

    def predict(self, model, paths: list[Path], out: Path) -> list[Path]:
        """Each image resized to the network's input (as the paper resizes to 448x448); boxes
        are given in pixels of the image as it was read."""
        from flax import nnx

        from data import image_files

        forward = nnx.jit(lambda m, x: self._detect(m(x)))
        written = []
        for path in paths:
            image = image_files.read_for_model(path, self.info.in_channels)
            x = pipeline.to_float_image(image, self.image_size)[None]
            found = jax.device_get(forward(model, jnp.asarray(x)))
            keep = found["scores"][0] >= max(self.score_threshold, 1e-9)
            h, w = image.shape[:2]
            pixels = found["boxes"][0][keep] * np.array([h, w, h, w])
            detections = [{"box": [round(float(v), 2) for v in (b[1], b[0], b[3], b[2])],
                           "class": self.class_names[int(k)], "class_id": int(k),
                           "score": round(float(s), 4)}
                          for b, k, s in zip(pixels, found["classes"][0][keep],
                                             found["scores"][0][keep])]
            record = {"image": path.name, "width": w, "height": h,
                      "box_format": "xmin, ymin, xmax, ymax in pixels (edges)",
                      "score_threshold": self.score_threshold, "detections": detections}
            (out / f"{path.stem}.json").write_text(json.dumps(record, indent=1))
            overlay = box_pictures.draw(image, pixels, found["classes"][0][keep],
                                        found["scores"][0][keep], self.class_names)
            image_files.save_png(overlay, out / f"{path.stem}_overlay.png")
            written += [out / f"{path.stem}.json", out / f"{path.stem}_overlay.png"]
        return written
