"""What the tasks make of their data: degradations that repeat for the same seed and index,
patches of the asked size, and a segmentation run whose mIoU is the same on 1 and 8 devices."""

import json
import os

import jax

import numpy as np
import pytest

import tasks
from tests.helpers import run_launch
from training import config as config_lib


def _task(name, **task_fields):
    c = config_lib.base_config()
    c.task.name = name
    c.data.patch_size = 24
    for k, v in task_fields.items():
        c.task[k] = v
    return tasks.create(c, tasks.DataInfo(name="photos", num_classes=0, in_channels=3,
                                          labels="none"))


def _photo(h=40, w=50):
    rng = np.random.default_rng(0)
    return {"image": rng.integers(0, 255, (h, w, 3), dtype=np.uint8)}


@pytest.mark.parametrize("name", ["super_resolution", "denoising"])
def test_eval_degradation_repeats_for_an_index_and_differs_across(name):
    task = _task(name)
    example = task.decode(_photo())
    first, again = task.eval_example(example, 3), task.eval_example(example, 3)
    other = task.eval_example(example, 4)
    np.testing.assert_array_equal(first["input"], again["input"])
    if name == "denoising":  # the noise is keyed by the index; a bicubic downscale is not
        assert not np.array_equal(first["input"], other["input"])


def test_super_resolution_pairs_are_the_papers():
    task = _task("super_resolution", scale=3)
    task.upscale = 1  # SRCNN: the network sees the bicubic-upsampled image
    example = task.eval_example(task.decode(_photo(40, 50)), 0)
    assert example["target"].shape == (39, 48, 1)          # mod-cropped to multiples of 3
    np.testing.assert_array_equal(example["input"], example["baseline"])
    task.upscale = 3  # ESPCN: the low-resolution image itself
    example = task.eval_example(task.decode(_photo(40, 50)), 0)
    assert example["input"].shape == (13, 16, 1) and example["baseline"].shape == (39, 48, 1)
    patch = task.train_example(task.decode(_photo()), np.random.default_rng(0))
    assert patch["target"].shape == (24, 24, 1) and patch["input"].shape == (8, 8, 1)


def test_y_channel_is_bt601_studio_range():
    task = _task("super_resolution")
    white = task.decode({"image": np.full((6, 6, 3), 255, np.uint8)})["image"]
    assert white.shape == (6, 6, 1) and white[0, 0, 0] == pytest.approx(235 / 255, abs=1e-6)


def test_denoising_noise_has_the_asked_sigma():
    task = _task("denoising", sigma=25.0)
    clean = task.decode({"image": np.full((256, 256, 3), 128, np.uint8)})
    noisy = task.eval_example(clean, 0)["input"]
    assert np.std(noisy - clean["image"]) * 255 == pytest.approx(25.0, rel=0.03)


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="two segmentation runs in subprocesses (.ci/run runs it)")
def test_segmentation_miou_is_the_same_on_one_and_eight_devices(tmp_path):
    overrides = ["--config", "experiments/segment_digit_scenes.py", "--config.train.steps=8",
                 "--config.train.batch_size=16", "--config.eval.every_steps=8",
                 "--config.checkpoint.every_steps=8", "--config.schedule.warmup_steps=0",
                 "--config.train.log_every_steps=8", "--config.eval.batch_size=64"]
    finals = {}
    for devices in (1, 8):
        workdir = tmp_path / f"dev{devices}"
        result = run_launch("train", f"--workdir={workdir}", *overrides, devices=devices,
                            timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        finals[devices] = json.loads((workdir / "summary.json").read_text())["final_metrics"]
    assert finals[1]["test/miou"] == pytest.approx(finals[8]["test/miou"], abs=1e-5)
    assert finals[1]["test/pixel_accuracy"] == pytest.approx(finals[8]["test/pixel_accuracy"],
                                                             abs=1e-5)


def test_segmentation_device_augment_moves_labels_with_images():
    c = config_lib.base_config()
    c.task.name = "segmentation"
    c.data.device_augment = "flip_lr|translate(0.25)"
    task = tasks.create(c, tasks.DataInfo(name="scenes", num_classes=3, in_channels=1,
                                          labels="pixel"))
    labels = np.random.default_rng(0).integers(0, 3, (4, 16, 16)).astype(np.int32)
    batch = {"image": labels[..., None].astype(np.float32), "pixel_labels": labels}
    out = jax.jit(task.device_augment())(batch, jax.random.key(0))
    moved, image = np.asarray(out["pixel_labels"]), np.asarray(out["image"])[..., 0]
    inside = moved != 255
    assert inside.any() and not inside.all()   # translated: some pixels came from outside
    np.testing.assert_array_equal(image[inside], moved[inside])
