"""Occlusion sensitivity (Zeiler and Fergus 2014, fig. 7): the class's probability as a grey
square slides over the input. Where covering the image makes the probability fall is what
the network looks at. The class's logit is returned too: a confident network's probability
stays near 1 under most occluders, while its logit still shows where the evidence lies."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from analysis import figures, taps


def occlusion(model: nnx.Module, image: np.ndarray, class_id: int, *, size: int = 8,
              stride: int = 1, fill: float = 0.5, batch: int = 256
              ) -> tuple[np.ndarray, np.ndarray]:
    """(probability, logit) of `class_id`, each (rows, cols), with the square's top-left
    corner at (row * stride, col * stride); `fill` is the square's grey value."""
    h, w = image.shape[:2]
    corners = [(i, j) for i in range(0, h - size + 1, stride)
               for j in range(0, w - size + 1, stride)]
    rows = len(range(0, h - size + 1, stride))
    ii, jj = np.mgrid[:h, :w]
    masks = np.stack([(ii >= i) & (ii < i + size) & (jj >= j) & (jj < j + size)
                      for i, j in corners])[..., None]
    scores = taps.pure(model, lambda m, x, c: (lambda z: (jax.nn.softmax(z, axis=-1)[:, c],
                                                          z[:, c]))(m(x)))
    occluded = np.where(masks, np.float32(fill), image[None])
    parts = [scores(jnp.asarray(occluded[k:k + batch]), class_id)
             for k in range(0, len(occluded), batch)]
    probs, logits = (np.concatenate([np.asarray(p[i]) for p in parts]) for i in (0, 1))
    return probs.reshape(rows, -1), logits.reshape(rows, -1)


def occlusion_figure(image: np.ndarray, probs: np.ndarray, logits: np.ndarray,
                     clean: tuple[float, float], path: Path, *, title: str, class_name: str,
                     size: int, stride: int) -> Path:
    fig, axes = figures.figure(1, 3, panel=2.8, title=title)
    figures.show_image(axes[0, 0], image, f"input: p({class_name}) = {clean[0]:.3f}, "
                       f"logit {clean[1]:.1f}")
    where = f"{size}x{size} grey square; cell = its top-left corner"
    figures.show_map(axes[0, 1], probs, f"p({class_name}), {where}", cmap="magma", vmin=0.0,
                     vmax=1.0, fontsize=7)
    figures.show_map(axes[0, 2], logits, f"logit of {class_name}, same squares", cmap="magma",
                     fontsize=7)
    return figures.save(fig, path)
