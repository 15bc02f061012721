"""RandAugment and TrivialAugment: the papers' 14 ops, each op's twins, PIL semantics, the draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

import data.augment as augment
from data.augment import enhance, policies
from data.augment.pipeline import resolve
from data.augment.sampling import DeviceSampler, HostSampler

# One argument per op, in policies.OPS order, each far enough from neutral to do something.
VALUES = dict(identity=0, auto_contrast=0, equalize=0, rotate=20, solarize=0.5, color=1.6,
              posterize=3, contrast=0.6, brightness=1.3, sharpness=1.8, shear_x=0.2,
              shear_y=-0.2, translate_x=0.25, translate_y=-0.25)


def _image(c=3, seed=0, size=24):
    # 24 x 24: equalize, like PIL's, leaves images of under ~256 pixels alone.
    return np.random.default_rng(seed).random((size, size, c), dtype=np.float32)


def test_the_op_list_is_autoaugments():
    assert set(policies.OPS) == {
        "identity", "auto_contrast", "equalize", "rotate", "solarize", "color", "posterize",
        "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x",
        "translate_y"}
    assert list(VALUES) == list(policies.OPS)


@pytest.mark.parametrize("channels", [3, 1])
def test_each_op_host_and_device_agree(channels):
    image = _image(channels)
    ops = jnp.arange(len(policies.OPS), dtype=jnp.int32)
    values = jnp.asarray(list(VALUES.values()), jnp.float32)
    run = jax.jit(jax.vmap(lambda op, v: policies.apply_device(jnp.asarray(image), op[None],
                                                               v[None])))
    device = np.asarray(run(ops, values))
    for i, name in enumerate(policies.OPS):
        host = policies.apply_host(image, [i], [np.float32(VALUES[name])])
        np.testing.assert_allclose(host, device[i], atol=2e-5, err_msg=name)
        if name != "identity" and not (name == "color" and channels == 1):  # grey has no colour
            assert not np.array_equal(host, image), f"{name} left the image unchanged"


def _pil(image):
    return Image.fromarray(np.round(image * 255).astype(np.uint8))


@pytest.mark.parametrize("name,pil_op,tolerance", [
    ("equalize", ImageOps.equalize, 0),
    ("posterize", lambda im: ImageOps.posterize(im, 3), 0),
    ("solarize", lambda im: ImageOps.solarize(im, 128), 0),
    ("auto_contrast", ImageOps.autocontrast, 1),
    ("brightness", lambda im: ImageEnhance.Brightness(im).enhance(1.3), 1),
    ("color", lambda im: ImageEnhance.Color(im).enhance(1.6), 2),
    ("contrast", lambda im: ImageEnhance.Contrast(im).enhance(0.6), 2),
    ("sharpness", lambda im: ImageEnhance.Sharpness(im).enhance(1.8), 2),
])
def test_pixel_ops_follow_pil(name, pil_op, tolerance):
    """On 8-bit images our float ops give PIL's result, to PIL's own uint8 rounding."""
    image = np.round(_image() * 255) / 255
    value = {"solarize": 128 / 255}.get(name, VALUES[name])
    ours = policies.apply_host(image.astype(np.float32), [policies.OPS.index(name)], [value])
    expected = np.asarray(pil_op(_pil(image)), np.float32)
    assert np.abs(np.round(ours * 255) - expected).max() <= tolerance


def test_equalize_leaves_a_flat_image_alone():
    flat = np.full((4, 4, 1), 0.3, np.float32)
    np.testing.assert_array_equal(enhance.equalize(np, flat), flat)


def _draws(spec, n):
    [(op, args)] = resolve(spec)
    return [op.draw(HostSampler(np.random.default_rng(i)), (8, 8, 3), **args) for i in range(n)]


def test_randaugment_uses_magnitude_m_on_every_op():
    rotations = [abs(float(v)) for d in _draws("randaugment(3, 9)", 300)
                 for o, v in zip(d["ops"], d["values"]) if policies.OPS[o] == "rotate"]
    np.testing.assert_allclose(rotations, 27.0, rtol=1e-6)  # 9/10 of 30 degrees
    ops = np.concatenate([d["ops"] for d in _draws("randaugment(3, 9)", 300)])
    assert set(ops) == set(range(len(policies.OPS)))


def test_trivialaugment_draws_one_op_at_a_binned_level():
    draws = _draws("trivialaugment", 400)
    assert all(d["ops"].shape == (1,) for d in draws)
    rotations = [abs(float(d["values"][0])) for d in draws if policies.OPS[d["ops"][0]] == "rotate"]
    bins = np.array(rotations) / 135 * 30
    np.testing.assert_allclose(bins, np.round(bins), atol=1e-4)


@pytest.mark.parametrize("spec,channels", [("randaugment(2, 9)", 3), ("trivialaugment", 1)])
def test_policy_twins_agree(spec, channels):
    image, n = _image(channels, size=8), 64
    [(op, args)] = resolve(spec)

    def one(key):
        params = op.draw(DeviceSampler(key), image.shape, **args)
        return params, op.device(jnp.asarray(image), **params)

    params, device = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), n))
    device = np.asarray(device)
    # Same drawn ops: same output. Chained ops re-quantise (posterize, equalize), so a value
    # on a rounding edge may differ by a level: allow a few such pixels, not systematic ones.
    for i in range(16):
        host = op.host(image, **jax.tree.map(lambda a, i=i: np.asarray(a)[i], params))
        assert np.mean(np.abs(host - device[i]) > 2e-5) < 0.01
    ops = np.asarray(params["ops"]).ravel()
    assert len(set(ops)) >= 10  # the device draws spread over the op list
    run = augment.host_pipeline(spec)
    host = np.stack([run(image, np.random.default_rng(i)) for i in range(n)])
    np.testing.assert_allclose(host.mean(), device.mean(), atol=0.05)
    np.testing.assert_allclose(host.std(0).mean(), device.std(0).mean(), atol=0.05)
