"""The dataset patches that excite one unit most (Zeiler and Fergus 2014, fig. 2; Girshick et
al. 2014): for a channel of a layer, the images where it fires highest, each cropped to the
receptive field of the position where it fires.

The receptive field (size, effective stride and the centre of position 0's field) is the
architecture sheet's (analysis/sheet.py), so the crop is exact for any stack of convolutions
and pooling, padding included; the part of a field beyond the image is shown grey. One patch
per image (its strongest position), the images ranked by it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from analysis import figures, taps
from errors import UserError


@dataclasses.dataclass
class Found:
    layer: str
    channel: int
    field: int                       # receptive field side, input pixels
    values: list[float]              # activation at the patch's position, highest first
    patches: list[np.ndarray]        # (field, field, C) crops of the input
    images: list[int]                # their indices in the dataset


def field_of(model: nnx.Module, image_shape: tuple[int, ...], layer: str):
    """(size, jump, centre of position 0's field), one per spatial axis, from the sheet."""
    from analysis import sheet

    rows = {row.name: row for row in sheet.summarize_module(model, image_shape,
                                                             check_xla=False).layers}
    usable = [n for n, r in rows.items() if len(r.output_shape) == 3 and r.receptive_field
              and all(not isinstance(v, str) for v in r.receptive_field)]
    if layer not in usable:
        raise UserError(f"--layer {layer!r} has no local receptive field in the architecture "
                        f"sheet; choose one of: {', '.join(usable) or '(none)'}")
    row = rows[layer]
    return row.receptive_field, row.stride, row.field_center


def _crop(image: np.ndarray, top: int, left: int, size: int, fill: float = 0.5) -> np.ndarray:
    h, w, c = image.shape
    out = np.full((size, size, c), fill, image.dtype)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + size, h), min(left + size, w)
    if r1 > r0 and c1 > c0:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = image[r0:r1, c0:c1]
    return out


def top_patches(model: nnx.Module, images: np.ndarray, layer: str, channel: int | None = None,
                *, k: int = 16, batch: int = 256) -> Found:
    shape = taps.check_layer(model, images.shape[1:], layer, taps.spatial,
                             "layer with a spatial feature map")
    size, jump, centre = field_of(model, images.shape[1:], layer)
    read = taps.pure(model, lambda m, x: taps.run(m, x, (layer,), stop=True)[1][layer])
    maps = np.concatenate([np.asarray(read(jnp.asarray(images[i:i + batch])))
                           for i in range(0, len(images), batch)])
    peaks = maps.reshape(len(maps), -1, shape[-1]).max(axis=1)     # (N, C)
    if channel is None:
        channel = int(np.argmax(peaks.mean(axis=0)))
    if not 0 <= channel < shape[-1]:
        raise UserError(f"--channel {channel}: layer {layer} has channels 0 to {shape[-1] - 1}")
    best = np.argsort(-peaks[:, channel], kind="stable")[:k]
    side = int(max(size))
    found = Found(layer, channel, side, [], [], [])
    for n in best:
        i, j = np.unravel_index(np.argmax(maps[n, ..., channel]), shape[:2])
        top = int(np.floor(centre[0] + i * jump[0] - (side - 1) / 2))
        left = int(np.floor(centre[1] + j * jump[1] - (side - 1) / 2))
        found.patches.append(_crop(images[n], top, left, side))
        found.values.append(float(maps[n, i, j, channel]))
        found.images.append(int(n))
    return found


def top_patches_figure(found: Found, path: Path, *, title: str) -> Path:
    rows, cols = figures.grid_shape(len(found.patches), 8)
    fig, axes = figures.figure(rows, cols, panel=1.2, title=title)
    for ax, patch, value, n in zip(axes.flat, found.patches, found.values, found.images):
        figures.show_image(ax, patch, f"image {n}: {value:.2f}", 6)
    figures.hide_unused(axes, len(found.patches))
    return figures.save(fig, path)
