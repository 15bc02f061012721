"""Adversarial examples in L-infinity: FGSM (Goodfellow et al. 2015) and PGD (Madry et al.
2018), the attacks themselves. Both ascend a loss of the input: FGSM takes one step of size
epsilon along the gradient's sign; PGD takes `steps` steps of `step_size` from a uniform random
start in the ball, projecting back onto the ball (and the valid pixel box) after each.

Here, beside the tasks, because adversarial training (`train.adversarial`, tasks/
classification.py) runs them inside the train step; `launch.py analyze adversarial`
(analysis/adversarial.py) measures a trained network's accuracy against them.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

Box = tuple[float, float] | None


def _clip(x: jax.Array, box: Box) -> jax.Array:
    return x if box is None else jnp.clip(x, *box)


def fgsm(loss: Callable[[jax.Array], jax.Array], x: jax.Array, epsilon: float,
         box: Box = (0.0, 1.0)) -> jax.Array:
    """x + epsilon * sign(d loss / dx), clipped to `box`; `loss` is of the whole batch."""
    return _clip(x + epsilon * jnp.sign(jax.grad(loss)(x)), box)


def pgd(loss: Callable[[jax.Array], jax.Array], x: jax.Array, epsilon: float, *, steps: int,
        step_size: float, key: jax.Array | None, box: Box = (0.0, 1.0)) -> jax.Array:
    """Projected gradient ascent on `loss` within ||x' - x||_inf <= epsilon (and `box`);
    `key` draws the random start, None starts at x."""
    start = x if key is None else x + jax.random.uniform(key, x.shape, x.dtype, -epsilon,
                                                          epsilon)

    def step(_, adv):
        adv = adv + step_size * jnp.sign(jax.grad(loss)(adv))
        return _clip(jnp.clip(adv, x - epsilon, x + epsilon), box)

    return jax.lax.fori_loop(0, steps, step, _clip(start, box))


def training_attack(model: nnx.Module, images: jax.Array, loss_of_logits: Callable, train,
                    key: jax.Array) -> jax.Array:
    """The attack `train.adversarial` (fgsm or pgd, `train.adversarial_eps`, `_steps`) of a
    train batch, inside the train step. It runs on a copy of the model with its weights held
    constant: the attack's passes neither update BatchNorm statistics nor receive gradients."""
    graphdef, state = nnx.split(model)
    state = jax.lax.stop_gradient(state)
    loss = lambda x: loss_of_logits(nnx.merge(graphdef, state)(x))
    eps = train.adversarial_eps
    if train.adversarial == "fgsm":
        adv = fgsm(loss, images, eps)
    else:
        adv = pgd(loss, images, eps, steps=train.adversarial_steps,
                  step_size=2.5 * eps / train.adversarial_steps, key=jax.random.fold_in(key, 7))
    return jax.lax.stop_gradient(adv)
