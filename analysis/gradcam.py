"""Grad-CAM (Selvaraju et al. 2017): where in a feature map the evidence for a class lies.

For layer A (H', W', K) and class score y: alpha_k = mean over positions of dy/dA_k, the map
is ReLU(sum_k alpha_k A_k), upsampled (bilinear) to the input. The gradient at the layer is
taken by adding a zero tensor to its output (analysis/taps.py) and differentiating by it.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from analysis import figures, taps


def gradcam(model: nnx.Module, image: np.ndarray, class_id: int,
            layer: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(map at the layer's resolution (H', W'), map upsampled to the image (H, W), layer);
    the layer defaults to the last one with a spatial feature map."""
    layer = layer or taps.last_feature_map(model, image.shape)
    shape = taps.check_layer(model, image.shape, layer, taps.spatial,
                             "layer with a spatial feature map")

    def cam(m, x, c):
        def score(delta):
            out, seen = taps.run(m, x, (layer,), {layer: delta})
            return out[0, c], seen[layer][0]
        grads, features = jax.grad(score, has_aux=True)(jnp.zeros((1, *shape), x.dtype))
        weights = grads[0].mean(axis=(0, 1))                    # alpha_k
        return jax.nn.relu(jnp.einsum("hwk,k->hw", features, weights))

    coarse = taps.pure(model, cam)(jnp.asarray(image)[None], class_id)
    fine = jax.image.resize(coarse, image.shape[:2], "bilinear")
    return np.asarray(coarse), np.asarray(fine), layer


def gradcam_figure(image: np.ndarray, coarse: np.ndarray, fine: np.ndarray, path: Path, *,
                   title: str, layer: str) -> Path:
    fig, axes = figures.figure(1, 3, panel=2.4, title=title)
    figures.show_image(axes[0, 0], image, "input")
    figures.show_map(axes[0, 1], coarse, f"Grad-CAM at {layer} ({coarse.shape[0]}x"
                     f"{coarse.shape[1]})", cmap="jet")
    figures.overlay(axes[0, 2], image, fine, "upsampled, over the input")
    return figures.save(fig, path)
