"""Guided backpropagation (Springenberg et al. 2015) and the deconvnet (Zeiler and Fergus
2014): the input gradient of a class score with each ReLU's backward rule replaced.

    ReLU's own rule:    g_in = g * [x > 0]
    deconvnet:          g_in = max(g, 0)            (the unpooling/rectification path)
    guided backprop:    g_in = max(g, 0) * [x > 0]  (both)

Each is a `jax.custom_vjp` of the same forward (max(x, 0)). The networks here hold their
activation as a function attribute (`self.act = nnx.relu`); for one pass, every attribute of
every submodule that is ReLU is swapped for the rule's version, on a copy of the network.
A ReLU called inline in a `__call__` is not reached, and a network without ReLUs is refused.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from analysis import figures, taps
from errors import UserError


@jax.custom_vjp
def guided_relu(x: jax.Array) -> jax.Array:
    return jnp.maximum(x, 0)


guided_relu.defvjp(lambda x: (jnp.maximum(x, 0), x),
                   lambda x, g: (jnp.where((x > 0) & (g > 0), g, 0.0),))


@jax.custom_vjp
def deconv_relu(x: jax.Array) -> jax.Array:
    return jnp.maximum(x, 0)


deconv_relu.defvjp(lambda x: (jnp.maximum(x, 0), None), lambda _, g: (jnp.maximum(g, 0),))

RULES = {"guided_backprop": guided_relu, "deconvnet": deconv_relu}
_RELUS = (jax.nn.relu, nnx.relu)


@contextlib.contextmanager
def relu_rule(model: nnx.Module, rule) -> Iterator[None]:
    """Every ReLU attribute of `model`'s modules is `rule` while the context lasts."""
    swapped = [(m, name, value) for _, m in nnx.iter_modules(model)
               for name, value in vars(m).items() if any(value is relu for relu in _RELUS)]
    if not swapped:
        raise UserError("this network has no ReLU activation (e.g. LeNet-5's default "
                        "lecun_tanh): guided backprop and the deconvnet are rules for ReLU; "
                        "analyse a run trained with --config.model.act=relu")
    for m, name, _ in swapped:
        setattr(m, name, rule)
    try:
        yield
    finally:
        for m, name, original in swapped:
            setattr(m, name, original)


def relu_rule_gradient(model: nnx.Module, image: np.ndarray, class_id: int,
                       kind: str) -> np.ndarray:
    """d logit[class] / d image under `kind`'s ReLU rule ("guided_backprop" or "deconvnet")."""
    def grad(m, x, c):
        with relu_rule(m, RULES[kind]):
            return jax.grad(lambda x: m(x)[0, c])(x)
    return np.asarray(taps.pure(model, grad)(jnp.asarray(image)[None], class_id))[0]


def guided_backprop(model: nnx.Module, image: np.ndarray, class_id: int) -> np.ndarray:
    return relu_rule_gradient(model, image, class_id, "guided_backprop")


def deconvnet(model: nnx.Module, image: np.ndarray, class_id: int) -> np.ndarray:
    return relu_rule_gradient(model, image, class_id, "deconvnet")


def relu_rules_figure(image: np.ndarray, maps: dict[str, np.ndarray], path: Path, *,
                      title: str) -> Path:
    """The image and each map as an image: min-max scaled, as the papers show them."""
    fig, axes = figures.figure(1, len(maps) + 1, panel=2.2, title=title)
    figures.show_image(axes[0, 0], image, "input")
    for ax, (name, gradient) in zip(axes.flat[1:], maps.items()):
        figures.show_image(ax, figures.to_unit(gradient), f"{name} (min-max scaled)")
    return figures.save(fig, path)
