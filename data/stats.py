"""Per-channel normalisation statistics of a dataset, computed once and cached as JSON.

`launch.py stats NAME` (data/stats_cli.py) streams a split through the pipeline's decode (floats
in [0, 1] at a given image size) and writes the mean and (population) std per channel to

    <data dir>/convjax_stats/<NAME>_<split>_<size>.json

where the data dir is the one the dataset itself is read from (sources.resolve_data_dir:
`data.data_dir`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets). `lookup(NAME)` reads the
train split's file back; it is what the augmentation op `normalize(NAME)` resolves through.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from data import pipeline, sources
from errors import UserError

DEFAULT_SIZE = 32  # base_config's data.image_size
_configured_data_dir: str | None = None


def use_data_dir(data_dir: str | None) -> None:
    """Where `lookup` looks when not told: the run's `data.data_dir`.

    `normalize(NAME)` is resolved inside augmentation pipelines, which never see the config, so
    training/loop.py:open_data sets this once for the run.
    """
    global _configured_data_dir
    _configured_data_dir = data_dir


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")


def stats_dir(data_dir: str | None) -> Path:
    return Path(sources.resolve_data_dir(data_dir)) / "convjax_stats"


def cache_path(name: str, split: str, image_size: int, data_dir: str | None) -> Path:
    return stats_dir(data_dir) / f"{_slug(name)}_{_slug(split)}_{image_size}.json"


def compute(source, image_size: int) -> dict:
    """Mean and std per channel over every pixel of `source`, streamed one image at a time.

    Per-image means and squared deviations are merged with Chan et al.'s pairwise update in
    float64, which stays exact where a running sum of squares would cancel on large sets.
    """
    count, mean, m2 = 0, None, None
    for i in range(len(source)):
        image = pipeline.decode(source[i], image_size)["image"].astype(np.float64)
        pixels = image.reshape(-1, image.shape[-1])
        n, m = len(pixels), pixels.mean(0)
        if mean is None:
            count, mean, m2 = n, m, ((pixels - m) ** 2).sum(0)
            continue
        delta, total = m - mean, count + n
        m2 = m2 + ((pixels - m) ** 2).sum(0) + delta ** 2 * count * n / total
        mean, count = mean + delta * n / total, total
    if mean is None:
        raise UserError("cannot compute statistics of an empty split")
    return {"mean": mean.tolist(), "std": np.sqrt(m2 / count).tolist(),
            "images": len(source), "pixels_per_channel": count}


def compute_and_cache(name: str, split: str = "train", image_size: int = DEFAULT_SIZE,
                      data_dir: str | None = None, skip_bad: bool = False) -> tuple[dict, Path]:
    source = sources.open_split(name, split, data_dir, skip_bad=skip_bad)
    result = {"name": name, "split": split, "image_size": image_size,
              **compute(source, image_size)}
    path = cache_path(name, split, image_size, data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a file
    return result, path


def lookup(name: str, data_dir: str | None = None, image_size: int | None = None
           ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel of `name`'s train split, in [0, 1] units, from the cache.

    Without `image_size`: the size 32 file if there is one, else the largest cached size (the
    statistics barely depend on it: resizing keeps the mean and smooths the std a little).
    """
    data_dir = data_dir if data_dir is not None else _configured_data_dir
    if image_size is not None:
        candidates = [cache_path(name, "train", image_size, data_dir)]
    else:
        prefix = f"{_slug(name)}_train_"
        found = {int(p.stem[len(prefix):]): p for p in stats_dir(data_dir).glob(f"{prefix}*.json")
                 if p.stem[len(prefix):].isdigit()}
        candidates = [found[DEFAULT_SIZE if DEFAULT_SIZE in found else max(found)]] if found else []
    if not candidates or not candidates[0].is_file():
        raise UserError(f"no statistics for {name}; run `launch.py stats {name}`"
                        + (f" --image-size {image_size}" if image_size else "")
                        + (f" --data-dir {data_dir}" if data_dir else ""))
    try:
        saved = json.loads(candidates[0].read_text())
        mean, std = tuple(map(float, saved["mean"])), tuple(map(float, saved["std"]))
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"statistics file {candidates[0]} is damaged ({err}); run "
                        f"`launch.py stats {name}` again") from None
    if min(std) <= 0:
        raise UserError(f"{name} has a constant channel (std {std} in {candidates[0]}); "
                        "normalize it with explicit numbers, normalize(mean=..., std=...)")
    return mean, std
