"""Images a network is made to produce: DeepDream (Mordvintsev et al. 2015) and class models
(Simonyan et al. 2014).

DeepDream ascends the mean square of a layer's activation with respect to the image: each
step rolls the image by a random jitter, takes the gradient, rolls it back and moves by
`lr` times the gradient divided by its mean absolute value; it runs from the coarsest octave
(the image downscaled by `octave_scale` per octave) to the finest, carrying the detail added so
far up each octave. Only the layers up to the one dreamed on run (analysis/taps.py `stop`),
so octaves smaller than the network's own input work for a convolutional layer.

A class model maximises the class's logit minus `l2` times the image's squared norm, from a
black image, by gradient ascent within the pixel box.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from analysis import figures, taps
from errors import UserError


def dream_objective(model: nnx.Module, layer: str):
    """`images -> mean square activation of layer`, a pure jitted function."""
    def objective(m, x):
        return jnp.mean(jnp.square(taps.run(m, x, (layer,), stop=True)[1][layer]))
    return taps.pure(model, objective)


def deepdream(model: nnx.Module, image: np.ndarray, layer: str, *, steps: int = 20,
              lr: float = 0.005, octaves: int = 3, octave_scale: float = 1.4, jitter: int = 2,
              seed: int = 0, box: tuple[float, float] = (0.0, 1.0)) -> tuple[np.ndarray, list]:
    """(dreamed image, [(octave shape, objective before, after)])."""
    def ascend(m, x, shift):
        def objective(x):
            rolled = jnp.roll(x, shift, axis=(1, 2))
            return jnp.mean(jnp.square(taps.run(m, rolled, (layer,), stop=True)[1][layer]))
        g = jax.grad(objective)(x)
        return jnp.clip(x + lr * g / (jnp.mean(jnp.abs(g)) + 1e-8), *box)

    step = taps.pure(model, ascend)
    measure = dream_objective(model, layer)
    h, w = image.shape[:2]
    shapes = [(max(1, round(h / octave_scale ** k)), max(1, round(w / octave_scale ** k)),
               image.shape[2]) for k in reversed(range(octaves))]
    rng = np.random.default_rng(seed)
    base = jnp.asarray(image)
    detail = jnp.zeros(shapes[0], base.dtype)
    history = []
    for shape in shapes:
        octave = jax.image.resize(base, shape, "bilinear")
        detail = jax.image.resize(detail, shape, "bilinear")
        x = jnp.clip(octave + detail, *box)[None]
        try:
            before = float(measure(x))
        except (TypeError, ValueError):
            raise UserError(f"layer {layer} cannot run on the {shape[0]}x{shape[1]} octave: "
                            "use fewer octaves or an earlier layer") from None
        for _ in range(steps):
            x = step(x, jnp.asarray(rng.integers(-jitter, jitter + 1, 2)))
        history.append((shape[:2], before, float(measure(x))))
        detail = x[0] - octave
    return np.asarray(jnp.clip(base + detail, *box)), history


def class_models(model: nnx.Module, image_shape: tuple[int, ...], classes: list[int], *,
                 steps: int = 200, lr: float = 0.05, l2: float = 0.01,
                 box: tuple[float, float] = (0.0, 1.0)) -> list[tuple[np.ndarray, float]]:
    """For each class, (image maximising logit[class] - l2 ||image||^2, its logit)."""
    def run(m, c):
        def objective(x):
            return m(x)[0, c] - l2 * jnp.sum(jnp.square(x))

        def step(_, x):
            g = jax.grad(objective)(x)
            return jnp.clip(x + lr * g / (jnp.mean(jnp.abs(g)) + 1e-8), *box)

        x = jax.lax.fori_loop(0, steps, step, jnp.zeros((1, *image_shape), jnp.float32))
        return x[0], m(x)[0, c]

    ascend = taps.pure(model, run)  # compiled once, the class a traced argument
    return [(np.asarray(image), float(logit))
            for image, logit in (ascend(jnp.int32(c)) for c in classes)]


def dream_figure(image: np.ndarray, dreamed: np.ndarray, history: list, path: Path, *,
                 title: str, layer: str) -> Path:
    fig, axes = figures.figure(1, 2, panel=2.8, title=title)
    figures.show_image(axes[0, 0], image, "input")
    rise = ", ".join(f"{s[0]}x{s[1]}: {a:.3g}->{b:.3g}" for s, a, b in history)
    figures.show_image(axes[0, 1], dreamed, f"dreamed on {layer}\nmean sq. activation per "
                       f"octave:\n{rise}", fontsize=6)
    return figures.save(fig, path)


def class_models_figure(images: list[np.ndarray], logits: list[float], names: list[str],
                        path: Path, *, title: str) -> Path:
    rows, cols = figures.grid_shape(len(images), 5)
    fig, axes = figures.figure(rows, cols, panel=1.6, title=title)
    for ax, image, logit, name in zip(axes.flat, images, logits, names):
        figures.show_image(ax, image, f"class {name}: logit {logit:.1f}")
    figures.hide_unused(axes, len(images))
    return figures.save(fig, path)
