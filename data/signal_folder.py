"""A folder of the user's own 1-D signals as a dataset: `data.name = "signals:/path/to/root"`.

Layouts, as `folder:` for images (class names are the sorted class sub-folder names):

    root/train/CLASS/*.npy, root/test/CLASS/*.wav   splits = the root's sub-folders
    root/CLASS/*.npy                                one split, `train` (slice it: train[:80%])

A file is a `.npy` array of shape (T,) or (T, C), samples first, or a `.wav` file (PCM
integers scaled to [-1, 1], or float); records are {"signal": float32 (T, C), "label": int}.
Every signal of a dataset must have the same T and C, and every `.wav` the same sample rate
(a `.npy` has none; a `sample_rate.txt` in the root, one integer in Hz, states it and is then
checked against the `.wav` files). All files are checked when a split is opened, so a wrong
one is a one-line UserError naming it, before anything trains. Splits slice over a fixed order
(a hash of each file's path inside its split), as `folder:` does.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from pathlib import Path

import numpy as np

from data import folder
from errors import UserError

PREFIX = "signals:"
EXTENSIONS = (".npy", ".wav")
RATE_FILE = "sample_rate.txt"


def is_signals(name: str) -> bool:
    return name.startswith(PREFIX)


def root_of(name: str) -> Path:
    root = Path(name[len(PREFIX):]).expanduser()
    if not root.is_dir():
        raise UserError(f"dataset {name!r}: {root} is not a folder; give signals:/path/to/root "
                        "holding train/CLASS/*.npy (or *.wav) or CLASS/*.npy")
    return root


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _signals_in(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())


def input_paths(path: str | Path) -> list[Path]:
    """The signal file at `path`, or the signal files directly inside the folder `path`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"--input {path} does not exist; give a signal (.npy, .wav) or a "
                        "folder of them")
    found = [path] if path.is_file() else _signals_in(path)
    if not found:
        raise UserError(f"--input {path} holds no signals ({', '.join(EXTENSIONS)}); give a "
                        "signal or a folder of them")
    return found


def split_dirs(name: str) -> dict[str, Path]:
    """{split: folder of class folders}; a root whose sub-folders hold signals is `train`."""
    root = root_of(name)
    subs = _subdirs(root)
    if not subs:
        raise UserError(f"dataset {name!r}: {root} has no sub-folders; expected "
                        f"{root}/CLASS/*.npy or {root}/train/CLASS/*.npy")
    if any(_signals_in(s) for s in subs):
        return {"train": root}
    return {s.name: s for s in subs}


def class_names(name: str) -> list[str]:
    return sorted({c.name for d in split_dirs(name).values() for c in _subdirs(d)})


def read(path: Path) -> tuple[np.ndarray, int | None]:
    """(float32 (T, C) signal, sample rate or None for .npy); UserError if it is not one."""
    if path.suffix.lower() == ".wav":
        from scipy.io import wavfile

        try:
            with warnings.catch_warnings():  # unknown chunks (metadata) are not our problem
                warnings.simplefilter("ignore", wavfile.WavFileWarning)
                rate, data = wavfile.read(path)
        except (ValueError, OSError) as err:
            raise UserError(f"cannot read {path}: {' '.join(str(err).split())}; give a PCM or "
                            "float WAV file") from None
        return _as_float(data, path), int(rate)
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise UserError(f"cannot read {path}: {' '.join(str(err).split())}; give an array saved "
                        "with numpy.save") from None
    return _as_float(data, path), None


def _as_float(data: np.ndarray, path: Path) -> np.ndarray:
    if not (np.issubdtype(data.dtype, np.number) and not np.iscomplexobj(data)):
        raise UserError(f"{path}: dtype {data.dtype} is not a real number type; save the "
                        "signal as float32 or integer samples")
    if np.issubdtype(data.dtype, np.integer):  # PCM: full scale to [-1, 1]
        info = np.iinfo(data.dtype)
        middle = (int(info.max) + int(info.min) + 1) / 2  # 128 for uint8 WAV, 0 for signed
        data = (data.astype(np.float64) - middle) / (info.max - middle)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise UserError(f"{path}: shape {data.shape} is not a signal of T samples x C channels; "
                        "save it as (T,) or (T, C)")
    if data.shape[1] > data.shape[0]:
        raise UserError(f"{path}: shape {data.shape} has more channels than samples, so it "
                        "looks like channels x samples; save it transposed, as (T, C)")
    return data.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Layout:
    """What every signal of the dataset shares."""

    length: int
    channels: int
    sample_rate: int | None


def _stated_rate(name: str) -> int | None:
    path = root_of(name) / RATE_FILE
    if not path.exists():
        return None
    try:
        rate = int(path.read_text().strip())
    except ValueError:
        rate = 0
    if rate <= 0:
        raise UserError(f"{path} must hold one positive integer, the sample rate in Hz")
    return rate


@functools.lru_cache(maxsize=16)
def _checked(name: str) -> tuple[dict[str, list[tuple[Path, int]]], Layout]:
    """Every split's (path, label) in the fixed order, and the layout, after reading and
    checking every file once (cached: the train and eval sources of a run share it)."""
    labels = {c: i for i, c in enumerate(class_names(name))}
    splits, first, layout = {}, None, None
    rate = _stated_rate(name)
    for split, base in split_dirs(name).items():
        files = [(p, labels[c.name]) for c in _subdirs(base) for p in _signals_in(c)]
        files.sort(key=lambda f: folder._order_key(f[0].relative_to(base).as_posix()))
        for path, _ in files:
            data, file_rate = read(path)
            if layout is None:
                first, layout = path, Layout(data.shape[0], data.shape[1], rate or file_rate)
            if data.shape != (layout.length, layout.channels):
                raise UserError(f"{path}: shape {data.shape}, but {first} has "
                                f"({layout.length}, {layout.channels}); every signal of a "
                                "dataset needs the same samples and channels: crop or pad them")
            if file_rate is not None and layout.sample_rate not in (None, file_rate):
                source = first if rate is None else RATE_FILE
                raise UserError(f"{path}: sample rate {file_rate} Hz, but the dataset's is "
                                f"{layout.sample_rate} Hz ({source}); resample it to that "
                                "rate first")
            if file_rate is not None and layout.sample_rate is None:
                layout = dataclasses.replace(layout, sample_rate=file_rate)
        splits[split] = files
    if layout is None:
        raise UserError(f"dataset {name!r} holds no signals ({', '.join(EXTENSIONS)}) in its "
                        "class folders")
    return splits, layout


def layout(name: str) -> Layout:
    return _checked(name)[1]


def channels(name: str) -> int:
    return layout(name).channels


def describe(name: str) -> str:
    shape = layout(name)
    rate = f" at {shape.sample_rate} Hz" if shape.sample_rate else ""
    return f"signals: {shape.length} samples x {shape.channels} channel(s){rate}"


class SignalFolderSource:
    """Random access (len, [i]) to one split's signals, read when asked for."""

    def __init__(self, name: str, split: str):
        base, start, stop = folder.parse_split(split)
        splits, _ = _checked(name)
        if base not in splits:
            raise UserError(f"dataset {name!r} has no split {base!r}; its splits: "
                            f"{', '.join(splits)}")
        files = splits[base]
        n = len(files)
        self.files = files[slice(folder._bound(start, n, split), folder._bound(stop, n, split))]
        if not self.files:
            raise UserError(f"dataset {name!r} split {split!r} holds no signals")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path, label = self.files[index]
        return {"signal": read(path)[0], "label": label}
