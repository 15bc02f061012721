"""Boxes: intersection over union, non-maximum suppression, and PASCAL VOC average precision.

A box is (ymin, xmin, ymax, xmax) with pixel edges as coordinates (TFDS's BBoxFeature order),
normalised to [0, 1] or in pixels: IoU does not care which, as long as both boxes agree.

- `iou` works on NumPy or JAX arrays (`xp`), so the host's mAP and the device's NMS share one
  formula.
- `nms` runs on device (jittable, fixed sizes): no JAX library provides NMS (torchvision's and
  TensorFlow's would put a second framework into the eval step), and a greedy pass over a
  score-sorted, fixed-size candidate list is a few lines.
- `average_precision` follows the PASCAL VOC devkit (VOCevaldet.m, VOC2010 onwards): detections
  of a class ranked by score over the whole set; each is a true positive when its best-overlapping
  ground-truth box of that class in its image has IoU >= 0.5 and was not matched by a
  higher-scored detection (a second detection of one object is a false positive); AP is the area
  under the precision-recall curve with precision made monotone from the right, at every
  recall point ("all-point interpolation"). pycocotools computes COCO's 101-point AP and
  torchmetrics needs PyTorch, hence our own. Unlike the devkit, coordinates are continuous
  (no +1 on widths) and there are no "difficult" objects.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def area(boxes, xp=np):
    height = xp.maximum(boxes[..., 2] - boxes[..., 0], 0)
    return height * xp.maximum(boxes[..., 3] - boxes[..., 1], 0)


def iou(a, b, xp=np):
    """IoU of boxes `a` (..., 4) and `b` (..., 4), broadcast against each other; 0 when both
    are empty. Pairwise (N, M): `iou(a[:, None], b[None])`."""
    top = xp.maximum(a[..., 0], b[..., 0])
    left = xp.maximum(a[..., 1], b[..., 1])
    bottom = xp.minimum(a[..., 2], b[..., 2])
    right = xp.minimum(a[..., 3], b[..., 3])
    inter = xp.maximum(bottom - top, 0) * xp.maximum(right - left, 0)
    union = area(a, xp) + area(b, xp) - inter
    return xp.where(union > 0, inter / xp.where(union > 0, union, 1), 0.0)


def nms(boxes: jax.Array, scores: jax.Array, classes: jax.Array, *, iou_threshold: float,
        max_out: int):
    """Greedy class-aware non-maximum suppression of one image's N candidates: walking down the
    scores, a box is kept unless a kept box of its class overlaps it by IoU > `iou_threshold`.
    Candidates with score <= 0 are never kept. Returns the `max_out` best kept boxes, scores,
    classes (scores 0 and classes -1 where fewer survive). vmap it over a batch."""
    order = jnp.argsort(-scores)
    boxes, scores, classes = boxes[order], scores[order], classes[order]
    overlaps = iou(boxes[:, None], boxes[None], jnp) > iou_threshold
    overlaps &= classes[:, None] == classes[None]

    def visit(i, keep):
        suppressed = jnp.any(keep & overlaps[i])  # by an earlier (higher-scored) kept box
        return keep.at[i].set((scores[i] > 0) & ~suppressed)

    keep = jax.lax.fori_loop(0, scores.shape[0], visit, jnp.zeros(scores.shape, bool))
    picked = jnp.argsort(~keep, stable=True)[:max_out]  # kept ones first, still by score
    kept = keep[picked]
    return (jnp.where(kept[:, None], boxes[picked], 0.0), jnp.where(kept, scores[picked], 0.0),
            jnp.where(kept, classes[picked], -1))


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP (VOC2010+): the area under the precision-recall curve after
    each precision is raised to the highest precision at any higher recall."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def match_detections(det_image: np.ndarray, det_boxes: np.ndarray, gt_image: np.ndarray,
                     gt_boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """True-positive flags for one class's detections, already sorted by decreasing score."""
    tp = np.zeros(len(det_image), bool)
    taken = np.zeros(len(gt_image), bool)
    for d in range(len(det_image)):
        same = np.flatnonzero(gt_image == det_image[d])
        if not len(same):
            continue
        overlaps = iou(det_boxes[d][None], gt_boxes[same])
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold and not taken[same[best]]:
            tp[d] = taken[same[best]] = True
    return tp


def average_precision(detections: dict, ground_truth: dict, num_classes: int,
                      iou_threshold: float = 0.5) -> np.ndarray:
    """VOC AP per class (K,), NaN for a class with no ground-truth box.

    detections:   {"image": (D,) int, "boxes": (D, 4), "scores": (D,), "classes": (D,) int}
    ground_truth: {"image": (G,) int, "boxes": (G, 4), "classes": (G,) int}
    """
    aps = np.full(num_classes, np.nan)
    for k in range(num_classes):
        gt = ground_truth["classes"] == k
        if not gt.any():
            continue
        mine = np.flatnonzero(detections["classes"] == k)
        mine = mine[np.argsort(-detections["scores"][mine], kind="stable")]
        tp = match_detections(detections["image"][mine], detections["boxes"][mine],
                              ground_truth["image"][gt], ground_truth["boxes"][gt], iou_threshold)
        hits = np.cumsum(tp)
        recall = hits / gt.sum()
        precision = hits / np.arange(1, len(tp) + 1)
        aps[k] = voc_ap(recall, precision)
    return aps
