"""Boxes drawn on images: `predict`'s NAME_overlay.png and the detection task's samples.png.

A small image is first enlarged by a whole factor (nearest neighbour) until its longer side is
at least MIN_SIDE pixels, so that the class labels can be read on a 64x64 scene.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tasks import pictures

MIN_SIDE = 256


def _colour(class_id: int, num_classes: int) -> tuple[int, int, int]:
    table = pictures.label_colours(num_classes + 1)[1:]  # the segmentation colours, no black
    return tuple(int(255 * v) for v in table[class_id % len(table)])


def draw(image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray | None,
         class_names: tuple[str, ...]) -> np.ndarray:
    """uint8 RGB: `image` (uint8 HxWxC) with `boxes` (pixels, (ymin, xmin, ymax, xmax)) drawn
    in their class's colour, labelled "class score" (or "class" where `scores` is None)."""
    h, w = image.shape[:2]
    factor = max(1, -(-MIN_SIDE // max(h, w)))
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    canvas = Image.fromarray(np.ascontiguousarray(rgb)).resize((w * factor, h * factor),
                                                                Image.Resampling.NEAREST)
    pen = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    for i, (box, k) in enumerate(zip(np.asarray(boxes, np.float64), classes)):
        colour = _colour(int(k), len(class_names))
        ymin, xmin, ymax, xmax = box * factor
        pen.rectangle([xmin, ymin, xmax - 1, ymax - 1], outline=colour, width=2)
        text = class_names[int(k)] + ("" if scores is None else f" {float(scores[i]):.2f}")
        left, top, right, bottom = pen.textbbox((xmin, ymin), text, font=font)
        lift = max(0.0, ymin - (bottom - top) - 2) - top  # above the box, inside the image
        pen.rectangle([left, top + lift, right + 2, bottom + lift], fill=colour)
        pen.text((xmin + 1, ymin + lift), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def samples_figure(batch: dict, outputs, path: Path, class_names: tuple[str, ...],
                   score_threshold: float, title: str) -> None:
    """Rows of eval scenes: the true boxes, and the detections scoring >= `score_threshold`."""
    truth, found = [], []
    for i, image in enumerate(np.asarray(batch["image"])):
        uint8 = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
        size = np.array(image.shape[:2] * 2, np.float64)
        real = np.asarray(batch["labels"][i]) >= 0
        truth.append(draw(uint8, np.asarray(batch["boxes"][i])[real] * size,
                          np.asarray(batch["labels"][i])[real], None, class_names))
        keep = np.asarray(outputs["scores"][i]) >= max(score_threshold, 1e-9)
        found.append(draw(uint8, np.asarray(outputs["boxes"][i])[keep] * size,
                          np.asarray(outputs["classes"][i])[keep],
                          np.asarray(outputs["scores"][i])[keep], class_names))
    pictures.image_grid([np.stack(truth) / 255.0, np.stack(found) / 255.0],
                        [f"example {i}" for i in range(len(truth))], path,
                        column_names=["true boxes", f"detections (score >= {score_threshold})"],
                        title=title)
