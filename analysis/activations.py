"""The feature maps of a named layer for one input, the most active channels first.

A layer is a module path (analysis/taps.py); its output is shown as the module returns it
(a convolution's, before an activation function applied outside the module). Channels are
ranked by their mean activation over the map, and all maps share one colour scale, so tiles
compare.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from analysis import figures, taps


def feature_maps(model: nnx.Module, image: np.ndarray, layer: str) -> np.ndarray:
    """(H', W', C) output of `layer` for one (H, W, C) image."""
    taps.check_layer(model, image.shape, layer, taps.spatial, "layer with a spatial output")
    read = taps.pure(model, lambda m, x: taps.run(m, x, (layer,), stop=True)[1][layer])
    return np.asarray(read(jnp.asarray(image)[None]))[0]


def most_active(maps: np.ndarray) -> np.ndarray:
    """Channel indices by mean activation, highest first."""
    return np.argsort(-maps.mean(axis=(0, 1)), kind="stable")


def activations_figure(image: np.ndarray, maps: np.ndarray, path: Path, *, title: str,
                       max_channels: int = 32) -> Path:
    order = most_active(maps)[:max_channels]
    n = len(order) + 1
    rows, cols = figures.grid_shape(n, 8)
    fig, axes = figures.figure(rows, cols, panel=1.4, title=title)
    figures.show_image(axes.flat[0], image, "input")
    lo, hi = float(maps[..., order].min()), float(maps[..., order].max())
    im = None
    for i, channel in enumerate(order, start=1):
        im = figures.show_map(axes.flat[i], maps[..., channel], colorbar=False, vmin=lo, vmax=hi,
                              title=f"ch {channel}: mean {maps[..., channel].mean():.2f}",
                              fontsize=6)
    figures.hide_unused(axes, n)
    cb = fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02)
    cb.set_label("activation (shared scale)", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    return figures.save(fig, path)
