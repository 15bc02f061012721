"""Normalisation statistics: exact against NumPy, cached where the data dir is, read back by
`lookup`, and what `normalize(NAME)` resolves through."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data.augment as augment
from data import pipeline, sources, stats, stats_cli
from errors import UserError


def write_images(root: Path, sizes, seed=0) -> list[np.ndarray]:
    """root/a/*.png and root/b/*.png, random RGB of the given (h, w); returns the pixels."""
    rng = np.random.default_rng(seed)
    images = []
    for i, (h, w) in enumerate(sizes):
        (root / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        images.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        Image.fromarray(images[-1]).save(root / "ab"[i % 2] / f"{i}.png")
    return images


@pytest.fixture(autouse=True)
def no_configured_data_dir(monkeypatch):
    monkeypatch.setattr(stats, "_configured_data_dir", None)


def test_stats_equal_numpy_at_native_size(tmp_path):
    images = write_images(tmp_path / "ds", [(8, 8)] * 7)
    source = sources.open_split(f"folder:{tmp_path / 'ds'}", "train", None)
    result = stats.compute(source, image_size=8)
    pixels = np.stack(images).reshape(-1, 3).astype(np.float64) / 255.0
    np.testing.assert_allclose(result["mean"], pixels.mean(0), atol=1e-6, rtol=0)
    np.testing.assert_allclose(result["std"], pixels.std(0), atol=1e-6, rtol=0)


def test_stats_stream_images_of_unequal_sizes_after_decode(tmp_path):
    write_images(tmp_path / "ds", [(5, 9), (12, 4), (6, 6), (16, 16), (3, 11)])
    source = sources.open_split(f"folder:{tmp_path / 'ds'}", "train", None)
    result = stats.compute(source, image_size=7)
    pixels = np.concatenate([pipeline.decode(source[i], 7)["image"].reshape(-1, 3)
                             for i in range(len(source))]).astype(np.float64)
    np.testing.assert_allclose(result["mean"], pixels.mean(0), atol=1e-6, rtol=0)
    np.testing.assert_allclose(result["std"], pixels.std(0), atol=1e-6, rtol=0)


def test_cli_writes_the_cache_that_lookup_and_normalize_read(tmp_path, capsys):
    write_images(tmp_path / "ds", [(8, 8)] * 4)
    name, data_dir = f"folder:{tmp_path / 'ds'}", tmp_path / "dd"
    with pytest.raises(UserError, match=f"no statistics for {name}; run `launch.py stats {name}`"):
        stats.lookup(name, str(data_dir))
    assert stats_cli.main([name, "--data-dir", str(data_dir), "--image-size", "8"]) == 0
    path = stats.cache_path(name, "train", 8, str(data_dir))
    assert path.parent == data_dir / "convjax_stats" and path.name.endswith("_train_8.json")
    saved = json.loads(path.read_text())
    assert saved["images"] == 4 and saved["image_size"] == 8
    assert str(path) in capsys.readouterr().out
    mean, std = stats.lookup(name, str(data_dir))
    assert mean == tuple(saved["mean"]) and std == tuple(saved["std"]) and len(mean) == 3

    # normalize(NAME) resolves through the run's data dir (open_data sets it) ...
    stats.use_data_dir(str(data_dir))
    image = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    out = augment.host_pipeline(f"normalize('{name}')")(image, np.random.default_rng(0))
    np.testing.assert_allclose(out, (image - np.float32(mean)) / np.float32(std), rtol=1e-5)
    # ... and an unknown name is still the one-line hint.
    with pytest.raises(UserError, match=r"no statistics for nothing_here; run `launch.py stats"):
        augment.host_pipeline("normalize(nothing_here)")


def test_lookup_follows_tfds_data_dir_and_prefers_size_32(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    folder = tmp_path / "convjax_stats"
    folder.mkdir()
    for size, value in ((16, 0.1), (32, 0.2), (64, 0.3)):
        (folder / f"cifar10_train_{size}.json").write_text(
            json.dumps({"mean": [value] * 3, "std": [0.5] * 3}))
    assert stats.lookup("cifar10") == ((0.2,) * 3, (0.5,) * 3)
    assert stats.lookup("cifar10", image_size=64)[0] == (0.3,) * 3
    (folder / "cifar10_train_32.json").unlink()
    assert stats.lookup("cifar10")[0] == (0.3,) * 3  # else the largest cached size
