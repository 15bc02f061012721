"""Folder datasets (`folder:/root`): classes from sub-folders, RGB records, slicing, bad files
named by path (or skipped and counted), and a short training run on one."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data import folder, pipeline, sources
from errors import UserError

CLASSES = ("cat", "dog", "eel")


def write_images(root: Path, per_class: int, seed: int = 0) -> None:
    """root/CLASS/i.png: small RGB images of varying size, plus one greyscale JPEG per class."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class - 1):
            pixels = rng.integers(0, 256, (6 + i % 3, 7, 3), dtype=np.uint8)
            pixels[0, 0] = label  # the label, readable back from the PNG
            Image.fromarray(pixels).save(root / name / f"{i}.png")
        Image.fromarray(np.full((5, 5), 100 + label, np.uint8)).save(root / name / "grey.jpg",
                                                                     quality=100)


@pytest.fixture
def split_root(tmp_path):
    write_images(tmp_path / "train", per_class=6)
    write_images(tmp_path / "test", per_class=2, seed=1)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image: ignored")
    return tmp_path


def test_split_layout_reads_classes_labels_and_rgb(split_root):
    name = f"folder:{split_root}"
    assert sources.class_names(name, None) == list(CLASSES)
    assert sources.num_classes(name, None) == 3 and sources.image_channels(name, None) == 3
    train, test = sources.open_split(name, "train", None), sources.open_split(name, "test", None)
    assert (len(train), len(test)) == (18, 6)
    for source in (train, test):
        for i in range(len(source)):
            record = source[i]
            image, label = record["image"], record["label"]
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
            path = source.files[i][0]
            assert CLASSES[label] == path.parent.name
            if path.suffix == ".jpg":  # greyscale converted to RGB: three equal channels
                assert np.all(image == image[..., :1])
                assert abs(int(image[0, 0, 0]) - 100 - label) <= 1
            else:
                assert image[0, 0, 0] == label
    # Differing sizes are the pipeline's business: every record decodes to image_size.
    assert pipeline.decode(train[0], 8)["image"].shape == (8, 8, 3)


def test_class_layout_is_one_train_split_that_slices(tmp_path):
    write_images(tmp_path, per_class=4)
    name = f"folder:{tmp_path}"
    whole = [str(p) for p, _ in sources.open_split(name, "train", None).files]
    head = [str(p) for p, _ in sources.open_split(name, "train[:75%]", None).files]
    tail = [str(p) for p, _ in sources.open_split(name, "train[75%:]", None).files]
    assert len(whole) == 12 and head + tail == whole and len(head) == 9
    assert len({Path(p).parent.name for p in head}) == 3  # the fixed order mixes classes
    assert [str(p) for p, _ in sources.open_split(name, "train[2:-3]", None).files] == whole[2:-3]
    with pytest.raises(UserError, match="no split 'test'; its splits: train"):
        sources.open_split(name, "test", None)
    with pytest.raises(UserError, match=r"bad split .train\[a:b\]"):
        sources.open_split(name, "train[a:b]", None)


def test_corrupt_image_is_named_or_skipped_and_counted(split_root, capsys):
    bad = split_root / "train" / "dog" / "x.png"
    bad.write_bytes(b"not a png at all")
    truncated = split_root / "train" / "eel" / "cut.jpg"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    name = f"folder:{split_root}"
    with pytest.raises(UserError) as err:
        sources.open_split(name, "train", None)
    message = str(err.value)
    assert "\n" not in message and "skip_bad=True" in message
    assert str(bad) in message or str(truncated) in message
    source = sources.open_split(name, "train", None, skip_bad=True)
    assert len(source) == 18 and sorted(source.skipped) == sorted([bad, truncated])
    assert "skipped 2 unreadable image(s)" in capsys.readouterr().err


def test_corrupt_image_through_launch_is_one_line_exit_2(split_root, capsys):
    import launch

    bad = split_root / "train" / "cat" / "x.png"
    bad.write_bytes(b"\x89PNG garbage")
    assert launch.main(["stats", f"folder:{split_root}", "--data-dir", str(split_root)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: unreadable image {bad}: ") and "skip_bad=True" in line


def test_missing_root_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        sources.open_split(f"folder:{tmp_path / 'nope'}", "train", None)


def test_training_on_a_folder_dataset(split_root, tiny_config, tmp_path):
    from training import loop

    c = tiny_config
    c.data.name = f"folder:{split_root}"
    c.train.steps, c.train.batch_size = 4, 16
    c.eval.every_steps = c.checkpoint.every_steps = 4
    c.schedule.warmup_steps = 0
    c.data.device_augment = ""  # its compilation would be most of this test's time
    summary = loop.train(c, tmp_path / "run", show_progress=False)
    assert summary["steps"] == 4 and summary["dataset"] == c.data.name
    assert np.isfinite(summary["final_metrics"]["test/loss"])
    assert folder.CHANNELS == 3


def test_prepare_says_a_folder_needs_no_preparing(tmp_path):
    from data import cli as data_cli

    with pytest.raises(UserError, match="nothing to prepare"):
        data_cli.main([f"folder:{tmp_path}"])
    assert list(tmp_path.iterdir()) == []
