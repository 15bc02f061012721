"""Occlusion sensitivity (Zeiler and Fergus 2014, fig. 7): the class's probability as a grey
square slides over the input. Where covering the image makes the probability fall is what
the network looks at."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from analysis import figures, taps


def occlusion(model: nnx.Module, image: np.ndarray, class_id: int, *, size: int = 6,
              stride: int = 2, fill: float = 0.5, batch: int = 256) -> np.ndarray:
    """(rows, cols) probability of `class_id` with the square's top-left corner at
    (row * stride, col * stride); `fill` is the square's grey value."""
    h, w = image.shape[:2]
    corners = [(i, j) for i in range(0, h - size + 1, stride)
               for j in range(0, w - size + 1, stride)]
    rows = len(range(0, h - size + 1, stride))
    ii, jj = np.mgrid[:h, :w]
    masks = np.stack([(ii >= i) & (ii < i + size) & (jj >= j) & (jj < j + size)
                      for i, j in corners])[..., None]
    probs = taps.pure(model, lambda m, x, c: jax.nn.softmax(m(x), axis=-1)[:, c])
    occluded = np.where(masks, np.float32(fill), image[None])
    out = np.concatenate([np.asarray(probs(jnp.asarray(occluded[k:k + batch]), class_id))
                          for k in range(0, len(occluded), batch)])
    return out.reshape(rows, -1)


def occlusion_figure(image: np.ndarray, probs: np.ndarray, clean_prob: float, path: Path, *,
                     title: str, class_name: str, size: int, stride: int) -> Path:
    fig, axes = figures.figure(1, 2, panel=2.8, title=title)
    figures.show_image(axes[0, 0], image, f"input: p({class_name}) = {clean_prob:.3f}")
    figures.show_map(axes[0, 1], probs, f"p({class_name}) with a {size}x{size} grey square\n"
                     f"(stride {stride}; each cell: square's position)", cmap="magma",
                     vmin=0.0, vmax=1.0)
    return figures.save(fig, path)
