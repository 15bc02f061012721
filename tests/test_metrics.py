"""Metric sums and their single reduction: exact values on a hand-made case with padding."""

import jax.numpy as jnp
import numpy as np
import pytest

from tasks.classification import classification_sums
from training import metrics


def test_padding_is_masked_out_exactly():
    # 3 real examples and 1 padded one whose logits would count as correct and as a huge loss.
    logits = jnp.array([[2.0, 1.0, 0.0, 0, 0, 0],   # label 0: top-1 right
                        [0.0, 1.0, 3.0, 0, 0, 0],   # label 1: top-1 wrong, top-5 right
                        [0.0, 0.0, 0.0, 0, 0, 9],   # label 5: right
                        [9.0, 0.0, 0.0, 0, 0, 0]])  # padding
    labels = jnp.array([0, 1, 5, 0])
    loss = jnp.array([0.5, 2.0, 0.25, 100.0])
    mask = jnp.array([1, 1, 1, 0])
    sums = classification_sums(logits, labels, loss, mask)
    assert float(sums["count"]) == 3
    assert float(sums["loss"]) == 2.75
    assert float(sums["accuracy"]) == 2
    assert float(sums["top5"]) == 3
    means = metrics.reduce(sums, "test")
    assert means == {"test/loss": pytest.approx(2.75 / 3), "test/accuracy": pytest.approx(2 / 3),
                     "test/top5": pytest.approx(1.0)}


def test_sums_over_batches_reduce_once():
    a = {"loss": np.float32(3.0), "accuracy": np.float32(1), "count": np.float32(2)}
    b = {"loss": np.float32(1.0), "accuracy": np.float32(1), "count": np.float32(1)}
    out = metrics.reduce(metrics.add(metrics.add(None, a), b), "train")
    # mean of per-example values (4/3), not the mean of per-batch means (1.25)
    assert out["train/loss"] == pytest.approx(4 / 3)
    assert out["train/accuracy"] == pytest.approx(2 / 3)


def test_no_top5_with_five_classes_or_fewer():
    sums = classification_sums(jnp.zeros((2, 5)), jnp.array([0, 1]), jnp.zeros(2),
                                       jnp.ones(2))
    assert "top5" not in sums
