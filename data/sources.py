"""Random-access sources: any prepared TFDS dataset by name, read with `tfds.data_source`, or a
folder of the user's own files:

    folder:/root   class sub-folders of images      {"image", "label"}          data/folder.py
    seg:/root      image/ and label/ (per pixel)    {"image", "mask", "name"}   data/seg_folder.py
    images:/root   a flat folder of images          {"image", "name"}           data/image_folder.py
    signals:/root  class sub-folders of 1-D signals {"signal", "label"}         data/signal_folder.py

Embedded datasets (`digits`, `digit_scenes`, `photos`) are prepared on first use; any other
dataset must have been prepared into the data dir beforehand (`launch.py prepare NAME` on a
connected machine). Records are dicts of NumPy arrays (text as str, a Sequence of objects as
stacked arrays). For a dataset with a per-pixel `mask` the classes are the mask's (a builder
says so with a `mask_classes` list in its metadata); an unlabelled one has 0 classes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from data import folder, image_folder, seg_folder, signal_folder
from errors import UserError

DEFAULT_DATA_DIR = "~/tensorflow_datasets"


def resolve_data_dir(data_dir: str | None) -> str:
    """`--config.data.data_dir`, else $TFDS_DATA_DIR, else TFDS's default."""
    return str(Path(data_dir or os.environ.get("TFDS_DATA_DIR") or DEFAULT_DATA_DIR).expanduser())


def _embedded_builders() -> dict:
    from data.digit_scenes import DigitScenes
    from data.digits import Digits
    from data.photos import Photos
    from data.vibration import Vibration

    return {"digits": Digits, "digit_scenes": DigitScenes, "photos": Photos,
            "vibration": Vibration}


def is_embedded(name: str) -> bool:
    """One of the datasets convjax builds itself, prepared on first use."""
    return name.split(":")[0].split("/")[0] in _embedded_builders()


def is_local(name: str) -> bool:
    """A dataset read straight from the user's files (`folder:`, `seg:`, `images:`)."""
    return (folder.is_folder(name) or seg_folder.is_seg(name) or image_folder.is_images(name)
            or signal_folder.is_signals(name))


def builder(name: str, data_dir: str | None):
    """The TFDS builder for `name` (with optional `:version`), prepared or not."""
    if is_local(name):
        raise UserError(f"{name} is read straight from its image files: train on it with "
                        f"--config.data.name={name}, nothing to prepare")
    data_dir = resolve_data_dir(data_dir)
    base = name.split(":")[0].split("/")[0]
    embedded = _embedded_builders()
    if base in embedded:
        return embedded[base](data_dir=data_dir, file_format="array_record")
    try:
        return tfds.builder(name, data_dir=data_dir, file_format="array_record")
    except tfds.core.registered.DatasetNotFoundError:
        raise UserError(f"unknown dataset {name!r}: not embedded ({', '.join(embedded)}) and not a "
                        "TFDS dataset; see `tfds.list_builders()` for the names") from None


def is_prepared(b) -> bool:
    return b.data_path.exists() and any(
        f.name.startswith(f"{b.name}-") and ".array_record" in f.name for f in b.data_path.iterdir())


def prepare(name: str, data_dir: str | None) -> str:
    """Downloads (if needed) and writes `name` as ArrayRecord files; returns their folder."""
    b = builder(name, data_dir)
    if not is_prepared(b):
        tfds.disable_progress_bar()
        try:
            b.download_and_prepare()
        except Exception as err:  # TFDS raises many kinds: network, manual dir, missing extras
            raise UserError(f"could not prepare dataset {name!r} in {b.data_dir}: "
                            f"{_first_line(err)}; "
                            "prepare it on a connected machine with `launch.py prepare "
                            f"{name}` and copy the folder here") from None
    return str(b.data_path)


def open_split(name: str, split: str, data_dir: str | None, skip_bad: bool = False):
    """A random-access source (len, __getitem__) of dicts for `split` of dataset `name`.

    Reads through `tfds.data_source`, so `tfds.testing.mock_data` stands in for it in tests.
    `skip_bad` (`folder:` datasets only) leaves out unreadable images instead of stopping.
    """
    if folder.is_folder(name):
        return folder.FolderSource(name, split, skip_bad=skip_bad)
    if seg_folder.is_seg(name):
        return seg_folder.SegSource(name, split)
    if image_folder.is_images(name):
        return image_folder.ImageFolderSource(name, split)
    if signal_folder.is_signals(name):
        return signal_folder.SignalFolderSource(name, split)
    b = builder(name, data_dir)
    if name.split(":")[0] in _embedded_builders() and not is_prepared(b):
        prepare(name, data_dir)
    try:
        source = tfds.data_source(name, split=split, data_dir=resolve_data_dir(data_dir),
                                  download=False)
    except ValueError as err:  # an unknown split or a bad slice
        raise UserError(f"dataset {name!r} has no split {split!r}: {_first_line(err)}") from None
    except (NotImplementedError, AssertionError, FileNotFoundError):
        raise UserError(
            f"dataset {name!r} is not prepared as ArrayRecord in {resolve_data_dir(data_dir)}; "
            f"run `launch.py prepare {name} --data-dir {resolve_data_dir(data_dir)}` (needs the "
            "network or a manual download dir), or set TFDS_DATA_DIR") from None
    return PlainRecords(source, b.info.features) if _needs_plain(b.info.features) else source


class PlainRecords:
    """A TFDS source whose records hold str for Text and stacked arrays for a Sequence of dicts,
    where tfds.data_source (without TensorFlow) gives bytes and Python lists of arrays."""

    def __init__(self, source, features):
        self._source = source
        self._infos = features.get_tensor_info()

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        return _plain(self._source[index], self._infos)


def _needs_plain(features) -> bool:
    return any(isinstance(f, (tfds.features.Text, tfds.features.Sequence))
               for f in features.values())


def _plain(value, info):
    if isinstance(value, dict):
        return {k: _plain(v, info[k]) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        if not value:  # no objects: an empty array of the feature's shape
            return np.zeros((0,) + tuple(info.shape[1:]), np.dtype(info.np_dtype))
        return np.stack([np.asarray(v) for v in value])
    return value


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def num_classes(name: str, data_dir: str | None) -> int:
    """The mask's classes where records have a `mask`, else the label's; 0 when unlabelled."""
    return len(class_names(name, data_dir))


def class_names(name: str, data_dir: str | None) -> list[str]:
    """The class names: a mask's (seg: classes.txt or "0".."K-1"; a builder's `mask_classes`),
    else a TFDS ClassLabel's ("0", "1", ... when it has none) or the class folders; [] when
    the dataset has no labels (`images:`, `photos`)."""
    if folder.is_folder(name):
        return folder.class_names(name)
    if seg_folder.is_seg(name):
        return seg_folder.class_names(name)
    if image_folder.is_images(name):
        return []
    if signal_folder.is_signals(name):
        return signal_folder.class_names(name)
    info = builder(name, data_dir).info
    if info.metadata and "mask_classes" in info.metadata:
        return list(info.metadata["mask_classes"])
    if "label" in info.features:
        return list(info.features["label"].names)
    return []


def image_channels(name: str, data_dir: str | None) -> int:
    if folder.is_folder(name):
        return folder.CHANNELS
    if seg_folder.is_seg(name):
        return seg_folder.channels(name)
    if image_folder.is_images(name):
        return image_folder.channels(name)
    if signal_folder.is_signals(name):
        return signal_folder.channels(name)
    features = builder(name, data_dir).info.features
    return features["signal" if "signal" in features else "image"].shape[-1]


def record_keys(name: str, data_dir: str | None) -> list[str]:
    """The keys of the dataset's records (e.g. image, mask, name), for a task to check."""
    if folder.is_folder(name):
        return ["image", "label"]
    if seg_folder.is_seg(name):
        return ["image", "mask", "name"]
    if image_folder.is_images(name):
        return ["image", "name"]
    if signal_folder.is_signals(name):
        return ["signal", "label"]
    return list(builder(name, data_dir).info.features.keys())


def describe(name: str, data_dir: str | None) -> str:
    """One line on how the dataset is read, for the trainer to print at start ('' if nothing
    is worth saying): e.g. "labels: binary 0/255 read as 0, 1" for a `seg:` folder."""
    if seg_folder.is_seg(name):
        return seg_folder.describe(name)
    if image_folder.is_images(name):
        return image_folder.describe(name)
    if signal_folder.is_signals(name):
        return signal_folder.describe(name)
    if folder.is_folder(name):
        return ""
    info = builder(name, data_dir).info
    if info.metadata and "mask_classes" in info.metadata:
        names = list(info.metadata["mask_classes"])
        return f"mask: {len(names)} classes ({', '.join(names)})"
    return ""
