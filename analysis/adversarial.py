"""Adversarial examples in L-infinity: FGSM (Goodfellow et al. 2015) and PGD (Madry et al.
2018), and a network's accuracy against the budget epsilon.

Both ascend the cross-entropy of the true label. FGSM takes one step of size epsilon along
the gradient's sign; PGD takes `steps` steps of `step_size` from a uniform random start in the
ball, projecting back onto the ball (and the valid pixel box) after each. Images are in the
network's input units; the box defaults to [0, 1], the pipeline's pixels before any
`normalize`. The attacks live in tasks/attacks.py, where adversarial training
(`train.adversarial=pgd`, tasks/classification.py) also runs them, inside the train step.

Measured (`launch.py analyze adversarial` on the default experiment's LeNet-5, 98.89% clean,
all 360 eval digits; PGD 10 steps of 2.5 eps / 10 from a random start):

    epsilon   0.02   0.05   0.10   0.15   0.20   0.30
    FGSM     93.3%  66.9%  20.8%   5.8%   2.8%   1.1%
    PGD      93.3%  54.2%   3.1%   0.0%   0.0%   0.0%
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from analysis import figures, taps
from tasks.attacks import Box, fgsm, pgd


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum()


def attacker(model: nnx.Module, method: str = "pgd", *, steps: int = 10,
             box: Box = (0.0, 1.0)) -> Callable:
    """`(images, labels, epsilon, seed) -> adversarial images` against `model` (inference
    mode), compiled once for every epsilon; PGD's step is 2.5 epsilon / steps (Madry et al.)."""
    def run(m, x, y, eps, key):
        loss = lambda x: cross_entropy(m(x), y)
        if method == "fgsm":
            return fgsm(loss, x, eps, box)
        return pgd(loss, x, eps, steps=steps, step_size=2.5 * eps / steps, key=key, box=box)

    jitted = taps.pure(model, run)
    return lambda x, y, eps, seed=0: np.asarray(jitted(
        jnp.asarray(x), jnp.asarray(y), jnp.float32(eps), jax.random.key(seed)))


def predictions(model: nnx.Module, images: np.ndarray, batch: int = 256) -> np.ndarray:
    forward = taps.pure(model, lambda m, x: jnp.argmax(m(x), axis=-1))
    return np.concatenate([np.asarray(forward(jnp.asarray(images[i:i + batch])))
                           for i in range(0, len(images), batch)])


def accuracy_vs_epsilon(model: nnx.Module, images: np.ndarray, labels: np.ndarray,
                        epsilons: list[float], *, methods=("fgsm", "pgd"), steps: int = 10,
                        batch: int = 512) -> dict[str, list[float]]:
    """method -> accuracy at each epsilon (epsilon 0: the clean accuracy)."""
    table = {}
    for method in methods:
        adversary = attacker(model, method, steps=steps)
        row = []
        for eps in epsilons:
            correct = 0
            for i in range(0, len(images), batch):
                x, y = images[i:i + batch], labels[i:i + batch]
                adv = x if eps == 0 else adversary(x, y, eps)
                correct += int((predictions(model, adv, batch) == y).sum())
            row.append(correct / len(images))
        table[method] = row
    return table


def format_table(epsilons: list[float], table: dict[str, list[float]]) -> str:
    lines = ["epsilon  " + "  ".join(f"{m:>6}" for m in table)]
    for i, eps in enumerate(epsilons):
        lines.append(f"{eps:7.3f}  " + "  ".join(f"{100 * table[m][i]:5.1f}%" for m in table))
    return "\n".join(lines)


def adversarial_figure(images: np.ndarray, labels: np.ndarray, adversarial: dict[float, tuple],
                       epsilons: list[float], table: dict[str, list[float]], path: Path, *,
                       title: str, class_names: tuple[str, ...], n_eval: int) -> Path:
    """Left: examples, clean and at each epsilon (PGD), with predictions (red: fooled).
    Right: accuracy against epsilon for each attack."""
    cols = 1 + len(adversarial)
    n = len(images)
    fig, axes = figures.figure(n, cols + 2, panel=1.35, title=title)
    for r in range(n):
        figures.show_image(axes[r, 0], images[r], f"clean: {class_names[labels[r]]}", 7)
        for c, (eps, (adv, pred)) in enumerate(adversarial.items(), start=1):
            wrong = pred[r] != labels[r]
            figures.show_image(axes[r, c], adv[r], f"eps {eps:g}: {class_names[pred[r]]}", 7)
            if wrong:
                for side in axes[r, c].spines.values():
                    side.set_edgecolor("red")
                    side.set_linewidth(2)
        for ax in axes[r, cols:]:
            ax.set_axis_off()
    gs = axes[0, cols].get_gridspec()
    curve = fig.add_subplot(gs[:, cols:])
    for method, accs in table.items():
        curve.plot(epsilons, [100 * a for a in accs], marker="o", label=method.upper())
    curve.set_xlabel("epsilon (L-inf, pixel units in [0, 1])", fontsize=8)
    curve.set_ylabel(f"accuracy on {n_eval} eval images (%)", fontsize=8)
    curve.set_ylim(0, 100)
    curve.grid(alpha=0.3)
    curve.legend(fontsize=8)
    curve.tick_params(labelsize=7)
    curve.set_title("accuracy against epsilon", fontsize=9)
    return figures.save(fig, path)
