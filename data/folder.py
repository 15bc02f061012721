"""A folder of the user's own images as a dataset: `data.name = "folder:/path/to/root"`.

Layouts (class names are the sorted class sub-folder names, labels their index):

    root/train/CLASS/*.png, root/test/CLASS/*.jpg   splits = the root's sub-folders
    root/CLASS/*.png                                one split, `train`

Images are decoded with PIL and converted to RGB (greyscale, palette and RGBA alike), so a
dataset always has 3 channels; records are {"image": uint8 HWC, "label": int} like the TFDS
sources, and data/pipeline.py resizes each to image_size x image_size (aspect not kept). A
split takes TFDS-style slices, `train[:90%]`, `train[10:-10]`, over a fixed order (by a hash
of each file's path inside its split, so a slice mixes classes and adding a file moves no other).

Every file is decoded once when a split is opened: a corrupt file then fails here, by path, as
one UserError, rather than later inside a Grain worker. That costs one pass over the split
(seconds for thousands of small files, minutes for ImageNet-sized folders); it is the price of
a clear error. With `data.skip_bad=True` bad files are left out, counted and reported instead.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from errors import UserError

PREFIX = "folder:"
MODE = "RGB"  # every image converted to this PIL mode; CHANNELS follows from it
CHANNELS = 3
EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
SKIP_FIX = "remove it or set --config.data.skip_bad=True"


def is_folder(name: str) -> bool:
    return name.startswith(PREFIX)


def root_of(name: str) -> Path:
    root = Path(name[len(PREFIX):]).expanduser()
    if not root.is_dir():
        raise UserError(f"dataset {name!r}: {root} is not a folder; give "
                        "folder:/path/to/root holding train/CLASS/*.png or CLASS/*.png")
    return root


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def split_dirs(name: str) -> dict[str, Path]:
    """{split: folder of class folders}; a root whose sub-folders hold images is split `train`."""
    root = root_of(name)
    subs = _subdirs(root)
    if not subs:
        raise UserError(f"dataset {name!r}: {root} has no sub-folders; expected "
                        f"{root}/CLASS/*.png or {root}/train/CLASS/*.png")
    if any(p.suffix.lower() in EXTENSIONS for s in subs for p in s.iterdir()):
        return {"train": root}
    return {s.name: s for s in subs}


def class_names(name: str) -> list[str]:
    """Sorted class folder names over all splits, so labels agree between train and test."""
    return sorted({c.name for d in split_dirs(name).values() for c in _subdirs(d)})


_SLICE = re.compile(r"^([^\[\]]+)(?:\[\s*([-\d%\s]*)\s*:\s*([-\d%\s]*)\s*\])?$")


def _bound(text: str, n: int, split: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return round(n * int(text[:-1]) / 100) if text.endswith("%") else int(text)
    except ValueError:
        raise UserError(f"bad split slice {split!r}; write e.g. train[:90%] or train[10:200]") \
            from None


def parse_split(split: str) -> tuple[str, str, str]:
    match = _SLICE.match(split.strip())
    if not match:
        raise UserError(f"bad split {split!r}; write e.g. train, test, train[:90%], train[10:200]")
    return match.group(1).strip(), match.group(2) or "", match.group(3) or ""


def _order_key(relative: str) -> str:
    return hashlib.sha1(relative.encode()).hexdigest()


def list_split(name: str, split: str) -> list[tuple[Path, int]]:
    """(path, label) of every image file in `split` (sliced), in the dataset's fixed order."""
    base, start, stop = parse_split(split)
    dirs = split_dirs(name)
    if base not in dirs:
        raise UserError(f"dataset {name!r} has no split {base!r}; its splits: {', '.join(dirs)}")
    labels = {c: i for i, c in enumerate(class_names(name))}
    files = [(p, labels[c.name]) for c in _subdirs(dirs[base]) for p in _images_in(c)]
    files.sort(key=lambda f: _order_key(f[0].relative_to(dirs[base]).as_posix()))
    n = len(files)
    return files[slice(_bound(start, n, split), _bound(stop, n, split))]


def read_image(path: Path) -> np.ndarray:
    """uint8 HWC in MODE; raises what PIL raises (OSError, ValueError, ...) on a bad file."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert(MODE))  # phone photos: upright


def _problem(path: Path) -> str | None:
    """None if the file decodes, else PIL's complaint in one line."""
    try:
        with Image.open(path) as im:
            im.verify()  # structure and checksums (PNG CRCs)
        read_image(path)  # verify() does not decode: a truncated JPEG only fails here
    except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBomb...
        return " ".join(str(err).split()) or type(err).__name__
    return None


class FolderSource:
    """Random access (len, [i]) to one split's images, each decoded when read."""

    def __init__(self, name: str, split: str, skip_bad: bool = False):
        self.name, self.split = name, split
        files = list_split(name, split)
        # Decoding releases the GIL, so threads validate a large folder several times faster.
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            problems = list(pool.map(_problem, [p for p, _ in files]))
        bad = [(p, why) for (p, _), why in zip(files, problems) if why]
        if bad and not skip_bad:
            path, why = bad[0]
            raise UserError(f"unreadable image {path}: {why}; {SKIP_FIX}")
        self.skipped = [p for p, _ in bad]
        if bad:
            print(f"{name} {split}: skipped {len(bad)} unreadable image(s): "
                  f"{', '.join(map(str, self.skipped[:3]))}{', ...' if len(bad) > 3 else ''}",
                  file=sys.stderr)
        self.files = [f for f, why in zip(files, problems) if not why]
        if not self.files:
            raise UserError(f"dataset {name!r} split {split!r} holds no readable images "
                            f"({', '.join(sorted(EXTENSIONS))})")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path, label = self.files[index]
        try:
            image = read_image(path)
        except Exception as err:  # the file changed after it was validated
            raise UserError(f"unreadable image {path} (changed since the dataset was opened): "
                            f"{' '.join(str(err).split())}; {SKIP_FIX}") from None
        return {"image": image, "label": label}
