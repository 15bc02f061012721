"""A flat folder of unlabelled images as a dataset, for image-to-image tasks: `images:/path/DIR`.

Layouts (files are png, jpg, bmp or tif; anything else in the folder is ignored):

    DIR/*.png                          one split, `train`
    DIR/train/*.png, DIR/test/*.png    splits = the sub-folders that hold images

Records are {"image": uint8 HxWxC, "name": file stem}. C is 1 when every image of the dataset
(all splits) is grey, else 3: in a folder mixing grey and colour files the grey ones are
converted to RGB (three equal channels), so the model sees one channel count. Alpha is
dropped, a palette image becomes RGB, 16-bit images are scaled to 8 bits, and a phone photo is
turned upright by its EXIF orientation. Sizes may differ; resizing or cropping is the
pipeline's business.

A split is a TFDS-style slice (`train[:80%]`, `train[80%:]`, `train[:16]`) of the names in
natural order ("2" before "10"), so a slice is the same on every machine and easy to predict.
Every file is decoded once when the dataset is first opened in a process (the channel count
needs them all, and a corrupt file then fails here, by path, as one UserError rather than later
inside a Grain worker); the result is cached until a file changes.

data/seg_folder.py builds on the layout, ordering, slicing and decoding helpers here.
"""

from __future__ import annotations

import functools
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from data import folder
from errors import UserError

PREFIX = "images:"
EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
TIFF = {".tif", ".tiff"}


def is_images(name: str) -> bool:
    return name.startswith(PREFIX)


# --------------------------------------------------------------------------- layout and order

def root_of(name: str, prefix: str, layout: str) -> Path:
    """The dataset's folder; `layout` says in the error what it should hold."""
    root = Path(name[len(prefix):]).expanduser()
    if not root.is_dir():
        raise UserError(f"dataset {name!r}: {root} is not a folder; give {prefix}/path/to/DIR "
                        f"holding {layout}")
    return root


def visible_subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files(path: Path) -> list[Path]:
    """The image files directly in `path`, in natural order of their names."""
    files = [p for p in path.iterdir()
             if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_key(p.name))


def natural_key(text: str) -> tuple:
    """Sort key comparing digit runs as numbers ("2" < "10"); the text itself breaks ties."""
    parts = re.split(r"(\d+)", text)
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in parts if t), text


def take_slice(items: dict[str, list], split: str, name: str) -> list:
    """`split` (e.g. `train[:80%]`) applied to `items[base split]`, kept in its order."""
    base, start, stop = folder.parse_split(split)
    if base not in items:
        raise UserError(f"dataset {name!r} has no split {base!r}; its splits: {', '.join(items)}")
    n = len(items[base])
    # folder.py's bounds, so `folder:`, `images:` and `seg:` slice alike.
    return items[base][slice(folder._bound(start, n, split), folder._bound(stop, n, split))]


def split_folders(name: str) -> dict[str, Path]:
    """{split: folder of images}: the root itself as `train`, or its sub-folders holding images."""
    layout = "*.png (or train/*.png and test/*.png)"
    root = root_of(name, PREFIX, layout)
    if image_files(root):
        return {"train": root}
    splits = {d.name: d for d in visible_subdirs(root) if image_files(d)}
    if not splits:
        raise UserError(f"dataset {name!r}: {root} holds no images "
                        f"({', '.join(sorted(EXTENSIONS))}); expected {root}/{layout}")
    return splits


# --------------------------------------------------------------------------- decoding

def read_array(path: Path, *, upright: bool = False, palette_as_colour: bool = True) -> np.ndarray:
    """The stored pixels, (H, W) or (H, W, C) in the file's own dtype; raises on a bad file.

    tif goes through scikit-image (tifffile: 16-bit, multi-sample and float tifs PIL cannot
    read); everything else through PIL. A palette image's pixels are its palette indices unless
    `palette_as_colour` (a label PNG stores class ids as indices; a photo wants its colours).
    """
    if path.suffix.lower() in TIFF:
        import skimage.io

        return np.asarray(skimage.io.imread(path))
    with Image.open(path) as im:
        if upright:
            im = ImageOps.exif_transpose(im)
        if im.mode in ("P", "PA") and palette_as_colour:
            im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
        elif im.mode == "CMYK":
            im = im.convert("RGB")
        return np.asarray(im)


def to_uint8(pixels: np.ndarray, path: Path) -> np.ndarray:
    """Pixels as uint8: bool as 0/255, 16-bit (and 32-bit integer) scaled from 0..65535."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == bool:
        return pixels.astype(np.uint8) * 255
    if np.issubdtype(pixels.dtype, np.integer):
        wide = np.clip(pixels.astype(np.int64), 0, 65535)
        return np.round(wide / 257).astype(np.uint8)
    raise UserError(f"image {path} has {pixels.dtype} pixels; save it with 8- or 16-bit "
                    "integer pixels")


def as_hwc(pixels: np.ndarray, path: Path) -> np.ndarray:
    """uint8 (H, W, 1) for a grey file, (H, W, 3) for a colour one (alpha dropped)."""
    pixels = to_uint8(pixels, path)
    if pixels.ndim == 2:
        return pixels[..., None]
    if pixels.ndim == 3 and pixels.shape[-1] in (1, 2):   # grey, grey + alpha
        return pixels[..., :1]
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):   # RGB, RGBA
        return pixels[..., :3]
    raise UserError(f"image {path} has shape {pixels.shape} (several pages or a volume?); save "
                    "one 2-D grey or colour image per file")


def read_image(path: Path, *, upright: bool = True) -> np.ndarray:
    """uint8 HxWx1 (grey) or HxWx3 (colour); raises what the decoder raises on a bad file."""
    return as_hwc(read_array(path, upright=upright), path)


def with_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """A grey HxWx1 image repeated to RGB when the dataset has 3 channels."""
    return np.repeat(image, 3, axis=-1) if image.shape[-1] != channels else image


def guarded(read, path: Path, kind: str):
    """`read(path)`, a decoder's exception turned into one UserError naming the file."""
    try:
        return read(path)
    except UserError:
        raise
    except Exception as err:  # PIL/tifffile raise OSError, ValueError, SyntaxError, ...
        why = " ".join(str(err).split()) or type(err).__name__
        raise UserError(f"unreadable {kind} {path}: {why}; replace or remove it") from None


def decode_all(items: list, read) -> list:
    """`read(item)` for every item, in threads (decoding releases the GIL); the first item
    that fails (in order) raises its error."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(read, items))


def fingerprint(paths) -> tuple:
    """(path, mtime, size) of each file: a cache key that changes when a file does."""
    stats = [(str(p), p.stat()) for p in paths]
    return tuple((path, s.st_mtime_ns, s.st_size) for path, s in stats)


# --------------------------------------------------------------------------- the dataset

def channels(name: str) -> int:
    """1 if every image of every split is grey, else 3 (see the module docstring)."""
    files = [p for d in split_folders(name).values() for p in image_files(d)]
    return _channels(fingerprint(files))


@functools.lru_cache(maxsize=16)
def _channels(files: tuple) -> int:  # keyed by the fingerprint: a changed file is read again
    shapes = decode_all([Path(f[0]) for f in files],
                        lambda p: guarded(read_image, p, "image").shape)
    return 1 if all(s[-1] == 1 for s in shapes) else 3


def describe(name: str) -> str:
    c = channels(name)
    return "images: grey, 1 channel" if c == 1 else \
        "images: colour, 3 channels (grey files, if any, converted to RGB)"


class ImageFolderSource:
    """Random access (len, [i]) to one split's images, decoded when read."""

    def __init__(self, name: str, split: str):
        self.name, self.split = name, split
        files = {s: image_files(d) for s, d in split_folders(name).items()}
        self.files = take_slice(files, split, name)
        if not self.files:
            raise UserError(f"dataset {name!r} split {split!r} is empty (a slice of "
                            f"{len(files[folder.parse_split(split)[0]])} images); widen it")
        self.channels = channels(name)  # decodes (and so validates) every file once

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path = self.files[index]
        try:
            image = read_image(path)
        except Exception as err:  # the file changed after it was validated
            raise UserError(f"unreadable image {path} (changed since the dataset was opened): "
                            f"{' '.join(str(err).split())}; replace or remove it") from None
        return {"image": with_channels(image, self.channels), "name": path.stem}
