"""Sources for segmentation and image-to-image tasks: `seg:DIR` (images with per-pixel labels),
`images:DIR` (unlabelled images), and the embedded `digit_scenes` and `photos` sets.

Folders are written in tmp_path; the real ISBI 2012 and Set14 copies in /work/shared are read
too where present (skipped elsewhere).
"""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data import digit_scenes, digits, photos, sources
from errors import UserError

SHARED = Path("/work/shared/datasets")


def _save(path: Path, pixels, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels)).save(path, **kw)
    return path


def write_seg(root: Path, n=12, size=(6, 5), values=(0, 255), colour=False, seed=0) -> None:
    """root/image/i.png with root/label/i.png; label pixels drawn from `values`; the image's
    top-left pixel is the pair's index, so a record can be traced to its files."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        image = rng.integers(0, 256, size + ((3,) if colour else ()), dtype=np.uint8)
        image[0, 0] = i
        _save(root / "image" / f"{i}.png", image)
        _save(root / "label" / f"{i}.png", rng.choice(np.array(values, np.uint8), size))


def _message(fn) -> str:
    with pytest.raises(UserError) as err:
        fn()
    message = str(err.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- seg:

def test_binary_labels_are_read_as_0_1_and_splits_slice_the_natural_order(tmp_path):
    write_seg(tmp_path)
    name = f"seg:{tmp_path}"
    assert sources.describe(name, None) == "labels: binary 0/255 read as 0, 1"
    assert sources.num_classes(name, None) == 2 and sources.class_names(name, None) == ["0", "1"]
    assert sources.image_channels(name, None) == 1
    assert sources.record_keys(name, None) == ["image", "mask", "name"]
    whole = sources.open_split(name, "train", None)
    assert [whole[i]["name"] for i in range(len(whole))] == [str(i) for i in range(12)]
    for i in range(len(whole)):
        record = whole[i]
        assert record["image"].shape == (6, 5, 1) and record["image"].dtype == np.uint8
        assert record["image"][0, 0, 0] == i
        stored = np.asarray(Image.open(tmp_path / "label" / f"{i}.png"))
        np.testing.assert_array_equal(record["mask"], stored // 255)
        assert record["mask"].dtype == np.uint8
    head = sources.open_split(name, "train[:75%]", None)
    tail = sources.open_split(name, "train[75%:]", None)
    assert [p.name for p in head.pairs] == [str(i) for i in range(9)]
    assert [p.name for p in tail.pairs] == ["9", "10", "11"]
    assert len(sources.open_split(name, "train[:4]", None)) == 4


def test_class_ids_with_classes_txt_and_colour_images(tmp_path):
    write_seg(tmp_path, n=4, values=(0, 1, 3), colour=True)
    _save(tmp_path / "image" / "4.png", np.full((6, 5), 77, np.uint8))  # one grey image
    _save(tmp_path / "label" / "4.png", np.zeros((6, 5), np.uint8))
    (tmp_path / "classes.txt").write_text("sky\nroad\ncar\nperson\n\ntree\n")
    name = f"seg:{tmp_path}"
    assert sources.num_classes(name, None) == 5
    assert sources.class_names(name, None) == ["sky", "road", "car", "person", "tree"]
    assert sources.describe(name, None) == \
        "labels: class ids 0..4 (5 classes, from classes.txt; ids seen: 0, 1, 3)"
    assert sources.image_channels(name, None) == 3
    source = sources.open_split(name, "train", None)
    grey = source[4]["image"]
    assert grey.shape == (6, 5, 3) and np.all(grey == 77)  # grey converted to RGB
    assert set(np.unique(source[0]["mask"])) <= {0, 1, 3}


def test_without_classes_txt_the_count_is_max_id_plus_one(tmp_path):
    write_seg(tmp_path, n=3, values=(0, 2, 6))
    name = f"seg:{tmp_path}"
    assert sources.num_classes(name, None) == 7
    assert sources.describe(name, None).startswith("labels: class ids 0..6 (7 classes, max id + 1")


def test_train_and_test_folders_share_one_mapping(tmp_path):
    write_seg(tmp_path / "train", n=5, values=(0, 1))
    write_seg(tmp_path / "test", n=2, values=(0, 4), seed=1)
    name = f"seg:{tmp_path}"
    train, test = sources.open_split(name, "train", None), sources.open_split(name, "test", None)
    assert (len(train), len(test)) == (5, 2)
    assert sources.num_classes(name, None) == 5  # the test split's id 4 counts for both
    assert len(sources.open_split(name, "test[:1]", None)) == 1
    assert "its splits: test, train" in _message(lambda: sources.open_split(name, "val", None))


def test_tif_and_jpg_images_and_palette_labels(tmp_path):
    import tifffile

    (tmp_path / "image").mkdir()
    tifffile.imwrite(tmp_path / "image" / "a.tif", np.full((4, 6), 1000, np.uint16))
    _save(tmp_path / "image" / "b.jpg", np.full((4, 6, 3), 200, np.uint8), quality=100)
    label = Image.fromarray(np.array([[0, 1, 2, 3, 4, 5]] * 4, np.uint8), mode="P")
    label.putpalette([v for i in range(6) for v in (40 * i, 255 - 40 * i, 7)])
    for stem in "ab":
        (tmp_path / "label").mkdir(exist_ok=True)
        label.save(tmp_path / "label" / f"{stem}.png")
    source = sources.open_split(f"seg:{tmp_path}", "train", None)
    a, b = source[0], source[1]
    assert a["image"].shape == (4, 6, 3) and np.all(a["image"] == round(1000 / 257))
    assert abs(int(b["image"][0, 0, 0]) - 200) <= 1
    np.testing.assert_array_equal(a["mask"][0], [0, 1, 2, 3, 4, 5])  # indices, not colours


def _bad_seg(tmp_path, problem: str) -> str:
    """Writes a small dataset (class ids 0, 1) with one problem; returns its name."""
    write_seg(tmp_path, n=4, values=(0, 1))
    if problem == "image without label":
        (tmp_path / "label" / "2.png").unlink()
    elif problem == "label without image":
        _save(tmp_path / "label" / "extra.png", np.zeros((6, 5), np.uint8))
    elif problem == "label size":
        _save(tmp_path / "label" / "1.png", np.zeros((5, 5), np.uint8))
    elif problem == "beyond classes":
        (tmp_path / "classes.txt").write_text("a\nb\nc\n")
        _save(tmp_path / "label" / "3.png", np.full((6, 5), 3, np.uint8))
    elif problem == "unreadable image":
        (tmp_path / "image" / "1.png").write_bytes(b"not a png")
    elif problem == "unreadable label":
        (tmp_path / "label" / "0.png").write_bytes(b"\x89PNG broken")
    elif problem == "no label folder":
        for f in (tmp_path / "label").iterdir():
            f.unlink()
        (tmp_path / "label").rmdir()
    elif problem == "jpeg label":
        (tmp_path / "label" / "0.png").unlink()
        _save(tmp_path / "label" / "0.jpg", np.zeros((6, 5), np.uint8))
    elif problem == "colour label":
        _save(tmp_path / "label" / "0.png", np.random.default_rng(0).integers(
            0, 255, (6, 5, 3), dtype=np.uint8))
    return f"seg:{tmp_path}"


@pytest.mark.parametrize("problem,pattern", [
    ("image without label", r"image .*/image/2.png has no label .*/label/2.png; add the label"),
    ("label without image", r"label .*/label/extra.png has no image in .*/image; add the image"),
    ("label size", r"label .*/label/1.png is 5x5 but its image .*/image/1.png is 6x5"),
    ("beyond classes", r"label .*/label/3.png has value 3, beyond the 3 classes of .*classes.txt"),
    ("unreadable image", r"unreadable image .*/image/1.png: .*; replace or remove it"),
    ("unreadable label", r"unreadable label .*/label/0.png: "),
    ("no label folder", r"has no label/ folder; put the label PNGs in .*/label"),
    ("jpeg label", r"label .*/label/0.jpg is a JPEG, .*save labels as PNG"),
    ("colour label", r"label .*/label/0.png is a colour image; save class ids as a grey PNG"),
])
def test_seg_problems_are_one_line_user_errors_naming_the_file(tmp_path, problem, pattern):
    name = _bad_seg(tmp_path, problem)
    assert re.search(pattern, _message(lambda: sources.open_split(name, "train", None)))


def test_seg_missing_folder_empty_split_and_bad_slice(tmp_path):
    assert "is not a folder" in _message(
        lambda: sources.open_split(f"seg:{tmp_path / 'nope'}", "train", None))
    assert "has no image/ and label/ folders" in _message(
        lambda: sources.open_split(f"seg:{tmp_path}", "train", None))
    write_seg(tmp_path / "ds", n=3)
    name = f"seg:{tmp_path / 'ds'}"
    assert "split 'train[:0]' is empty (a slice of 3 pairs)" in _message(
        lambda: sources.open_split(name, "train[:0]", None))
    assert "bad split" in _message(lambda: sources.open_split(name, "train[a:]", None))
    assert "nothing to prepare" in _message(lambda: sources.prepare(name, None))


def test_a_changed_file_is_read_again(tmp_path):
    write_seg(tmp_path, n=2, values=(0, 1))
    name = f"seg:{tmp_path}"
    assert sources.num_classes(name, None) == 2
    _save(tmp_path / "label" / "1.png", np.full((6, 5), 4, np.uint8))
    assert sources.num_classes(name, None) == 5  # the scan's cache saw the file change


@pytest.mark.skipif(not (SHARED / "isbi2012_membranes").is_dir(), reason="no shared ISBI copy")
def test_isbi_2012_membranes():
    name = f"seg:{SHARED / 'isbi2012_membranes'}"
    train = sources.open_split(name, "train[:80%]", None)
    test = sources.open_split(name, "train[80%:]", None)
    assert (len(train), len(test)) == (16, 4)
    assert [p.name for p in test.pairs] == ["16", "17", "18", "19"]
    assert sources.describe(name, None) == "labels: binary 0/255 read as 0, 1"
    assert sources.num_classes(name, None) == 2 and sources.image_channels(name, None) == 1
    record = test[0]
    assert record["image"].shape == (512, 512, 1) and record["mask"].shape == (512, 512)
    assert set(np.unique(record["mask"])) == {0, 1}


# --------------------------------------------------------------------------- images:

def test_image_folder_mixing_grey_and_colour_is_rgb(tmp_path):
    for i in range(5):
        _save(tmp_path / f"img{i}.png", np.full((4 + i, 3, 3), 10 * i, np.uint8))
    _save(tmp_path / "img10.jpg", np.full((5, 5), 120, np.uint8), quality=100)
    _save(tmp_path / "z.bmp", np.full((2, 2), 9, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    name = f"images:{tmp_path}"
    assert sources.image_channels(name, None) == 3 and sources.num_classes(name, None) == 0
    assert "colour, 3 channels" in sources.describe(name, None)
    assert sources.record_keys(name, None) == ["image", "name"]
    source = sources.open_split(name, "train", None)
    names = [source[i]["name"] for i in range(len(source))]
    assert names == ["img0", "img1", "img2", "img3", "img4", "img10", "z"]
    grey = source[5]["image"]
    assert grey.shape == (5, 5, 3) and np.all(np.abs(grey.astype(int) - 120) <= 1)
    assert source[2]["image"].shape == (6, 3, 3)
    assert len(sources.open_split(name, "train[:2]", None)) == 2
    assert [f.stem for f in sources.open_split(name, "train[-2:]", None).files] == ["img10", "z"]


def test_image_folder_of_grey_files_has_one_channel_and_split_folders(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            _save(tmp_path / split / f"{i}.png", np.full((3, 4), i, np.uint8))
    name = f"images:{tmp_path}"
    assert sources.image_channels(name, None) == 1
    assert sources.describe(name, None) == "images: grey, 1 channel"
    test = sources.open_split(name, "test", None)
    assert len(test) == 2 and test[1]["image"].shape == (3, 4, 1) and test[1]["name"] == "1"


def test_image_folder_errors(tmp_path):
    assert "is not a folder" in _message(
        lambda: sources.open_split(f"images:{tmp_path / 'nope'}", "train", None))
    assert "holds no images" in _message(
        lambda: sources.open_split(f"images:{tmp_path}", "train", None))
    _save(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    message = _message(lambda: sources.open_split(f"images:{tmp_path}", "train", None))
    assert message.startswith(f"unreadable image {bad}: ")
    bad.unlink()
    assert "is empty" in _message(
        lambda: sources.open_split(f"images:{tmp_path}", "train[1:]", None))


@pytest.mark.skipif(not (SHARED / "set14").is_dir(), reason="no shared Set14 copy")
def test_set14():
    name = f"images:{SHARED / 'set14'}"
    source = sources.open_split(name, "train", None)
    assert len(source) == 14 and sources.image_channels(name, None) == 3
    assert source[1]["name"] == "barbara" and source[1]["image"].shape == (576, 720, 3)


# --------------------------------------------------------------------------- digit_scenes

@pytest.fixture(scope="module")
def scenes():
    return {s: sources.open_split("digit_scenes", s, None) for s in ("train", "test")}


def test_digit_scenes_sizes_classes_and_shapes(scenes):
    assert (len(scenes["train"]), len(scenes["test"])) == (2000, 500)
    assert sources.num_classes("digit_scenes", None) == 11
    assert sources.image_channels("digit_scenes", None) == 1
    assert sources.class_names("digit_scenes", None) == ["background"] + [str(d) for d in
                                                                          range(10)]
    record = scenes["train"][0]
    assert record["image"].shape == (64, 64, 1) and record["image"].dtype == np.uint8
    assert record["mask"].shape == (64, 64) and record["mask"].dtype == np.uint8
    objects = record["objects"]
    assert objects["bbox"].shape == (len(objects["label"]), 4)


def test_digit_scene_masks_and_boxes_agree(scenes):
    for source in scenes.values():
        for i in range(40):
            r = source[i]
            image, mask, objects = r["image"][..., 0], r["mask"], r["objects"]
            assert 1 <= len(objects["label"]) <= 4
            covered = np.zeros_like(mask, bool)
            for box, label in zip(objects["bbox"], objects["label"]):
                y0, x0, y1, x1 = np.round(box * 64).astype(int)
                ink = mask[y0:y1, x0:x1] == label + 1
                # the box is the ink's: every edge row and column of the box holds some ink
                assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()
                covered[y0:y1, x0:x1] |= ink
            np.testing.assert_array_equal(covered, mask > 0)  # no ink outside its own box
            np.testing.assert_array_equal(mask > 0, image >= digit_scenes.INK)


def test_digit_scenes_draw_only_on_their_own_digits_split(scenes):
    from sklearn.datasets import load_digits

    split = digits.split_indices(load_digits().target)
    for name, source in scenes.items():
        used = np.concatenate([source[i]["objects"]["digit_index"] for i in range(len(source))])
        assert np.isin(used, split[name]).all(), name
        assert len(np.unique(used)) > 0.5 * len(split[name])  # most of the pool is used


def test_digit_scenes_are_deterministic():
    first = next(digit_scenes.scenes("test"))[1]
    again = next(digit_scenes.scenes("test"))[1]
    np.testing.assert_array_equal(first["image"], again["image"])
    np.testing.assert_array_equal(first["objects"]["bbox"], again["objects"]["bbox"])


# --------------------------------------------------------------------------- photos

def test_photos_have_a_fixed_test_split_of_rgb_images():
    train = sources.open_split("photos", "train", None)
    test = sources.open_split("photos", "test", None)
    assert (len(train), len(test)) == (15, 5)
    assert sorted(test[i]["name"] for i in range(5)) == sorted(photos.TEST)
    assert not {train[i]["name"] for i in range(15)} & set(photos.TEST)
    for source in (train, test):
        for i in range(len(source)):
            image = source[i]["image"]
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
    assert sources.image_channels("photos", None) == 3 and sources.num_classes("photos", None) == 0
