"""`samples.png` helpers shared by the tasks: rows of image columns with titles.

A task passes columns of images (input, target, prediction, ...) as NHWC arrays in [0, 1] (or
class-id maps, drawn with a fixed colour table) and a title per example.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def short_name(dataset: str) -> str:
    """`seg:/a/b/membranes` -> `seg:membranes`, for picture titles."""
    kind, sep, rest = dataset.partition(":")
    return f"{kind}:{Path(rest.rstrip('/')).name}" if sep and "/" in rest else dataset


def label_colours(num_classes: int) -> np.ndarray:
    """A fixed (K, 3) colour table: class 0 black, the others from tab20."""
    from matplotlib import colormaps

    table = colormaps["tab20"](np.arange(max(num_classes - 1, 1)) % 20)[:, :3]
    return np.concatenate([np.zeros((1, 3)), table])[:num_classes]


def colourise(ids: np.ndarray, num_classes: int) -> np.ndarray:
    """(.., H, W) class ids -> (.., H, W, 3) colours in [0, 1]."""
    return label_colours(num_classes)[np.clip(ids, 0, num_classes - 1)]


def _show(ax, image: np.ndarray) -> None:
    image = np.clip(np.asarray(image, np.float32), 0, 1)
    grey = image.ndim == 2 or image.shape[-1] == 1
    ax.imshow(image.reshape(image.shape[:2]) if grey else image, cmap="gray" if grey else None,
              vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(columns: list[np.ndarray], titles: list[str], path: Path, *,
               column_names: list[str] | None = None, marked: list[bool] | None = None,
               title: str = "") -> None:
    """One row per example, one column per array in `columns`; `marked` rows get a red frame."""
    from matplotlib.figure import Figure

    n, cols = len(columns[0]), len(columns)
    per_row = 1 if cols > 1 else min(8, n)
    rows = n if cols > 1 else -(-n // per_row)
    fig = Figure(figsize=(1.9 * cols * per_row, 1.9 * rows + 0.5), dpi=100, layout="constrained")
    for i in range(n):
        for j, column in enumerate(columns):
            r, c = (i, j) if cols > 1 else divmod(i, per_row)
            ax = fig.add_subplot(rows, cols * per_row, r * cols * per_row + c + 1)
            _show(ax, column[i])
            if cols == 1:
                ax.set_title(titles[i], fontsize=7)
            elif j == 0:  # rows are examples: the title beside the row, column names on top
                ax.set_ylabel(titles[i], fontsize=7)
            if column_names and i == 0 and cols > 1:
                ax.set_title(column_names[j], fontsize=8)
            if marked and marked[i]:
                for side in ax.spines.values():
                    side.set_edgecolor("red")
                    side.set_linewidth(2.5)
    if title:
        fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
