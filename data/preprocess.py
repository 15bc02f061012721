"""The evaluation transform of published ImageNet weights, for runs that carry it
(`data.resize_shorter`, `data.center_crop`, `data.mean`, `data.std`; an imported run sets them).

torchvision's standard transform is `Resize(256)` (the shorter side to 256, bilinear, on the
PIL image), `CenterCrop(224)`, `ToTensor()` (/255) and `Normalize(mean, std)`. This is the
same sequence on the same PIL operations, so an image reaches an imported network as it reaches
torchvision's; timm's eval transform is the same with its own sizes and, for some weights,
bicubic resizing (`data.resize_interpolation`). A grey image is repeated to three channels
when the network takes three.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def resize_shorter(image: np.ndarray, size: int, interpolation: str = "bilinear") -> np.ndarray:
    """uint8 HWC with its shorter side resized to `size` (torchvision's Resize(int): the longer
    side is int(size * long / short)), bilinear or bicubic."""
    h, w = image.shape[:2]
    if min(h, w) == size:
        return image
    new_h, new_w = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    out = np.asarray(pil.resize((new_w, new_h), RESAMPLING[interpolation]))
    return out[..., None] if out.ndim == 2 else out


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window, offsets rounded as torchvision's CenterCrop."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise ValueError(f"a {h}x{w} image is smaller than the {size}x{size} crop")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return image[top:top + size, left:left + size]


def imagenet_style(image: np.ndarray, shorter: int, crop: int, mean, std,
                   interpolation: str = "bilinear") -> np.ndarray:
    """uint8 HWC -> float32 HWC: resize the shorter side, centre-crop, /255, normalise."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if len(mean) == 3 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    image = center_crop(resize_shorter(image, shorter, interpolation), crop or shorter)
    x = image.astype(np.float32) / 255.0
    if len(mean):
        x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return x


def decode(record: dict, d) -> dict:
    """A classification record through the config `d` (c.data)'s transform."""
    image = imagenet_style(record["image"], d.resize_shorter, d.center_crop, d.mean, d.std,
                           d.get("resize_interpolation", "bilinear"))
    return {"image": image, "label": np.int32(record["label"])}
