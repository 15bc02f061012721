"""Neural style transfer (Gatys, Ecker and Bethge 2016): an image with the content of one and
the style of another, by optimising the image itself.

With F_l (M_l positions x N_l channels) a layer's features, the style of a layer is its Gram
matrix G_l = F_l^T F_l / M_l (the channels' correlations, averaged over positions). The losses
are the paper's, eq. 1, 4 and 5: content 1/2 sum (F - P)^2 on the content layers, style
sum_l w_l E_l with E_l = 1/(4 N_l^2 M_l^2) sum (F^T F - A^T A)^2 = mean((G - G_style)^2) / 4
with the Gram above, w_l = 1/(number of style layers), total alpha * content + beta * style.
The default layers of a VGG are the paper's: style conv1_1 ... conv5_1 (the first conv unit
at each resolution), content conv4_2 (the second at the fourth); other networks get the same
rule applied to their own convolution units. The image is optimised by L-BFGS (the paper's) or
Adam, from the content image, and clipped to the pixel box at the end. The VGG may be an
imported one (the paper's method) or randomly initialised (whose random features still
transfer some texture).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from analysis import figures, taps
from errors import UserError


def gram(features: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, C, C): F^T F / (H W) per image."""
    b, h, w, c = features.shape
    f = features.reshape(b, h * w, c)
    return jnp.einsum("bmc,bmd->bcd", f, f) / (h * w)


def conv_units(model: nnx.Module, image_shape: tuple[int, ...]) -> list[str]:
    """Layers that are a convolution unit: a module holding a 4-D kernel itself or in a direct
    child (VGG's conv+ReLU block, LeNet's c1), not inside another such unit; in run order."""
    modules = {".".join(map(str, p)): m for p, m in nnx.iter_modules(model) if p}

    def has_kernel(m):
        k = getattr(m, "kernel", None)
        return isinstance(k, nnx.Param) and k.get_value().ndim == 4

    def is_unit(path):
        m = modules.get(path)
        return m is not None and (has_kernel(m) or any(
            has_kernel(c) for _, c in nnx.iter_children(m)))

    units = []
    for name, shape in taps.layers(model, image_shape).items():
        path = taps.call_of(name)[0]
        parents = [".".join(path.split(".")[:i]) for i in range(1, path.count(".") + 1)]
        if taps.spatial(shape) and is_unit(path) and not any(is_unit(p) for p in parents):
            units.append(name)
    return units


def default_layers(model: nnx.Module, image_shape: tuple[int, ...]) -> tuple[list[str], list[str]]:
    """(content layers, style layers): Gatys et al.'s choice, by resolution stages."""
    shapes = taps.layers(model, image_shape)
    stages: dict[tuple[int, int], list[str]] = {}
    for name in conv_units(model, image_shape):
        stages.setdefault(shapes[name][:2], []).append(name)
    if not stages:
        raise UserError("style transfer needs convolution layers; this network has none")
    groups = list(stages.values())
    style = [g[0] for g in groups[:5]]
    content_stage = groups[min(3, len(groups) - 1)]
    return [content_stage[min(1, len(content_stage) - 1)]], style


def style_transfer(model: nnx.Module, content: np.ndarray, style: np.ndarray, *,
                   content_layers: list[str], style_layers: list[str], steps: int = 200,
                   optimizer: str = "lbfgs", lr: float = 0.02, alpha: float = 1.0,
                   beta: float = 1e3, box: tuple[float, float] = (0.0, 1.0)
                   ) -> tuple[np.ndarray, dict[str, float]]:
    """(the stylised image, {content, style, total} losses at the start and end)."""
    if optimizer not in ("lbfgs", "adam"):
        raise UserError(f"style optimizer {optimizer!r}: choose lbfgs or adam")
    layers = tuple(dict.fromkeys(content_layers + style_layers))

    def run(m, content, style):
        read = lambda x: taps.run(m, x, layers, stop=True)[1]
        targets, styles = read(content), read(style)
        grams = {n: gram(styles[n]) for n in style_layers}

        def losses(x):
            f = read(x)
            c = sum(0.5 * jnp.sum(jnp.square(f[n] - targets[n])) for n in content_layers)
            s = sum(jnp.mean(jnp.square(gram(f[n]) - grams[n])) / 4
                    for n in style_layers) / len(style_layers)
            return alpha * c + beta * s, (c, s)

        loss = lambda x: losses(x)[0]
        tx = optax.lbfgs() if optimizer == "lbfgs" else optax.adam(lr)
        value_and_grad = optax.value_and_grad_from_state(loss)

        def step(_, carry):
            x, state = carry
            if optimizer == "lbfgs":
                value, grad = value_and_grad(x, state=state)
                updates, state = tx.update(grad, state, x, value=value, grad=grad,
                                           value_fn=loss)
            else:
                updates, state = tx.update(jax.grad(loss)(x), state, x)
            return optax.apply_updates(x, updates), state

        x, _ = jax.lax.fori_loop(0, steps, step, (content, tx.init(content)))
        x = jnp.clip(x, *box)
        return x, losses(content), losses(x)

    x, start, end = taps.pure(model, run)(jnp.asarray(content)[None], jnp.asarray(style)[None])
    report = {"content_start": float(start[1][0]), "style_start": float(start[1][1]),
              "total_start": float(start[0]), "content_end": float(end[1][0]),
              "style_end": float(end[1][1]), "total_end": float(end[0])}
    return np.asarray(x[0]), report


def style_figure(content: np.ndarray, style: np.ndarray, result: np.ndarray, report: dict,
                 path: Path, *, title: str, content_layers, style_layers) -> Path:
    fig, axes = figures.figure(1, 3, panel=2.8, title=title)
    show = lambda img: img if img.min() >= 0 and img.max() <= 1 else figures.to_unit(img)
    figures.show_image(axes[0, 0], show(content), "content\n" + ", ".join(content_layers), 7)
    figures.show_image(axes[0, 1], show(style), "style\n" + ", ".join(style_layers), 6)
    figures.show_image(axes[0, 2], show(result),
                       f"result: style loss {report['style_start']:.3g} -> "
                       f"{report['style_end']:.3g}\ncontent loss {report['content_start']:.3g} "
                       f"-> {report['content_end']:.3g}", 7)
    return figures.save(fig, path)
