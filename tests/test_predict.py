"""`launch.py predict` and `launch.py eval` for every task: what they write (names, sizes,
formats), and bad input answered in one line with nothing written.

Each task gets one short run on data the test makes (a few steps: the outputs' form is under
test, not their quality)."""

import os
import csv
import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import run_launch
from training import config as config_lib, eval_cli, loop, predict_cli


def _short(c, steps=2):
    c.train.steps, c.train.log_every_steps = steps, steps
    c.eval.every_steps = c.checkpoint.every_steps = steps
    c.train.batch_size, c.eval.batch_size = 8, 8
    c.schedule.warmup_steps = 0
    return c


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A segmentation folder (32x32 grey, binary 0/255 masks) and a folder of colour photos."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for i in range(10):
        mask = np.zeros((32, 32), np.uint8)
        mask[rng.integers(0, 16):, rng.integers(0, 16):] = 255
        _save(root / "seg" / "label" / f"{i}.png", mask)
        _save(root / "seg" / "image" / f"{i}.png",
              np.clip(mask * 0.6 + rng.normal(40, 20, mask.shape), 0, 255).astype(np.uint8))
        smooth = np.kron(rng.integers(0, 255, (6, 6, 3)), np.ones((8, 8, 1))).astype(np.uint8)
        _save(root / "photos" / f"p{i}.png", smooth)
    return root


def _task_config(name, folders):
    c = config_lib.base_config()
    c.task.name = name
    if name == "classification":
        c.data.image_size, c.data.pad = 24, 4
    elif name == "segmentation":
        c.model.name, c.data.name = "fcn_small", f"seg:{folders / 'seg'}"
        c.data.train_split, c.data.eval_split = "train[:8]", "train[8:]"
    elif name == "autoencoder":
        c.model.name, c.task.corruption = "conv_autoencoder", "gaussian"
    else:
        c.data.name = f"images:{folders / 'photos'}"
        c.data.train_split, c.data.eval_split = "train[:8]", "train[8:]"
        c.data.patch_size = 24
        c.model.name = {"super_resolution": "espcn", "denoising": "dncnn"}[name]
        if name == "denoising":
            c.model.depth = 3
    return _short(c)


@pytest.fixture(scope="module")
def runs(folders, tmp_path_factory):
    if not os.environ.get("CONVJAX_HEAVY"):
        pytest.skip("trains a run of every task (.ci/run's heavy stage runs it)")
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for name in ("classification", "segmentation", "super_resolution", "denoising",
                 "autoencoder"):
        loop.train(_task_config(name, folders), root / name, show_progress=False)
        made[name] = root / name
    return made


def _inputs(tmp_path):
    """A colour image of an odd size and a grey one."""
    rng = np.random.default_rng(1)
    _save(tmp_path / "in" / "colour.png", rng.integers(0, 255, (37, 45, 3), dtype=np.uint8))
    _save(tmp_path / "in" / "grey.png", rng.integers(0, 255, (26, 19), dtype=np.uint8))
    return tmp_path / "in"


def _predict(run, inputs, out):
    assert predict_cli.main(["--workdir", str(run), "--input", str(inputs), "--out", str(out)]) == 0


def test_every_run_leaves_its_pictures(runs):
    for name, run in runs.items():
        for picture in ("curves.png", "samples.png"):
            with Image.open(run / picture) as image:
                assert image.size[0] > 200 and image.size[1] > 150, (name, picture)


def test_classification_writes_csv_and_logits_in_the_same_order(runs, tmp_path):
    _predict(runs["classification"], _inputs(tmp_path), tmp_path / "out")
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    logits = np.load(tmp_path / "out" / "logits.npy")
    assert [r["file"] for r in rows] == ["colour.png", "grey.png"] and logits.shape == (2, 10)
    for row, row_logits in zip(rows, logits):
        assert row["class"] == row["top1"] == str(int(np.argmax(row_logits)))
        probs = [float(row[f"p{i}"]) for i in range(1, 6)]
        assert probs == sorted(probs, reverse=True) and 0 < probs[0] <= 1


def test_segmentation_writes_class_ids_at_the_input_size(runs, tmp_path):
    _predict(runs["segmentation"], _inputs(tmp_path), tmp_path / "out")
    for stem, size in (("colour", (45, 37)), ("grey", (19, 26))):
        with Image.open(tmp_path / "out" / f"{stem}.png") as ids:
            assert ids.size == size and ids.mode == "L"
            assert set(np.unique(np.asarray(ids))) <= {0, 1}
        with Image.open(tmp_path / "out" / f"{stem}_overlay.png") as overlay:
            assert overlay.size == size and overlay.mode == "RGB"


def test_super_resolution_writes_scale_times_the_input_in_its_colour(runs, tmp_path):
    _predict(runs["super_resolution"], _inputs(tmp_path), tmp_path / "out")
    with Image.open(tmp_path / "out" / "colour.png") as sr:
        assert sr.size == (45 * 3, 37 * 3) and sr.mode == "RGB"
    with Image.open(tmp_path / "out" / "grey.png") as sr:
        assert sr.size == (19 * 3, 26 * 3) and sr.mode == "L"


@pytest.mark.parametrize("name", ["denoising", "autoencoder"])
def test_restorers_write_the_input_size(runs, tmp_path, name):
    _predict(runs[name], _inputs(tmp_path), tmp_path / "out")
    for stem, size in (("colour", (45, 37)), ("grey", (19, 26))):
        with Image.open(tmp_path / "out" / f"{stem}.png") as restored:
            assert restored.size == size and restored.mode == "L"  # grey networks


def test_eval_recomputes_the_runs_own_metrics(runs, capsys):
    run = runs["segmentation"]
    assert eval_cli.main(["--workdir", str(run), "--checkpoint", "latest"]) == 0
    written = json.loads((run / "eval-seg_seg.json").read_text())
    final = json.loads((run / "summary.json").read_text())["final_metrics"]
    assert written["metrics"]["test/miou"] == pytest.approx(final["test/miou"], abs=1e-6)
    assert "test/iou/0" in capsys.readouterr().out
    assert (run / "eval-seg_seg_samples.png").is_file()


def test_eval_on_another_dataset_names_its_file(runs, folders):
    run = runs["super_resolution"]
    assert eval_cli.main(["--workdir", str(run), f"--config.data.name=images:{folders}/photos",
                          "--config.data.eval_split=train[:3]"]) == 0
    metrics = json.loads((run / "eval-images_photos.json").read_text())["metrics"]
    assert set(metrics) >= {"test/psnr", "test/ssim", "test/psnr_baseline", "test/ssim_baseline"}


def _one_line_error(result, expected):
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_predict_bad_input_is_one_line_and_writes_nothing(runs, tmp_path):
    run = str(runs["classification"])
    inputs = _inputs(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_text("not a png")
    out = tmp_path / "out"
    _one_line_error(run_launch("predict", "--workdir", run, "--input", str(tmp_path / "bad"),
                               "--out", str(out)), "cannot read image")
    (tmp_path / "file").write_text("mine")
    _one_line_error(run_launch("predict", "--workdir", run, "--input", str(inputs),
                               "--out", str(tmp_path / "file")), "is a file")
    empty = tmp_path / "empty_run"
    empty.mkdir()
    (empty / "config.json").write_text((runs["classification"] / "config.json").read_text())
    _one_line_error(run_launch("predict", "--workdir", str(empty), "--input", str(inputs),
                               "--out", str(out)), "has no checkpoint")
    _one_line_error(run_launch("eval", "--workdir", str(tmp_path / "nowhere")),
                    "not a convjax run directory")
    assert not out.exists() and (tmp_path / "file").read_text() == "mine"


def test_an_image_too_small_for_the_network_is_refused(runs, tmp_path):
    _save(tmp_path / "tiny" / "t.png", np.zeros((2, 3), np.uint8))
    _one_line_error(run_launch("predict", "--workdir", str(runs["segmentation"]), "--input",
                               str(tmp_path / "tiny"), "--out", str(tmp_path / "out")),
                    "smaller than this network allows")
    assert not (tmp_path / "out").exists()
