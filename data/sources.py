"""Random-access sources: any prepared TFDS dataset by name, read with `tfds.data_source`, or a
folder of the user's own images, `folder:/path/to/root` (data/folder.py).

Embedded datasets (today: `digits`) are prepared on first use; any other dataset must have been
prepared into the data dir beforehand (`launch.py prepare NAME` on a connected machine).
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow_datasets as tfds

from data import folder
from errors import UserError

DEFAULT_DATA_DIR = "~/tensorflow_datasets"


def resolve_data_dir(data_dir: str | None) -> str:
    """`--config.data.data_dir`, else $TFDS_DATA_DIR, else TFDS's default."""
    return str(Path(data_dir or os.environ.get("TFDS_DATA_DIR") or DEFAULT_DATA_DIR).expanduser())


def _embedded_builders() -> dict:
    from data.digits import Digits

    return {"digits": Digits}


def builder(name: str, data_dir: str | None):
    """The TFDS builder for `name` (with optional `:version`), prepared or not."""
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
    `skip_bad` (folder datasets only) leaves out unreadable images instead of stopping.
    """
    if folder.is_folder(name):
        return folder.FolderSource(name, split, skip_bad=skip_bad)
    b = builder(name, data_dir)
    if name.split(":")[0] in _embedded_builders() and not is_prepared(b):
        prepare(name, data_dir)
    try:
        return tfds.data_source(name, split=split, data_dir=resolve_data_dir(data_dir),
                                download=False)
    except ValueError as err:  # an unknown split or a bad slice
        raise UserError(f"dataset {name!r} has no split {split!r}: {_first_line(err)}") from None
    except (NotImplementedError, AssertionError, FileNotFoundError):
        raise UserError(
            f"dataset {name!r} is not prepared as ArrayRecord in {resolve_data_dir(data_dir)}; "
            f"run `launch.py prepare {name} --data-dir {resolve_data_dir(data_dir)}` (needs the "
            "network or a manual download dir), or set TFDS_DATA_DIR") from None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def num_classes(name: str, data_dir: str | None) -> int:
    if folder.is_folder(name):
        return len(folder.class_names(name))
    return builder(name, data_dir).info.features["label"].num_classes


def class_names(name: str, data_dir: str | None) -> list[str]:
    """The label names: a TFDS ClassLabel's names ("0", "1", ... when it has none) or folders."""
    if folder.is_folder(name):
        return folder.class_names(name)
    return list(builder(name, data_dir).info.features["label"].names)


def image_channels(name: str, data_dir: str | None) -> int:
    if folder.is_folder(name):
        return folder.CHANNELS
    return builder(name, data_dir).info.features["image"].shape[-1]
