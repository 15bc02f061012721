"""Drawing helpers shared by the analyses: a titled figure of image panels, saved as a PNG.

Every panel gets a title and every colour scale a colour bar, so a picture read on its own
says what it shows.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def figure(rows: int, cols: int, *, panel: float = 1.8, title: str = "", extra_height=0.6):
    """A matplotlib Figure (no pyplot: no global state, no display) and its axes grid."""
    from matplotlib.figure import Figure

    import textwrap

    width = panel * cols + 0.6
    fig = Figure(figsize=(width, panel * rows + extra_height), dpi=110, layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    if title:  # wrapped to the figure's width (about 13 characters an inch at 10 pt)
        fig.suptitle(textwrap.fill(title, max(30, int(width * 13))), fontsize=10)
    return fig, axes


def save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def as_display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """HxWxC in [0, 1] -> what imshow takes: HxW with a grey colour map, or HxWx3."""
    image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    if image.ndim == 3 and image.shape[-1] == 1:
        return image[..., 0], "gray"
    if image.ndim == 2:
        return image, "gray"
    return image[..., :3], None


def show_image(ax, image: np.ndarray, title: str = "", fontsize: int = 8) -> None:
    data, cmap = as_display(image)
    ax.imshow(data, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    off(ax)
    if title:
        ax.set_title(title, fontsize=fontsize)


def show_map(ax, values: np.ndarray, title: str = "", *, cmap: str = "viridis", vmin=None,
             vmax=None, colorbar: bool = True, fontsize: int = 8):
    """A 2-D map with its own colour bar (or the shared `vmin`/`vmax`)."""
    im = ax.imshow(np.asarray(values, np.float32), cmap=cmap, vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    off(ax)
    if title:
        ax.set_title(title, fontsize=fontsize)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
    return im


def overlay(ax, image: np.ndarray, heat: np.ndarray, title: str = "", fontsize: int = 8):
    """`heat` (HxW, >= 0) in a jet colour map over the grey image, half transparent."""
    data, _ = as_display(image)
    grey = data if data.ndim == 2 else data.mean(axis=-1)
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    im = ax.imshow(np.asarray(heat, np.float32), cmap="jet", alpha=0.5, interpolation="bilinear")
    off(ax)
    if title:
        ax.set_title(title, fontsize=fontsize)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)


def off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def hide_unused(axes, used: int) -> None:
    for ax in axes.flat[used:]:
        ax.set_axis_off()


def grid_shape(n: int, max_cols: int = 8) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def to_unit(image: np.ndarray) -> np.ndarray:
    """Min-max scaled to [0, 1] (a constant image becomes 0.5)."""
    image = np.asarray(image, np.float32)
    lo, hi = image.min(), image.max()
    return np.full_like(image, 0.5) if hi - lo < 1e-12 else (image - lo) / (hi - lo)
