"""A user's image files, for `launch.py predict`: the inputs named by a path, read and checked.

Every problem is a one-line UserError naming the file: a path that does not exist, a folder
with no images, an unreadable file, a channel count the run's network cannot take.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from errors import UserError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def input_paths(path: str | Path) -> list[Path]:
    """The image at `path`, or the images directly inside the folder `path`, sorted."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"--input {path} does not exist; give an image or a folder of images")
    if path.is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not found:
        raise UserError(f"--input {path} holds no images ({', '.join(EXTENSIONS)}); "
                        "give an image or a folder of images")
    return found


def read(path: Path) -> np.ndarray:
    """uint8 HxWxC, C = 1 (grey) or 3 (colour; alpha dropped, palettes expanded)."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("1", "L", "I;16", "I", "F"):
                array = np.asarray(image.convert("F"))
                if mode in ("I;16", "I"):
                    array = array / 257.0 if array.max() > 255 else array
                return np.clip(array, 0, 255).astype(np.uint8)[..., None]
            if len(image.getbands()) not in (1, 2, 3, 4):
                raise UserError(f"{path}: {len(image.getbands())} channels ({mode}); convnets here "
                                "take grey or colour images: convert it to RGB or grey first")
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UserError(f"cannot read image {path}: {err}; give a PNG, JPEG, BMP or TIFF "
                        "file") from None


def read_for_model(path: Path, channels: int) -> np.ndarray:
    """uint8 HxWx`channels`: grey images become colour and colour grey (BT.601 luma, as PIL's
    "L") when the run's network was trained on the other kind."""
    image = read(path)
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    if channels == 1:
        return np.asarray(Image.fromarray(image).convert("L"))[..., None]
    raise UserError(f"{path}: the run's network takes {channels}-channel input, which an image "
                    "file cannot give; predict with a run trained on grey or colour images")


def output_dir(out: str | Path) -> Path:
    """The folder `out`, created; a UserError if it is a file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the predictions")
    return out


def save_png(array: np.ndarray, path: Path) -> None:
    """uint8 HxW or HxWxC (C = 1 or 3) as a PNG."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    Image.fromarray(array).save(path)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8, rounded."""
    return np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)
