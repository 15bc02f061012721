"""Image-quality and segmentation metric sums against skimage and hand-made values; degradations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from data import degrade
from tasks import image_metrics as im

SK_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)


def _y(rgb):  # the formula, in float64 NumPy
    return (16 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255


def _pairs(rng, b=3, h=40, w=36, c=3, smooth=False):
    target = rng.random((b, h, w, c))
    if smooth:
        target = gaussian_filter(target, (0, 4, 4, 0))
        target = (target - target.min()) / (target.max() - target.min())
    noise = 0.01 * gaussian_filter(rng.standard_normal(target.shape), (0, 2, 2, 0)) if smooth \
        else 0.1 * rng.standard_normal(target.shape)
    return np.clip(target + noise, 0, 1), target


def _mean(fn, *args, **kw):
    total, count = jax.jit(fn, static_argnames=("border", "y_channel"))(*args, **kw)
    return float(total) / float(count)


def test_rgb_to_y_known_colours():
    colours = jnp.array([[1.0, 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    want = np.array([235, 16, 16 + 65.481, 16 + 128.553, 16 + 24.966]) / 255
    np.testing.assert_allclose(im.rgb_to_y(colours)[:, 0], want, atol=1e-6)
    grey = jnp.ones((2, 4, 4, 1)) * 0.3
    assert im.rgb_to_y(grey) is grey
    rgb = np.random.default_rng(0).random((5, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(im.rgb_to_y(jnp.asarray(rgb))[..., 0],
                               degrade.rgb_to_ycbcr(rgb)[..., 0], atol=1e-6)


@pytest.mark.parametrize("y_channel", [False, True])
def test_psnr_is_the_mean_of_skimage_per_image_psnr(y_channel):
    pred, target = _pairs(np.random.default_rng(1))
    to = _y if y_channel else (lambda x: x)
    want = np.mean([peak_signal_noise_ratio(to(t), to(p), data_range=1.0)
                    for p, t in zip(pred, target)])
    got = _mean(im.psnr_sums, jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32),
                jnp.ones(3), y_channel=y_channel)
    assert got == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("smooth", [False, True])
def test_ssim_equals_skimage_on_grey_and_on_y_of_colour(smooth):
    pred, target = _pairs(np.random.default_rng(2), smooth=smooth)
    p32, t32 = jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32)
    ones = jnp.ones(3)
    grey = np.mean([structural_similarity(t[..., 0], p[..., 0], **SK_SSIM)
                    for p, t in zip(pred, target)])
    assert _mean(im.ssim_sums, p32[..., :1], t32[..., :1], ones) == pytest.approx(grey, abs=1e-5)
    y = np.mean([structural_similarity(_y(t), _y(p), **SK_SSIM) for p, t in zip(pred, target)])
    assert _mean(im.ssim_sums, p32, t32, ones) == pytest.approx(y, abs=1e-5)
    rgb = np.mean([structural_similarity(t, p, channel_axis=-1, **SK_SSIM)
                   for p, t in zip(pred, target)])
    assert _mean(im.ssim_sums, p32, t32, ones, y_channel=False) == pytest.approx(rgb, abs=1e-5)


def test_border_shave_drops_only_the_border():
    rng = np.random.default_rng(3)
    target = rng.random((2, 32, 32, 1)).astype(np.float32)
    pred = target + 0.01 * rng.standard_normal(target.shape).astype(np.float32)
    pred[:, :4] = 1 - target[:, :4]  # a bad top border, 4 rows
    pred, target, ones = jnp.asarray(np.clip(pred, 0, 1)), jnp.asarray(target), jnp.ones(2)
    for fn in (im.psnr_sums, im.ssim_sums):
        whole, shaved = _mean(fn, pred, target, ones), _mean(fn, pred, target, ones, border=4)
        assert shaved > whole
        cropped = _mean(fn, im.shave(pred, 4), im.shave(target, 4), ones)
        assert shaved == pytest.approx(cropped, abs=1e-6)
    assert im.shave(pred, 4).shape == (2, 24, 24, 1)


def test_a_masked_padded_image_leaves_the_sums_unchanged():
    pred, target = (jnp.asarray(x, jnp.float32) for x in _pairs(np.random.default_rng(4)))
    pad = jnp.zeros((1, *pred.shape[1:]))  # identical zeros: infinite PSNR if it counted
    for fn in (jax.jit(im.psnr_sums), jax.jit(im.ssim_sums)):
        total, count = fn(pred, target, jnp.ones(3))
        padded = fn(jnp.concatenate([pred, pad]), jnp.concatenate([target, pad]),
                    jnp.array([1, 1, 1, 0]))
        assert float(padded[1]) == float(count) == 3
        assert float(padded[0]) == pytest.approx(float(total), rel=1e-6)


def test_segmentation_scores_from_a_hand_made_confusion():
    # rows: true class, columns: predicted. Class 2 never appears; class 3 is predicted once only.
    confusion = np.array([[5, 1, 0, 0],
                          [2, 3, 0, 1],
                          [0, 0, 0, 0],
                          [0, 0, 0, 0]])
    s = im.segmentation_scores(confusion, ["a", "b", "c", "d"])
    assert s["pixel_accuracy"] == pytest.approx(8 / 12)
    assert s["iou/a"] == pytest.approx(5 / 8)   # TP 5, FN 1, FP 2
    assert s["iou/b"] == pytest.approx(3 / 7)   # TP 3, FN 3, FP 1
    assert np.isnan(s["iou/c"])
    assert s["iou/d"] == 0.0
    assert s["miou"] == pytest.approx((5 / 8 + 3 / 7 + 0) / 3)


def test_confusion_matrix_ignores_void_and_masks_and_sums_exactly():
    k, rng = 4, np.random.default_rng(5)
    labels = rng.integers(0, k, (8, 8, 8))
    labels[0, :2] = 255
    labels[1, 0] = 7  # >= K: ignored too
    preds = rng.integers(0, k, labels.shape)
    image_mask = np.array([1, 1, 1, 1, 1, 1, 0, 0])
    pixel_mask = (rng.random(labels.shape) > 0.2) & image_mask[:, None, None].astype(bool)
    want = np.zeros((k, k), np.int64)
    for t, p, m in zip(labels.ravel(), preds.ravel(), pixel_mask.ravel()):
        if m and t < k:
            want[t, p] += 1
    cm = jax.jit(im.confusion_matrix, static_argnums=3)
    preds, labels = jnp.asarray(preds), jnp.asarray(labels)
    got = cm(preds, labels, jnp.asarray(pixel_mask), k)
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(got, want)

    whole = cm(preds, labels, jnp.asarray(image_mask), k)
    halves = sum(cm(preds[s], labels[s], jnp.asarray(image_mask[s]), k)
                 for s in (slice(0, 4), slice(4, 8)))
    np.testing.assert_array_equal(whole, halves)
    assert int(whole.sum()) == int(((labels < k) & (image_mask[:, None, None] == 1)).sum())
    # the batch sharded over the eight fake devices: the same counts
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
    on_devices = jax.NamedSharding(mesh, jax.P("data"))
    sharded = cm(*(jax.device_put(x, on_devices) for x in (preds, labels, image_mask)), k)
    np.testing.assert_array_equal(sharded, whole)


# --- data/degrade.py


def test_degrade_mod_crop_and_sizes():
    image = np.random.default_rng(6).random((50, 37, 3)).astype(np.float32)
    assert degrade.mod_crop(image, 4).shape == (48, 36, 3)
    lr = degrade.downscale(image, 3)
    assert lr.shape == (16, 12, 3) and lr.dtype == np.float32
    assert degrade.upscale_bicubic(lr, 3).shape == (48, 36, 3)


def test_degrade_bicubic_twins_agree_on_a_photo():
    photo = degrade.mod_crop(skdata.astronaut().astype(np.float32) / 255, 3)
    lr = degrade.bicubic_resize(photo, (photo.shape[0] // 3, photo.shape[1] // 3))
    lr_jax = degrade.bicubic_resize_jax(jnp.asarray(photo), lr.shape[:2])
    assert np.abs(lr - np.asarray(lr_jax)).max() < 1e-6  # measured 2.4e-7
    up = degrade.upscale_bicubic(lr, 3)
    up_jax = degrade.bicubic_resize_jax(jnp.asarray(lr), photo.shape[:2])
    assert np.abs(up - np.asarray(up_jax)).max() < 3e-5  # measured 9.4e-6 (x3 round-off)


def test_degrade_noise_is_repeatable_and_has_the_right_std():
    image = np.full((512, 512, 1), 0.5, np.float32)
    a = degrade.add_gaussian_noise(image, 25, degrade.example_rng(0, 7))
    b = degrade.add_gaussian_noise(image, 25, degrade.example_rng(0, 7))
    c = degrade.add_gaussian_noise(image, 25, degrade.example_rng(0, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.std(a - image) == pytest.approx(25 / 255, rel=0.02)
    ones = np.ones((10, 10, 3), np.float32)
    assert degrade.add_gaussian_noise(ones, 25, degrade.example_rng(0, 0)).max() > 1  # unclipped
    masked = degrade.masking_noise(ones, 0.25, degrade.example_rng(0, 1))
    assert int((masked[..., 0] == 0).sum()) == 25 and np.all(masked.min(-1) == masked.max(-1))


def test_degrade_ycbcr_round_trip_and_grey():
    rgb = np.random.default_rng(9).random((16, 16, 3)).astype(np.float32)
    ycbcr = degrade.rgb_to_ycbcr(rgb)
    np.testing.assert_allclose(degrade.ycbcr_to_rgb(ycbcr), rgb, atol=1e-5)
    np.testing.assert_allclose(degrade.rgb_to_ycbcr(np.ones(3))[0], 235 / 255, atol=1e-6)
    black = degrade.rgb_to_ycbcr(np.zeros(3))
    np.testing.assert_allclose(black, [16 / 255, 128 / 255, 128 / 255], atol=1e-6)
    assert degrade.rgb_to_grey(rgb).shape == (16, 16, 1)
    np.testing.assert_allclose(degrade.rgb_to_grey(np.ones((1, 1, 3))), 1.0, atol=1e-6)
