"""Layers set from the training data before the first step (airbench's whitening conv).

A network that has a `fit_to_data(images)` method gets up to `FIT_EXAMPLES` decoded training
images, spread evenly over the split (folder sets are stored class by class), before its state
is split. What it sets travels with the state, so a resumed run or an evaluation restores the
fitted values from the checkpoint and never refits.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

FIT_EXAMPLES = 5000  # the recipe fits its whitening on 5,000 CIFAR images


def fit_model_to_data(model, train_source, decode) -> None:
    """Calls `model.fit_to_data` on decoded training images, if the model has one."""
    if train_source is not None:
        fit_with(model, lambda: fit_images(train_source, decode))


def fit_with(model, images: Callable[[], np.ndarray]) -> None:
    """`model.fit_to_data(images())` if the model has one; `images` is called only then (the
    sharded initialisation builds the model twice, and a cached `images` decodes once)."""
    fit = getattr(model, "fit_to_data", None)
    if fit is not None:
        fit(images())


def fit_images(train_source, decode) -> np.ndarray:
    """Up to FIT_EXAMPLES decoded training images, spread evenly over the split."""
    count = min(len(train_source), FIT_EXAMPLES)
    indices = np.linspace(0, len(train_source) - 1, count).round().astype(int)
    return np.stack([decode(train_source[int(i)])["image"] for i in indices])
