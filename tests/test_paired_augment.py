"""Paired augmentation: a segmentation mask follows its image through every geometric op, on the
host and on device, and the photometric ops leave it alone.

"Follows" is checked pixel by pixel with a one-hot image: image channel k is 1 where the mask
is class k. A geometric op moves it bilinearly, so at each output pixel channel k holds the
weight class k got from the input pixels the sample point blends, and the weight lost to the
zero fill (padding, points outside) is the share of the mask's fill. The mask, sampled
nearest, must pick a class with a real share of that weight (the nearest pixel's is at least
1/4), and the only class where one class has all of it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import data.augment as augment
from data.augment import geometric, policies, registry
from data.augment.pipeline import resolve
from data.augment.sampling import DeviceSampler
from errors import UserError

K = 4        # classes in the test masks
FILL = 9     # the mask fill in these tests, told apart from every class
N = 16       # draws per op

GEOMETRIC = [
    "random_crop(12, pad=3)",
    "random_resized_crop(9)",
    "flip_lr",
    "flip_ud",
    "rotate(40)",
    "translate(0.25)",
    "scale((0.6, 1.4))",
    "affine(degrees=30, translate=0.15, scale=0.3)",
]
POLICIES = ["randaugment(2, 9)", "trivialaugment"]
PHOTOMETRIC = [
    "brightness(0.5)", "contrast(0.5)", "saturation(0.8)", "hue(0.3)", "greyscale(0.5)",
    "gaussian_noise(0.1)", "gaussian_blur((0.5, 1.5), 3)", "cutout(4)", "random_erasing(0.9)",
    "normalize(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))",
]


def _mask(seed=0, h=12, w=12, block=3):
    """Piecewise-constant classes 0..K-1 in block x block squares (uint8)."""
    coarse = np.random.default_rng(seed).integers(0, K, (h // block, w // block))
    return np.kron(coarse, np.ones((block, block), int)).astype(np.uint8)


def _one_hot(mask):
    return np.eye(K, dtype=np.float32)[mask]


def _rgb(h=12, w=12):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([(x + 1) / w, (y + 1) / h, (x + 2 * y) / (w + 2 * h)], -1)


def assert_follows(image, mask, fill=FILL):
    """The mask agrees with the one-hot image it was transformed with (module docstring).

    The weight the image lost to its zero fill counts as one more class, the mask's `fill`.
    """
    image, mask = np.asarray(image), np.asarray(mask)
    assert mask.shape == image.shape[:2]
    weights = np.concatenate([image, 1 - image.sum(-1, keepdims=True)], -1)
    assert np.all(weights >= -1e-5)
    assert np.all((mask < K) | (mask == fill))
    chosen = np.take_along_axis(weights, np.where(mask == fill, K, mask)[..., None], -1)
    assert np.all(chosen >= 0.2), chosen.min()
    pure = weights.max(-1) >= 1 - 1e-5
    np.testing.assert_array_equal(np.where(mask == fill, K, mask)[pure],
                                  weights.argmax(-1)[pure])
    return pure.mean()


def _device_draws(spec, image, mask, n=N, seed=0):
    """(params, images, masks) of `spec`'s single op for n keys, one compiled call."""
    [(op, args)] = resolve(spec)

    def one(key):
        params = op.draw(DeviceSampler(key), image.shape, **args)
        return (params, op.device(jnp.asarray(image), **params),
                op.mask_device(jnp.asarray(mask), FILL, **params))

    params, images, masks = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(seed), n))
    return params, np.asarray(images), np.asarray(masks)


def _example(params, i):
    return jax.tree.map(lambda a: np.asarray(a)[i], params)


# --------------------------------------------------------------------------- which ops move it

def test_exactly_the_geometric_ops_move_a_mask():
    moving = {name for name in augment.names() if registry.get(name).moves_pixels}
    assert moving == {augment.parse(s)[0].name for s in GEOMETRIC + POLICIES}
    assert set(augment.names()) == moving | {augment.parse(s)[0].name for s in PHOTOMETRIC}


# --------------------------------------------------------------------------- follows, both twins

@pytest.mark.parametrize("spec", GEOMETRIC)
def test_mask_follows_its_image_on_device_and_the_host_twin_agrees(spec):
    mask = _mask()
    image = _one_hot(mask)
    params, images, masks = _device_draws(spec, image, mask)
    [(op, _)] = resolve(spec)
    pure = []
    for i in range(N):
        pure.append(assert_follows(images[i], masks[i]))
        host_mask = op.mask_host(mask, FILL, **_example(params, i))
        assert host_mask.dtype == np.uint8
        np.testing.assert_array_equal(host_mask, masks[i])  # same draw: the same mask, exactly
    assert np.mean(pure) > 0.3  # the check compared many pixels, not just blurred edges


@pytest.mark.parametrize("spec", GEOMETRIC)
def test_mask_follows_its_image_through_the_host_pipeline(spec):
    mask = _mask(1)
    run = augment.host_pipeline(spec, mask_fill=FILL)
    for i in range(N):
        image, moved = run(_one_hot(mask), np.random.default_rng(i), mask=mask)
        assert moved.dtype == mask.dtype
        assert_follows(image, moved)


def test_device_pipeline_moves_a_batch_of_masks():
    spec = "random_crop(12, pad=2)|flip_lr|flip_ud|affine(degrees=25, translate=0.1, scale=0.2)"
    masks = np.stack([_mask(s) for s in range(6)]).astype(np.int32)
    run = jax.jit(augment.device_pipeline(spec, mask_fill=FILL))
    images, moved = run(jnp.asarray(_one_hot(masks)), jax.random.key(3), masks=jnp.asarray(masks))
    assert moved.shape == masks.shape and moved.dtype == jnp.int32
    for i in range(len(masks)):
        assert_follows(images[i], moved[i])
    assert not np.array_equal(moved[0], masks[0])


@pytest.mark.parametrize("spec", POLICIES)
def test_policies_move_the_mask_with_their_warps_only(spec):
    image, mask = _rgb(), _mask(2)
    [(op, args)] = resolve(spec)

    def one(key):
        params = op.draw(DeviceSampler(key), image.shape, **args)
        return params, op.mask_device(jnp.asarray(mask), FILL, **params)

    params, masks = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), 32))
    warped = 0
    for i in range(32):
        p = _example(params, i)
        np.testing.assert_array_equal(op.mask_host(mask, FILL, **p), masks[i])
        if not any(policies.OPS[int(o)] in policies.WARPS for o in p["ops"]):
            np.testing.assert_array_equal(masks[i], mask)  # pixel ops only: untouched
        else:
            warped += 1
            assert set(np.unique(masks[i])) <= set(np.unique(mask)) | {FILL}
    assert warped > 0


def test_a_policy_warp_moves_the_mask_as_the_single_op_does():
    mask = _mask(3)
    op = policies.OPS.index("translate_x")
    moved = policies.mask_host(mask, FILL, np.array([op]), np.array([0.25], np.float32))
    expected = geometric.translate_mask_host(mask, FILL, dy=0, dx=3)
    np.testing.assert_array_equal(moved, expected)


# --------------------------------------------------------------------------- exact, by hand

def _both(host, device, mask, **params):
    return host(mask, FILL, **params), np.asarray(
        jax.jit(lambda m: device(m, FILL, **params))(jnp.asarray(mask)))


def test_crop_pads_the_mask_with_the_fill():
    mask = np.arange(1, 10, dtype=np.uint8).reshape(3, 3)
    for out in _both(geometric.random_crop_mask_host, geometric.random_crop_mask_device, mask,
                     top=0, left=0, size=3, pad=1):
        np.testing.assert_array_equal(out, [[FILL, FILL, FILL], [FILL, 1, 2], [FILL, 4, 5]])


def test_flips_and_translate_move_masks_like_images():
    mask = np.arange(16, dtype=np.int32).reshape(4, 4)
    shifted = np.full((4, 4), FILL, np.int32)
    shifted[1:, :2] = mask[:3, 2:]  # down 1, left 2, the fill where nothing came from
    for host, device, params, expected in [
            (geometric.flip_lr_mask_host, geometric.flip_lr_mask_device, dict(flip=True),
             mask[:, ::-1]),
            (geometric.flip_ud_mask_host, geometric.flip_ud_mask_device, dict(flip=True),
             mask[::-1]),
            (geometric.flip_lr_mask_host, geometric.flip_lr_mask_device, dict(flip=False), mask),
            (geometric.translate_mask_host, geometric.translate_mask_device,
             dict(dy=1.0, dx=-2.0), shifted)]:
        for out in _both(host, device, mask, **params):
            np.testing.assert_array_equal(out, expected)


def test_resized_crop_at_the_same_scale_copies_the_mask_and_halving_picks_consistently():
    mask = _mask(4, 8, 8, block=1)
    same = geometric.resized_crop_mask(np, mask, 1, 2, 5, 5, 5)
    np.testing.assert_array_equal(same, mask[1:6, 2:7])
    # A 2x shrink puts every centre halfway between two pixels: both twins pick the same one.
    host = geometric.resized_crop_mask(np, mask, 0, 0, 8, 8, 4)
    device = jax.jit(lambda m: geometric.resized_crop_mask(jnp, m, 0, 0, 8, 8, 4))(mask)
    np.testing.assert_array_equal(host, np.asarray(device))
    np.testing.assert_array_equal(host, mask[1::2, 1::2])


def test_rotation_by_zero_and_half_scale_agree_between_twins():
    mask = _mask(5, 8, 8, block=1)
    for out in _both(geometric.rotate_mask_host, geometric.rotate_mask_device, mask, angle=0.0):
        np.testing.assert_array_equal(out, mask)
    host, device = _both(geometric.scale_mask_host, geometric.scale_mask_device, mask,
                         factor=2.0)
    np.testing.assert_array_equal(host, device)


# --------------------------------------------------------------------------- untouched, unchanged

@pytest.mark.parametrize("spec", PHOTOMETRIC)
def test_photometric_ops_leave_the_mask_as_it_is(spec):
    image, mask = _rgb(), _mask(6)
    alone = augment.host_pipeline(spec)(image, np.random.default_rng(0))
    paired, same = augment.host_pipeline(spec)(image, np.random.default_rng(0), mask=mask)
    np.testing.assert_array_equal(paired, alone)
    np.testing.assert_array_equal(same, mask)


def test_photometric_ops_leave_masks_as_they_are_on_device():
    spec = "|".join(PHOTOMETRIC)
    images = jnp.asarray(np.stack([_rgb()] * 3))
    masks = jnp.asarray(np.stack([_mask(s) for s in range(3)]))
    out, same = jax.jit(augment.device_pipeline(spec))(images, jax.random.key(0), masks=masks)
    np.testing.assert_array_equal(same, masks)
    assert out.shape == images.shape


def test_a_mask_changes_neither_the_draws_nor_the_images():
    spec = "random_crop(12, pad=2)|flip_lr|rotate(20)|brightness(0.3)|gaussian_noise(0.05)"
    image, mask = _rgb(), _mask(7)
    host = augment.host_pipeline(spec)
    np.testing.assert_array_equal(host(image, np.random.default_rng(5), mask=mask)[0],
                                  host(image, np.random.default_rng(5)))
    device = augment.device_pipeline(spec)
    images, masks = jnp.asarray(np.stack([image] * 2)), jnp.asarray(np.stack([mask] * 2))
    alone = jax.jit(device)(images, jax.random.key(1))
    paired, _ = jax.jit(lambda i, k, m: device(i, k, masks=m))(images, jax.random.key(1), masks)
    np.testing.assert_array_equal(paired, alone)


def test_empty_spec_returns_image_and_mask():
    image, mask = _rgb(), _mask()
    out, same = augment.host_pipeline("")(image, None, mask=mask)
    np.testing.assert_array_equal(out, image)
    assert same is not None and np.array_equal(same, mask)
    images, masks = jnp.asarray(image[None]), jnp.asarray(mask[None])
    out, same = augment.device_pipeline("")(images, jax.random.key(0), masks=masks)
    assert out is images and same is masks


def test_a_mask_of_another_size_is_a_user_error():
    with pytest.raises(UserError, match=r"mask shape \(12, 11\) does not fit image shape") as e:
        augment.host_pipeline("flip_lr")(_rgb(), np.random.default_rng(0),
                                         mask=np.zeros((12, 11), np.uint8))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"masks shape \(2, 12, 12\) does not fit images shape"):
        augment.device_pipeline("flip_lr")(jnp.zeros((3, 12, 12, 3)), jax.random.key(0),
                                           masks=jnp.zeros((2, 12, 12), jnp.int32))
