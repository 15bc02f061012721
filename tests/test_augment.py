"""Augmentation ops: host (NumPy) and device (JAX) twins agree, hand-made exact cases, spec errors.

For every op one jitted, vmapped device call draws parameters for a batch of examples and
applies them; the host twin then applies the same drawn parameters (exact agreement), and the
host pipeline's own draws are compared with the device's in distribution (loose agreement).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import data.augment as augment
from data.augment import geometric, registry
from data.augment.pipeline import resolve
from data.augment.sampling import DeviceSampler
from errors import UserError

N = 128  # draws per op for the distribution comparison


def _image(h=8, w=8, c=3):
    """A smooth, coloured, asymmetric test image in [0, 1]."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([(x + 1) / w, (y + 1) / h, (x + 2 * y) / (w + 2 * h)], -1)
    return base[..., :c].astype(np.float32)


def _device_draws(spec, image, n, seed=0):
    """(params per example, device outputs) for `spec`'s single op, one compiled call."""
    [(op, args)] = resolve(spec)

    def one(key):
        params = op.draw(DeviceSampler(key), image.shape, **args)
        return params, op.device(jnp.asarray(image), **params)

    params, out = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(seed), n))
    return params, np.asarray(out)


def _example(params, i):
    return jax.tree.map(lambda a: np.asarray(a)[i], params)


# spec, bit-exact twins (True) or equal to float rounding (False)
OPS = [
    ("random_crop(8, pad=2)", True),
    ("random_resized_crop(6)", False),
    ("flip_lr", True),
    ("flip_ud", True),
    ("rotate(30)", False),
    ("translate(0.25)", True),
    ("scale((0.7, 1.3))", False),
    ("affine(degrees=20, translate=0.1, scale=0.2)", False),
    ("brightness(0.5)", False),
    ("contrast(0.5)", False),
    ("saturation(0.8)", False),
    ("hue(0.3)", False),
    ("greyscale(0.5)", False),
    ("gaussian_noise(0.1)", False),
    ("gaussian_blur((0.5, 1.5), 3)", False),
    ("cutout(4)", True),
    ("random_erasing(0.9)", True),
    ("random_erasing(0.9, value=random)", True),
    ("normalize(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))", False),
]


def test_every_registered_op_is_tested():
    tested = {registry.get(augment.parse(spec)[0].name).name for spec, _ in OPS}
    policies = {"randaugment", "trivialaugment"}  # tests/test_augment_policies.py
    assert tested | policies == set(augment.names())


@pytest.mark.parametrize("spec,bit_exact", OPS, ids=[s for s, _ in OPS])
def test_host_and_device_twins_agree(spec, bit_exact):
    image = _image()
    params, device_out = _device_draws(spec, image, N)
    [(op, _)] = resolve(spec)

    # Same parameters: same output (the twins share the maths, not just the distribution).
    for i in range(8):
        host_out = op.host(image, **_example(params, i))
        assert host_out.dtype == np.float32 and host_out.shape == device_out[i].shape
        if bit_exact:
            np.testing.assert_array_equal(host_out, device_out[i])
        else:
            np.testing.assert_allclose(host_out, device_out[i], atol=2e-5)

    # Own draws: same distribution (mean and spread over draws, loose tolerance).
    run = augment.host_pipeline(spec)
    host = np.stack([run(image, np.random.default_rng(i)) for i in range(N)])
    assert host.shape == device_out.shape and host.dtype == np.float32
    np.testing.assert_allclose(host.mean(), device_out.mean(), atol=0.03)
    np.testing.assert_allclose(host.std(0).mean(), device_out.std(0).mean(), atol=0.03)


# --------------------------------------------------------------------------- exact, by hand

def _both(fn_host, fn_device, image, **params):
    """Host and device outputs for fixed params (jitted: one compile, not one per eager op)."""
    device = jax.jit(lambda im: fn_device(im, **params))
    return fn_host(image, **params), np.asarray(device(jnp.asarray(image)))


def test_flips_on_arange():
    image = np.arange(2 * 3 * 1, dtype=np.float32).reshape(2, 3, 1)
    for out in _both(geometric.flip_lr_host, geometric.flip_lr_device, image, flip=True):
        np.testing.assert_array_equal(out[..., 0], [[2, 1, 0], [5, 4, 3]])
    for out in _both(geometric.flip_ud_host, geometric.flip_ud_device, image, flip=True):
        np.testing.assert_array_equal(out[..., 0], [[3, 4, 5], [0, 1, 2]])
    for out in _both(geometric.flip_lr_host, geometric.flip_lr_device, image, flip=False):
        np.testing.assert_array_equal(out, image)


def test_random_crop_pads_with_zeros():
    image = np.arange(1, 10, dtype=np.float32).reshape(3, 3, 1)
    expected = [[0, 0, 0], [0, 1, 2], [0, 4, 5]]
    for out in _both(geometric.random_crop_host, geometric.random_crop_device, image,
                     top=0, left=0, size=3, pad=1):
        np.testing.assert_array_equal(out[..., 0], expected)
    for out in _both(geometric.random_crop_host, geometric.random_crop_device, image,
                     top=2, left=1, size=2, pad=1):
        np.testing.assert_array_equal(out[..., 0], [[4, 5], [7, 8]])


def test_random_crop_offsets_cover_every_position():
    run = augment.host_pipeline("random_crop(4, pad=1)")
    image = np.arange(1, 17, dtype=np.float32).reshape(4, 4, 1)
    crops = {run(image, np.random.default_rng(i)).tobytes() for i in range(200)}
    assert len(crops) == 9  # top and left each in {0, 1, 2}


def test_resized_crop_at_the_same_scale_copies_pixels():
    image = _image(5, 7)
    assert geometric.resized_crop(np, image, 0, 0, 5, 7, 5).shape == (5, 5, 3)  # squashed
    np.testing.assert_array_equal(geometric.resized_crop(np, image, 1, 2, 3, 3, 3),
                                  image[1:4, 2:5])
    square = _image(6, 6)
    np.testing.assert_array_equal(geometric.resized_crop(np, square, 0, 0, 6, 6, 6), square)


def test_resized_crop_matches_pil_bilinear_resize_of_the_box():
    from PIL import Image
    image = np.random.default_rng(0).random((8, 9), dtype=np.float32)
    for top, left, height, width, size in [(2, 1, 6, 5, 4), (1, 1, 3, 4, 7), (0, 0, 8, 9, 3)]:
        box = (left, top, left + width, top + height)
        pil = Image.fromarray(image, mode="F").resize((size, size), Image.Resampling.BILINEAR,
                                                       box=box)
        ours = geometric.resized_crop(np, image[..., None], top, left, height, width, size)
        np.testing.assert_allclose(ours[..., 0], np.asarray(pil), atol=1e-6)


def test_translate_moves_whole_pixels_and_fills_zeros():
    image = np.arange(1, 17, dtype=np.float32).reshape(4, 4, 1)
    expected = np.zeros((4, 4), np.float32)
    expected[1:, :2] = image[:3, 2:, 0]
    for out in _both(geometric.translate_host, geometric.translate_device, image, dy=1, dx=-2):
        np.testing.assert_array_equal(out[..., 0], expected)


def test_rotate_by_zero_is_the_identity():
    image = _image()
    for out in _both(geometric.rotate_host, geometric.rotate_device, image, angle=0.0):
        np.testing.assert_array_equal(out, image)


def test_affine_is_each_warp_when_the_others_are_off():
    image = _image()
    one = dict(angle=0.0, factor=1.0, dy=0.0, dx=0.0)
    cases = [(geometric.rotate_device, dict(angle=17.0), dict(angle=17.0)),
             (geometric.scale_device, dict(factor=1.2), dict(factor=1.2)),
             (geometric.translate_device, dict(dy=2.0, dx=-1.0), dict(dy=2.0, dx=-1.0))]
    for single, params, affine_params in cases:
        expected = np.asarray(jax.jit(lambda im: single(im, **params))(image))
        got = np.asarray(jax.jit(
            lambda im: geometric.affine_op_device(im, **{**one, **affine_params}))(image))
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_affine_composes_rotate_then_scale_then_shift():
    # The composed inverse map sends an output pixel where the three single maps, applied in
    # turn, send it: check on coordinates, where no resampling blurs the comparison.
    shape = (9, 9, 1)
    m, b = geometric.chain(np, geometric.shift(np, 2.0, 1.0), geometric.zoom(np, shape, 1.5),
                           geometric.rotation(np, shape, 30.0))
    point = np.array([3.0, 5.0], np.float32)
    for a, off in (geometric.shift(np, 2.0, 1.0), geometric.zoom(np, shape, 1.5),
                   geometric.rotation(np, shape, 30.0)):
        point = a @ point + off
    np.testing.assert_allclose(m @ np.array([3.0, 5.0], np.float32) + b, point, atol=1e-5)


def test_cutout_box_is_clipped_at_the_border():
    from data.augment.erasing import erase
    image = np.ones((4, 4, 1), np.float32)
    for xp in (np, jnp):
        out = np.asarray(erase(xp, xp.asarray(image), top=-1, left=2, height=3, width=3, fill=0))
        expected = np.ones((4, 4))
        expected[:2, 2:] = 0
        np.testing.assert_array_equal(out[..., 0], expected)


@pytest.mark.parametrize("spec", ["saturation(0.9)", "hue(0.4)", "greyscale(1.0)"])
def test_colour_ops_are_identity_on_one_channel(spec):
    image = _image(c=1)
    [(op, args)] = resolve(spec)
    params = op.draw(DeviceSampler(jax.random.key(3)), image.shape, **args)
    np.testing.assert_array_equal(op.host(image, **_example(params, ())), image)
    np.testing.assert_array_equal(np.asarray(op.device(jnp.asarray(image), **params)), image)


def test_greyscale_uses_rec601_luma_on_rgb():
    image = _image()
    luma = image @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    out = augment.host_pipeline("greyscale(1.0)")(image, np.random.default_rng(0))
    np.testing.assert_allclose(out, np.repeat(luma[..., None], 3, -1), atol=1e-6)


# --------------------------------------------------------------------------- pipelines

def test_pipelines_compose_keep_dtype_and_are_deterministic():
    spec = ["random_crop(8, pad=1)|flip_lr", "brightness(0.2)|normalize(mean=0.5, std=0.25)"]
    image = _image(c=1)  # the default dataset is greyscale
    host = augment.host_pipeline(spec)
    a, b = host(image, np.random.default_rng(7)), host(image, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (8, 8, 1) and a.dtype == np.float32
    device = jax.jit(augment.device_pipeline(spec))
    batch = jnp.asarray(np.stack([image] * 4))
    out = device(batch, jax.random.key(0))
    assert out.shape == batch.shape and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, device(batch, jax.random.key(0)))
    assert not np.array_equal(out[0], out[1])  # each example has its own key


def test_empty_spec_is_no_augmentation():
    image = _image()
    for spec in ("", "none", None, []):
        assert augment.parse(spec) == []
        np.testing.assert_array_equal(augment.host_pipeline(spec)(image, None), image)
        batch = jnp.asarray(image[None])
        assert augment.device_pipeline(spec)(batch, jax.random.key(0)) is batch


def test_normalize_resolves_dataset_statistics(monkeypatch):
    image = _image()
    with pytest.raises(UserError, match=r"no statistics for cifar10; run `launch.py stats cifar"):
        augment.host_pipeline("normalize(cifar10)")
    monkeypatch.setattr("data.augment.normalize.stats_lookup",
                        lambda name: ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)))
    out = augment.host_pipeline("normalize(cifar10)")(image, np.random.default_rng(0))
    expected = (image - np.float32([0.5, 0.4, 0.3])) / np.float32([0.2, 0.25, 0.3])
    np.testing.assert_allclose(out, expected, rtol=1e-6)


# --------------------------------------------------------------------------- spec parsing

def test_parse_binds_arguments_and_defaults():
    calls = augment.parse("random_crop(32, pad=4)|flip_lr|cutout(8)|normalize(cifar10)")
    assert [c.name for c in calls] == ["random_crop", "flip_lr", "cutout", "normalize"]
    assert calls[0].args == {"size": 32, "pad": 4}
    assert calls[1].args == {"p": 0.5}
    assert calls[3].args["name"] == "cifar10"
    [rrc] = augment.parse(["random_resized_crop(24, ratio=(3/4, 4/3))"])
    assert rrc.args["ratio"] == (0.75, 4 / 3) and rrc.args["scale"] == (0.08, 1.0)


@pytest.mark.parametrize("spec,message", [
    ("random_flip", r"unknown augmentation op 'random_flip'; known ops: .*flip_lr"),
    ("random_crop", r"random_crop: missing a required argument: 'size'.*\(size, pad=0\)"),
    ("random_crop(32, padding=4)", r"random_crop: got an unexpected keyword argument 'padding'"),
    ("random_crop('a')", r"random_crop: argument size='a' should be an integer"),
    ("random_crop(3.5)", r"random_crop: argument size=3.5 should be an integer"),
    ("flip_lr(1.5)", r"flip_lr: p must be in \[0, 1\]"),
    ("hue(0.7)", r"hue: d must be in \[0, 0.5\]"),
    ("gaussian_blur(1.0, 4)", r"gaussian_blur: kernel must be odd"),
    ("scale((1.2, 0.8))", r"scale: argument range=\(1.2, 0.8\) should be .*low <= high"),
    ("randaugment(2, 30)", r"randaugment: m is on the paper's 0..10 scale"),
    ("normalize", r"normalize: give a dataset name"),
    ("mixup(0.2)", r"'mixup' mixes pairs of examples .*mix_batch"),
    ("flip_lr|", r"cannot read augmentation ''"),
    ("random_crop(32", r"cannot read augmentation 'random_crop\(32'"),
    ("cutout(size=os.system)", r"cutout: cannot read argument 'os.system'"),
])
def test_parse_errors_are_one_line_user_errors(spec, message):
    with pytest.raises(UserError, match=message) as err:
        augment.parse(spec)
    assert "\n" not in str(err.value)


def test_crop_larger_than_the_image_is_a_user_error():
    with pytest.raises(UserError, match=r"random_crop\(16, pad=2\) is larger than the 8x8 image"):
        augment.host_pipeline("random_crop(16, pad=2)")(_image(), np.random.default_rng(0))
