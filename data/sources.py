"""Random-access sources: any prepared TFDS dataset by name, read with `tfds.data_source`.

Embedded datasets (today: `digits`) are prepared on first use; any other dataset must have been
prepared into the data dir beforehand (`launch.py prepare NAME` on a connected machine).
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow_datasets as tfds

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
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"could not prepare dataset {name!r} in {b.data_dir}: {first_line}; "
                            "prepare it on a connected machine with `launch.py prepare "
                            f"{name}` and copy the folder here") from None
    return str(b.data_path)


def open_split(name: str, split: str, data_dir: str | None):
    """A random-access source (len, __getitem__) of dicts for `split` of dataset `name`."""
    b = builder(name, data_dir)
    if not is_prepared(b):
        if name.split(":")[0] in _embedded_builders():
            prepare(name, data_dir)
            b = builder(name, data_dir)  # a fresh builder reads the split info just written
        else:
            raise UserError(
                f"dataset {name!r} is not prepared in {resolve_data_dir(data_dir)}; run "
                f"`launch.py prepare {name} --data-dir {resolve_data_dir(data_dir)}` "
                "(needs the network or a manual download dir), or set TFDS_DATA_DIR")
    try:
        return b.as_data_source(split=split)
    except (ValueError, KeyError) as err:
        splits = ", ".join(b.info.splits.keys())
        raise UserError(f"dataset {name!r} has no split {split!r} ({err}); its splits: {splits}") \
            from None


def num_classes(name: str, data_dir: str | None) -> int:
    label = builder(name, data_dir).info.features["label"]
    return label.num_classes
