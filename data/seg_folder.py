"""A folder of images with per-pixel labels as a segmentation dataset: `seg:/path/DIR`.

Layouts (an image and its label share a name; images png, jpg, bmp or tif, labels png, bmp or
tif, never JPEG, whose lossy compression changes ids along every edge):

    DIR/image/NAME.png, DIR/label/NAME.png            one split, `train`
    DIR/train/image/..., DIR/train/label/..., DIR/test/...   splits = those sub-folders
    DIR/classes.txt                                   optional: one class name per line

Records are {"image": uint8 HxWxC, "mask": uint8 HxW class ids, "name": stem}. The image is
read as stored (no EXIF turn, so it stays aligned with its label); C is 1 when every image of
the dataset is grey, else 3 (grey ones converted to RGB), as in data/image_folder.py.

Labels are grey (or palette) images whose values are class ids, or binary masks stored as
0/255. Which, is decided once per dataset from the values of every label file of every split:
values within {0, 255} (255 present, and no classes.txt naming other than 2 classes) are read
as {0, 1}; anything else is read as class ids unchanged. `describe(name)` gives that decision
as one line for the trainer to print, e.g. "labels: binary 0/255 read as 0, 1". The number of
classes is the count of names in classes.txt when there is one (a larger id is then an error),
else the largest id + 1.

Splits slice the stems in natural order ("2" before "10"): `train[:80%]`, `train[80%:]`,
`train[:16]`; `train` is all of them. Opening a split reads every image and label of the
dataset once (to choose the mapping, check each label's size against its image, and fail on a
bad file here, by path, as one UserError); the result is cached until a file changes.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from data import folder
from data import image_folder as imf
from errors import UserError

PREFIX = "seg:"
LAYOUT = "image/NAME.png and label/NAME.png (or train/ and test/ each holding both)"
LOSSY = {".jpg", ".jpeg"}


def is_seg(name: str) -> bool:
    return name.startswith(PREFIX)


@dataclasses.dataclass(frozen=True)
class Pair:
    name: str
    image: Path
    label: Path


# --------------------------------------------------------------------------- layout

def split_folders(name: str) -> dict[str, Path]:
    """{split: folder holding image/ and label/}: the root as `train`, or its sub-folders."""
    root = imf.root_of(name, PREFIX, LAYOUT)
    if _holds_pairs(root):
        return {"train": root}
    splits = {d.name: d for d in imf.visible_subdirs(root) if _holds_pairs(d)}
    if not splits:
        raise UserError(f"dataset {name!r}: {root} has no image/ and label/ folders; expected "
                        f"{root}/{LAYOUT}")
    return splits


def _holds_pairs(path: Path) -> bool:
    return (path / "image").is_dir() or (path / "label").is_dir()


def pairs_in(split_dir: Path) -> list[Pair]:
    """The (image, label) pairs of one split folder, in natural order of their names."""
    for sub, what, other in (("image", "images", "labels"), ("label", "label PNGs", "images")):
        if not (split_dir / sub).is_dir():
            raise UserError(f"{split_dir} has no {sub}/ folder; put the {what} in "
                            f"{split_dir / sub}, named as their {other}")
    images = _by_stem(split_dir / "image")
    labels = _by_stem(split_dir / "label")
    if not images:
        raise UserError(f"{split_dir / 'image'} holds no images "
                        f"({', '.join(sorted(imf.EXTENSIONS))})")
    for stem, path in labels.items():
        if path.suffix.lower() in LOSSY:
            raise UserError(f"label {path} is a JPEG, whose lossy compression changes class ids "
                            "at every edge; save labels as PNG")
    _check_matched(images, labels, split_dir)
    return [Pair(stem, images[stem], labels[stem])
            for stem in sorted(images, key=imf.natural_key)]


def _by_stem(path: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for f in imf.image_files(path):
        if f.stem in files:
            raise UserError(f"two files named {f.stem} in {path} ({files[f.stem].name}, "
                            f"{f.name}); keep one")
        files[f.stem] = f
    return files


def _check_matched(images: dict, labels: dict, split_dir: Path) -> None:
    lonely_images = [s for s in images if s not in labels]
    lonely_labels = [s for s in labels if s not in images]
    hint = (f" ({len(lonely_images)} images and {len(lonely_labels)} labels are unmatched: "
            "names must be equal, image/NAME.png with label/NAME.png)"
            if lonely_images and lonely_labels else "")
    if lonely_images:
        stem = min(lonely_images, key=imf.natural_key)
        raise UserError(f"image {images[stem]} has no label {split_dir / 'label' / stem}.png; "
                        f"add the label or remove the image{hint}")
    if lonely_labels:
        stem = min(lonely_labels, key=imf.natural_key)
        raise UserError(f"label {labels[stem]} has no image in {split_dir / 'image'}; add the "
                        f"image or remove the label")


def all_pairs(name: str) -> dict[str, list[Pair]]:
    return {split: pairs_in(d) for split, d in split_folders(name).items()}


# --------------------------------------------------------------------------- decoding

def read_label(path: Path) -> np.ndarray:
    """The stored label values as uint8 HxW (palette indices as they are, not colours)."""
    pixels = imf.read_array(path, palette_as_colour=False)
    if pixels.ndim == 3 and pixels.shape[-1] in (2, 4):  # grey + alpha, RGBA: drop the alpha
        pixels = pixels[..., :-1]
    if pixels.ndim == 3:
        if not np.all(pixels == pixels[..., :1]):
            raise UserError(f"label {path} is a colour image; save class ids as a grey PNG "
                            "(one id per pixel)")
        pixels = pixels[..., 0]
    if pixels.ndim != 2:
        raise UserError(f"label {path} has shape {pixels.shape}; save one 2-D grey PNG per image")
    if pixels.dtype == bool:  # a 1-bit PNG: ids 0 and 1
        return pixels.astype(np.uint8)
    if not np.issubdtype(pixels.dtype, np.integer):
        raise UserError(f"label {path} has {pixels.dtype} values; class ids must be integers")
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise UserError(f"label {path} has values {pixels.min()}..{pixels.max()}; class ids "
                        "must be 0..255")
    return pixels.astype(np.uint8)


def _inspect(pair: Pair) -> tuple[int, np.ndarray]:
    """(image channels, distinct label values) of one pair, after checking their sizes agree."""
    image = imf.guarded(lambda p: imf.read_image(p, upright=False), pair.image, "image")
    label = imf.guarded(read_label, pair.label, "label")
    if label.shape != image.shape[:2]:
        raise UserError(f"label {pair.label} is {label.shape[0]}x{label.shape[1]} but its image "
                        f"{pair.image} is {image.shape[0]}x{image.shape[1]}; a label must have "
                        "its image's size")
    return image.shape[-1], np.flatnonzero(np.bincount(label.ravel(), minlength=256))


# --------------------------------------------------------------------------- the dataset scan

@dataclasses.dataclass(frozen=True)
class Scan:
    """What one pass over every file decided: the label mapping, classes and channels."""

    binary: bool                 # labels stored as 0/255, read as 0/1
    ids: tuple[int, ...]         # the distinct class ids found, after the mapping
    class_names: tuple[str, ...]
    from_file: bool              # class names (and count) from classes.txt
    channels: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def lut(self) -> np.ndarray:
        """Stored value -> class id, as a 256-entry table."""
        table = np.arange(256, dtype=np.uint8)
        if self.binary:
            table[255] = 1
        return table

    def describe(self) -> str:
        if self.binary:
            return "labels: binary 0/255 read as 0, 1"
        n = self.num_classes
        source = "from classes.txt" if self.from_file else "max id + 1"
        return f"labels: class ids 0..{n - 1} ({n} classes, {source}{self._gaps()})"

    def _gaps(self) -> str:
        """The ids seen, when some ids below the class count never occur."""
        if len(self.ids) == self.num_classes:
            return ""
        more = ", ..." if len(self.ids) > 12 else ""
        return f"; ids seen: {', '.join(map(str, self.ids[:12]))}{more}"


def scan(name: str) -> Scan:
    splits = all_pairs(name)
    root = imf.root_of(name, PREFIX, LAYOUT)
    pairs = tuple(p for ps in splits.values() for p in ps)
    files = [f for p in pairs for f in (p.image, p.label)] + \
        ([root / "classes.txt"] if (root / "classes.txt").is_file() else [])
    return _scan(root, pairs, imf.fingerprint(files))


@functools.lru_cache(maxsize=16)
def _scan(root: Path, pairs: tuple[Pair, ...], stamp: tuple) -> Scan:  # stamp: the cache key
    found = imf.decode_all(list(pairs), _inspect)
    listed = _read_classes(root / "classes.txt")
    values = set().union(*(set(v.tolist()) for _, v in found))
    binary = 255 in values and values <= {0, 255} and (listed is None or len(listed) == 2)
    ids = sorted({1 if binary and v == 255 else v for v in values})
    if listed is not None and not binary:
        _check_within(listed, pairs, found, root)
    names = listed or tuple(str(i) for i in range(max(ids, default=0) + 1))
    channels = 1 if all(c == 1 for c, _ in found) else 3
    return Scan(binary, tuple(ids), names, listed is not None, channels)


def _read_classes(path: Path) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if not names:
        raise UserError(f"{path} lists no class names; write one name per line, or remove it")
    return names


def _check_within(names, pairs, found, root: Path) -> None:
    for pair, (_, values) in zip(pairs, found):
        top = int(values.max(initial=0))
        if top >= len(names):
            raise UserError(f"label {pair.label} has value {top}, beyond the {len(names)} "
                            f"classes of {root / 'classes.txt'} (ids 0..{len(names) - 1}); fix "
                            "the label or add class names")


def num_classes(name: str) -> int:
    return scan(name).num_classes


def class_names(name: str) -> list[str]:
    return list(scan(name).class_names)


def channels(name: str) -> int:
    return scan(name).channels


def describe(name: str) -> str:
    """The label mapping chosen for the dataset, in one line (for the trainer to print)."""
    return scan(name).describe()


class SegSource:
    """Random access (len, [i]) to one split's (image, mask) pairs, decoded when read."""

    def __init__(self, name: str, split: str):
        self.name, self.split = name, split
        splits = all_pairs(name)
        self.pairs = imf.take_slice(splits, split, name)
        if not self.pairs:
            base = folder.parse_split(split)[0]
            raise UserError(f"dataset {name!r} split {split!r} is empty (a slice of "
                            f"{len(splits[base])} pairs); widen it")
        found = scan(name)  # reads (and so validates) every file once
        self.channels, self._lut = found.channels, found.lut()

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        try:
            image = imf.read_image(pair.image, upright=False)
            label = read_label(pair.label)
        except Exception as err:  # a file changed after the dataset was opened
            raise UserError(f"unreadable pair {pair.image}, {pair.label} (changed since the "
                            f"dataset was opened): {' '.join(str(err).split())}") from None
        return {"image": imf.with_channels(image, self.channels), "mask": self._lut[label],
                "name": pair.name}
