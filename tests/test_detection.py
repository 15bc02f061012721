"""Detection (YOLO v1 style): VOC mAP against hand-computed cases, IoU and NMS, the target grid,
the loss, decoding, `predict`'s files and errors, and a short run that reports test/map50."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

import tasks
from errors import UserError
from tasks import base, boxes as box_ops, detection
from training import metrics

NAMES = tuple(str(k) for k in range(10))


def _task(**options):
    from experiments.detect_digit_scenes import get_config

    c = get_config()
    c.task.update(options)
    info = tasks.DataInfo(name="digit_scenes", num_classes=11, in_channels=1,
                          class_names=("background",) + NAMES)
    return tasks.create(c, info)


# --- average precision ----------------------------------------------------------------------

def _one_class_ap(det_image, det_boxes, scores, gt_image, gt_boxes):
    dets = {"image": np.array(det_image), "boxes": np.array(det_boxes, float),
            "scores": np.array(scores, float), "classes": np.zeros(len(scores), int)}
    truth = {"image": np.array(gt_image), "boxes": np.array(gt_boxes, float),
             "classes": np.zeros(len(gt_image), int)}
    return box_ops.average_precision(dets, truth, num_classes=1)[0]


A, B, C = (0, 0, 10, 10), (20, 20, 30, 30), (40, 40, 50, 50)
MISS = (60, 60, 70, 70)


def test_voc_ap_interpolates_a_precision_dip():
    """3 objects; ranked TP, FP, FP, TP, TP: precision 1, 1/2, 1/3, 1/2, 3/5 at recall 1/3, 1/3,
    1/3, 2/3, 1. All-point interpolation raises the precision at recall 2/3 to the 3/5 reached
    later: AP = 1/3 * 1 + 1/3 * 3/5 + 1/3 * 3/5 = 11/15 (not 1/3 + 1/3 * 1/2 + 1/3 * 3/5 = 0.7)."""
    ap = _one_class_ap([0, 0, 0, 0, 0], [A, MISS, MISS, B, C], [0.9, 0.8, 0.7, 0.6, 0.5],
                       [0, 0, 0], [A, B, C])
    assert ap == pytest.approx(11 / 15, abs=1e-12)


def test_voc_ap_hand_cases():
    # TP, FP, TP over 2 objects: precision 1, 1/2, 2/3 -> 1/2 * 1 + 1/2 * 2/3.
    assert _one_class_ap([0, 0, 1], [A, MISS, B], [0.9, 0.8, 0.7], [0, 1], [A, B]) == \
        pytest.approx(5 / 6)
    # A second detection of one object is a false positive; a missed object caps recall.
    assert _one_class_ap([0, 0], [A, A], [0.9, 0.8], [0, 0], [A, B]) == pytest.approx(0.5)
    # Boxes match only in their own image.
    assert _one_class_ap([1], [A], [0.9], [0], [A]) == 0.0
    # IoU 0.5 is a match (the devkit's >=), just below is not: (0,0,10,10) vs (0,0,10,20) is 1/2.
    assert _one_class_ap([0], [(0, 0, 10, 20)], [0.9], [0], [A]) == 1.0
    assert _one_class_ap([0], [(0, 0, 10, 20.1)], [0.9], [0], [A]) == 0.0
    # Order is by score, not by list position: the FP ranked first halves the first precision.
    assert _one_class_ap([0, 0], [A, MISS], [0.1, 0.9], [0], [A]) == pytest.approx(0.5)


def test_ap_per_class_and_the_mean_over_classes_present():
    rows = {  # 2 images, 3 detection slots (score 0 = none), 2 true-box slots (label -1 = none)
        "boxes": np.array([[A, B, C], [A, B, C]], float) / 100,
        "scores": np.array([[0.9, 0.8, 0.0], [0.7, 0.0, 0.0]]),
        "classes": np.array([[0, 1, -1], [1, -1, -1]]),
        "true_boxes": np.array([[A, B], [A, A]], float) / 100,
        "true_labels": np.array([[0, 1], [0, -1]]),
    }
    aps = detection.mean_average_precision(rows, num_classes=3)
    # class 0: 1 of its 2 objects found first -> 0.5; class 1: TP then FP -> 1.0; class 2: none.
    assert aps[0] == pytest.approx(0.5) and aps[1] == pytest.approx(1.0) and np.isnan(aps[2])


# --- IoU and NMS ----------------------------------------------------------------------------

def test_iou_cases_in_numpy_and_jax():
    a = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 0, 0]], float)
    b = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [2, 0, 4, 2], [0, 0, 0, 0]], float)
    expected = [1.0, 1 / 3, 0.0, 0.0]  # same, half-shifted (2 / 6), touching, both empty
    np.testing.assert_allclose(box_ops.iou(a, b), expected)
    np.testing.assert_allclose(box_ops.iou(jnp.asarray(a), jnp.asarray(b), jnp), expected,
                               rtol=1e-6)
    assert box_ops.iou(a[:, None], b[None]).shape == (4, 4)


def test_nms_suppresses_overlaps_of_one_class_only():
    boxes = jnp.array([[0, 0, 10, 10], [0, 1, 10, 11], [0, 0, 10, 10], [50, 50, 60, 60],
                       [50, 50, 60, 60]], jnp.float32)
    scores = jnp.array([0.8, 0.9, 0.7, 0.6, 0.0])  # the last one scores 0: never kept
    classes = jnp.array([1, 1, 2, 1, 3])
    nms = jax.jit(box_ops.nms, static_argnames=("iou_threshold", "max_out"))
    kept_boxes, kept_scores, kept_classes = nms(boxes, scores, classes, iou_threshold=0.5,
                                                max_out=4)
    # box 1 (0.9) suppresses box 0 (IoU 9/11); box 2 is of another class; box 3 overlaps none.
    np.testing.assert_allclose(kept_scores, [0.9, 0.7, 0.6, 0.0])
    np.testing.assert_array_equal(kept_classes, [1, 2, 1, -1])
    np.testing.assert_allclose(kept_boxes[:3], boxes[jnp.array([1, 2, 3])])
    _, only, _ = nms(boxes, scores, classes, iou_threshold=0.95, max_out=2)
    np.testing.assert_allclose(only, [0.9, 0.8])  # a looser threshold keeps box 0; top 2 only


# --- targets, augmentation, loss, decoding -------------------------------------------------

def test_target_grid_of_known_boxes():
    boxes = np.array([[0.25, 0.5, 0.5, 0.75],      # centre (0.375, 0.625): cell (1, 2) of 4x4
                      [0.3, 0.55, 0.45, 0.7],      # same cell, smaller: dropped from the grid
                      [0.8, 0.0, 1.0, 0.1]], np.float32)  # centre (0.9, 0.05): cell (3, 0)
    t = detection.encode_targets(boxes, np.array([7, 2, 4]), grid_size=4, max_objects=5)
    assert t["grid_object"].sum() == 2 and t["grid_object"][1, 2] == t["grid_object"][3, 0] == 1
    np.testing.assert_allclose(t["grid_box"][1, 2], [0.5, 0.5, 0.5, 0.5])  # x, y, sqrt w, sqrt h
    np.testing.assert_allclose(t["grid_box"][3, 0], [0.2, 0.6, np.sqrt(0.1), np.sqrt(0.2)],
                               rtol=1e-5)
    assert t["grid_class"][1, 2] == 7 and t["grid_class"][3, 0] == 4
    np.testing.assert_array_equal(t["labels"], [7, 2, 4, -1, -1])  # every box kept for the mAP
    np.testing.assert_allclose(t["boxes"][:3], boxes)


def test_random_shift_moves_the_boxes_with_the_image_and_keeps_them_inside():
    image = np.zeros((64, 64, 1), np.float32)
    image[10:30, 40:60] = 1.0
    box = np.array([[10 / 64, 40 / 64, 30 / 64, 60 / 64]], np.float32)
    rng = np.random.default_rng(0)
    for _ in range(20):
        moved, moved_box = detection.random_shift(image, box, rng, max_shift=0.2)
        rows, cols = np.flatnonzero(moved[..., 0].any(1)), np.flatnonzero(moved[..., 0].any(0))
        np.testing.assert_allclose(moved_box[0] * 64, [rows[0], cols[0], rows[-1] + 1,
                                                       cols[-1] + 1], atol=1e-4)
        assert moved.sum() == image.sum()  # nothing pushed out


def _grid_for(targets, boxes_per_cell=2, num_classes=10):
    """A network output that predicts `targets` exactly with each cell's first predictor."""
    s = targets["grid_object"].shape[0]
    grid = np.zeros((1, s, s, boxes_per_cell * 5 + num_classes), np.float32)
    obj = targets["grid_object"] > 0
    grid[0, ..., 0:4] = targets["grid_box"]
    grid[0, ..., 4] = obj
    grid[0, ..., 5:9] = targets["grid_box"] * 0.5  # the second predictor: a worse box, conf 0
    onehot = np.eye(num_classes)[targets["grid_class"]] * obj[..., None]
    grid[0, ..., boxes_per_cell * 5:] = onehot
    return grid


def test_loss_is_zero_for_a_perfect_prediction_and_each_term_counts():
    t = detection.encode_targets(np.array([[0.25, 0.5, 0.5, 0.75]], np.float32), np.array([7]),
                                 grid_size=4, max_objects=2)
    batch = {k: v[None] for k, v in t.items()}
    loss = jax.jit(lambda g: detection.yolo_loss(g, batch, boxes_per_cell=2))
    perfect = _grid_for(t)
    total, terms = loss(perfect)
    assert float(total[0]) == pytest.approx(0.0, abs=1e-10)
    off = perfect.copy()
    off[0, 1, 2, 0] += 0.1                       # x of the responsible box
    assert float(loss(off)[1]["loss_coord"][0]) == pytest.approx(5 * 0.01, rel=1e-5)
    off = perfect.copy()
    off[0, 0, 0, 4] = 0.4                        # confidence in an empty cell
    assert float(loss(off)[0][0]) == pytest.approx(0.5 * 0.16, rel=1e-5)
    off = perfect.copy()
    off[0, 1, 2, 10 + 3] = 0.5                   # probability of a wrong class
    assert float(loss(off)[1]["loss_class"][0]) == pytest.approx(0.25, rel=1e-5)
    # The second predictor now fits the box better: it becomes responsible, and the first one's
    # confidence of 1 is penalised as no-object (0.5 * 1), its box error no more.
    swapped = perfect.copy()
    swapped[0, 1, 2, 0:4] = [0.5, 0.5, 0.3, 0.3]
    swapped[0, 1, 2, 5:10] = [0.5, 0.5, 0.5, 0.5, 1.0]
    total, terms = loss(swapped)
    assert float(terms["loss_noobject"][0]) == pytest.approx(0.5)
    assert float(terms["loss_coord"][0]) == pytest.approx(0.0, abs=1e-10)
    assert float(total[0]) == pytest.approx(0.5)


def test_decoding_a_hand_made_grid():
    t = detection.encode_targets(np.array([[0.25, 0.5, 0.5, 0.75]], np.float32), np.array([7]),
                                 grid_size=4, max_objects=2)
    grid = _grid_for(t)
    grid[0, 1, 2, 10 + 7] = 0.8   # p(7) = 0.8, confidence 1: score 0.8
    found = jax.jit(lambda g: detection.decode_detections(g, boxes_per_cell=2, max_detections=3,
                                                          nms_iou=0.5))(grid)
    np.testing.assert_allclose(found["boxes"][0, 0], [0.25, 0.5, 0.5, 0.75], rtol=1e-6)
    np.testing.assert_allclose(found["scores"][0], [0.8, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(found["classes"][0], [7, -1, -1])


def test_gathered_rows_drop_padding():
    step = lambda v, mask: {"loss": jnp.float32(1.0), "count": jnp.float32(sum(mask)),
                            base.GATHERED: {"v": jnp.asarray(v), "mask": jnp.asarray(mask)}}
    totals = metrics.add(None, step([1, 2], [1, 1]))
    totals = metrics.add(totals, step([3, 9], [1, 0]))
    np.testing.assert_array_equal(base.gathered(totals)["v"], [1, 2, 3])
    assert base.means(totals) == {"loss": 2 / 3}


# --- predict and a short run ----------------------------------------------------------------

class FixedGrid(nnx.Module):
    """A 'network' whose output is one hand-made grid, whatever the image."""

    def __init__(self, grid):
        self.grid = nnx.Variable(jnp.asarray(grid))

    def __call__(self, x):
        return jnp.broadcast_to(self.grid[...], (x.shape[0],) + self.grid.shape[1:])


def test_predict_writes_boxes_in_the_input_pixels(tmp_path):
    task = _task(grid_size=4)
    t = detection.encode_targets(np.array([[0.25, 0.5, 0.5, 0.75]], np.float32), np.array([7]),
                                 grid_size=4, max_objects=2)
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((80, 100), np.uint8)).save(tmp_path / "in" / "scene.png")
    written = task.predict(FixedGrid(_grid_for(t)), [tmp_path / "in" / "scene.png"], tmp_path)
    assert [p.name for p in written] == ["scene.json", "scene_overlay.png"]
    record = json.loads((tmp_path / "scene.json").read_text())
    assert (record["width"], record["height"]) == (100, 80)
    [found] = record["detections"]
    assert found["class"] == "7" and found["score"] == pytest.approx(1.0)
    assert found["box"] == pytest.approx([50, 20, 75, 40])  # xmin, ymin, xmax, ymax at 100x80
    overlay = np.asarray(Image.open(tmp_path / "scene_overlay.png"))
    assert overlay.shape == (240, 300, 3)  # enlarged 3x to read the labels, in colour


def test_perfect_detections_of_the_eval_set_score_map_1_through_the_eval_step():
    """The eval step on 8 devices, padding included: a 'network' that outputs the true grid of
    the one eval batch gathers every box, so every class present scores AP 1."""
    from data import inputs as inputs_lib
    from training import loop, mesh as mesh_lib, optim, state as state_lib

    from experiments.detect_digit_scenes import get_config

    c = get_config()
    c.data.eval_split, c.eval.batch_size = "test[:40]", 64  # one batch, 24 of it padding
    data = inputs_lib.open_data(c, train=False)
    task = loop.build_task(c, data)
    inputs = loop.build_inputs(c, data, task, 8)
    [batch] = list(inputs.eval_batches())
    truth = {k: batch[k] for k in ("grid_object", "grid_box", "grid_class")}
    grid = np.concatenate([_grid_for({k: v[i] for k, v in truth.items()})
                           for i in range(len(batch["mask"]))])
    mesh = mesh_lib.make_mesh()
    tx = optim.make_optimizer(c)
    defs, state = state_lib.create(FixedGrid(grid), tx, seed=0)
    _, eval_step = loop.compile_steps(task, defs, tx, mesh)
    values = loop.evaluate(eval_step, mesh_lib.put_state(state, mesh), inputs, task, c, mesh)
    present = {str(k) for k in np.unique(batch["labels"][batch["labels"] >= 0])}
    assert values["test/map50"] == 1.0
    assert all(values[f"test/ap50/{k}"] == 1.0 for k in present)
    assert all(np.isnan(values[f"test/ap50/{k}"]) for k in set(NAMES) - present)
    assert values["test/loss"] == pytest.approx(0.0, abs=1e-6)


def test_too_many_objects_for_the_padded_list_is_a_user_error():
    task = _task(max_objects=2)
    example = {"image": np.zeros((64, 64, 1), np.float32),
               "object_boxes": np.tile([[0.1, 0.1, 0.2, 0.2]], (3, 1)).astype(np.float32),
               "object_labels": np.array([1, 2, 3])}
    with pytest.raises(UserError, match="raise task.max_objects"):
        task.eval_example(example, 0)


def test_a_dataset_without_boxes_is_refused():
    from experiments.detect_digit_scenes import get_config

    c = get_config()
    c.data.name = "digits"
    info = tasks.DataInfo(name="digits", num_classes=10, in_channels=1, class_names=NAMES)
    with pytest.raises(UserError, match="needs boxes"):
        tasks.create(c, info).check()
    c.data.name, c.data.augment = "digit_scenes", "flip_lr"
    with pytest.raises(UserError, match="would not move the boxes"):
        tasks.create(c, info).check()
