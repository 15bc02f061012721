"""Input saliency of a class score: the vanilla gradient (Simonyan et al. 2014), SmoothGrad
(Smilkov et al. 2017) and integrated gradients (Sundararajan et al. 2017).

The score is the class's logit (before the softmax), as Simonyan et al. take it. Each function
returns an attribution of the image's shape; pictures show its absolute value, maximised
over colour channels (Simonyan et al. sec. 3.1).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from analysis import figures, taps


def _score_gradient(model: nnx.Module):
    """(images (B, H, W, C), class) -> d logit[class] / d image, per image."""
    def grad(m, x, c):
        return jax.grad(lambda x: jnp.sum(m(x)[:, c]))(x)
    return taps.pure(model, grad)


def vanilla_gradient(model: nnx.Module, image: np.ndarray, class_id: int) -> np.ndarray:
    return np.asarray(_score_gradient(model)(jnp.asarray(image)[None], class_id))[0]


def smoothgrad(model: nnx.Module, image: np.ndarray, class_id: int, *, samples: int = 50,
               noise: float = 0.15, seed: int = 0) -> np.ndarray:
    """The gradient averaged over `samples` copies of the image with Gaussian noise of std
    `noise` times the image's value range (the paper's 10-20%)."""
    image = jnp.asarray(image)
    sigma = noise * float(image.max() - image.min() or 1.0)
    noisy = image + sigma * jax.random.normal(jax.random.key(seed), (samples, *image.shape))
    return np.asarray(_score_gradient(model)(noisy, class_id).mean(axis=0))


def integrated_gradients(model: nnx.Module, image: np.ndarray, class_id: int, *,
                         baseline: np.ndarray | None = None, steps: int = 64) -> np.ndarray:
    """(image - baseline) times the gradient averaged along the straight path between them
    (trapezoid rule over `steps` intervals); baseline: black. The attributions sum to
    score(image) - score(baseline) up to the quadrature error (completeness)."""
    image = jnp.asarray(image)
    base = jnp.zeros_like(image) if baseline is None else jnp.asarray(baseline)
    alphas = jnp.linspace(0.0, 1.0, steps + 1)
    path = base + alphas[:, None, None, None] * (image - base)
    grads = _score_gradient(model)(path, class_id)
    mean = (grads[1:] + grads[:-1]).sum(axis=0) / (2 * steps)
    return np.asarray((image - base) * mean)


def magnitude(attribution: np.ndarray) -> np.ndarray:
    """|attribution| maximised over channels: an (H, W) map."""
    return np.abs(attribution).max(axis=-1)


def saliency_figure(image: np.ndarray, maps: dict[str, np.ndarray], path: Path, *,
                    title: str) -> Path:
    fig, axes = figures.figure(1, len(maps) + 1, panel=2.2, title=title)
    figures.show_image(axes[0, 0], image, "input")
    for ax, (name, attribution) in zip(axes.flat[1:], maps.items()):
        figures.show_map(ax, magnitude(attribution), name, cmap="hot")
    return figures.save(fig, path)
