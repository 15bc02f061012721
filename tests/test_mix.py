"""MixUp / CutMix: label weights equal the image mixing exactly; smoothing; label formats.

Example i of the test batch is the constant image i + 1 and has class i, so every mixed pixel
says which example it came from, and the label weights can be checked against the pixels.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data.augment import mix_batch
from data.augment.mix import cutmix_box, mix_lambda
from errors import UserError

B = 6
mix = jax.jit(mix_batch, static_argnames=("kind", "alpha", "num_classes", "label_smoothing"))


def _batch(h=8, w=8):
    values = jnp.arange(1, B + 1, dtype=jnp.float32)
    return jnp.broadcast_to(values[:, None, None, None], (B, h, w, 1)), jnp.arange(B)


def test_cutmix_label_weight_is_the_exact_pasted_fraction():
    images, labels = _batch()
    for seed in range(10):
        mixed, soft = mix(images, labels, jax.random.key(seed), kind="cutmix", alpha=1.0,
                          num_classes=B)
        mixed, soft = np.asarray(mixed), np.asarray(soft)
        np.testing.assert_allclose(soft.sum(1), 1, atol=1e-6)
        for i in range(B):
            for j in range(B):  # the weight of class j is the fraction of pixels from example j
                fraction = np.float32(np.mean(mixed[i] == j + 1))  # exact: 64 pixels
                assert soft[i, j] == fraction, (seed, i, j)


def test_cutmix_box_is_clipped_at_the_border_and_measured_after():
    boxes = jax.jit(jax.vmap(lambda k: cutmix_box(k, 8, 8, jnp.float32(0.5))))
    areas = set(np.asarray(boxes(jax.random.split(jax.random.key(0), 40)).sum((1, 2))))
    assert max(areas) == 25 and min(areas) < 25  # int(sqrt(0.5) * 8) = 5; clipped boxes smaller


def test_mixup_labels_weigh_the_images_as_the_pixels_do():
    images, labels = _batch(5, 7)
    mixed, soft = mix(images, labels, jax.random.key(1), kind="mixup", alpha=0.4, num_classes=B)
    np.testing.assert_allclose(np.asarray(soft).sum(1), 1, atol=1e-6)
    # A pixel of example i is sum_j weight_ij * (j + 1): the labels say exactly what was mixed.
    expected = np.asarray(soft) @ np.arange(1, B + 1, dtype=np.float32)
    np.testing.assert_allclose(np.asarray(mixed)[:, 0, 0, 0], expected, rtol=1e-6)
    assert np.all(np.asarray(mixed).std(axis=(1, 2, 3)) < 1e-6)


def test_label_smoothing_and_label_formats():
    images, labels = _batch()
    key = jax.random.key(2)
    plain = mix(images, labels, key, kind="cutmix", alpha=1.0, num_classes=B)
    smoothed = mix(images, jax.nn.one_hot(labels, B), key, kind="cutmix", alpha=1.0,
                   num_classes=B, label_smoothing=0.1)
    # Same key, same pairs and box; smoothing commutes with the (linear) label mixing.
    np.testing.assert_array_equal(plain[0], smoothed[0])
    np.testing.assert_allclose(smoothed[1], 0.9 * np.asarray(plain[1]) + 0.1 / B, atol=1e-7)
    np.testing.assert_allclose(np.asarray(smoothed[1]).sum(1), 1, atol=1e-6)

    same, targets = mix_batch(images, labels, key, "none", 1.0, B, 0.1)
    assert same is images
    np.testing.assert_allclose(targets, 0.9 * np.eye(B) + 0.1 / B, atol=1e-7)


def test_lambda_is_beta_distributed():
    alpha = 0.4
    lam = np.asarray(jax.jit(jax.vmap(lambda k: mix_lambda(k, alpha)))(
        jax.random.split(jax.random.key(0), 4000)))
    assert lam.min() >= 0 and lam.max() <= 1
    np.testing.assert_allclose(lam.mean(), 0.5, atol=0.02)
    np.testing.assert_allclose(lam.var(), 1 / (4 * (2 * alpha + 1)), rtol=0.08)


def test_unknown_kind_is_a_user_error():
    images, labels = _batch()
    with pytest.raises(UserError, match="unknown batch mixing 'mixcut'; choose one of none"):
        mix_batch(images, labels, jax.random.key(0), "mixcut", 1.0, B)
