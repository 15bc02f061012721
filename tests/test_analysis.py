"""The analysis kit (analysis/): each method checked against what it must equal on a network
small enough to work out by hand, and `launch.py analyze`'s one-line errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from analysis import adversarial, cli, dream, equivariance, gradcam, guided, saliency, style, taps
from errors import UserError
from tests.helpers import run_launch


class LinearImage(nnx.Module):
    """logits = flatten(x) @ W + b."""

    def __init__(self, shape, classes, rngs):
        self.fc = nnx.Linear(int(np.prod(shape)), classes, rngs=rngs)
        self.shape = shape

    def __call__(self, x):
        return self.fc(x.reshape(x.shape[0], -1))


class GapNet(nnx.Module):
    """conv -> ReLU -> conv -> global average pool -> dense; `padding` for both convs."""

    def __init__(self, rngs, padding="SAME", classes=3):
        self.conv1 = nnx.Conv(1, 4, (3, 3), padding=padding, rngs=rngs)
        self.conv2 = nnx.Conv(4, 5, (3, 3), padding=padding, rngs=rngs)
        self.fc = nnx.Linear(5, classes, rngs=rngs)
        self.act = nnx.relu

    def __call__(self, x):
        return self.fc(self.conv2(self.act(self.conv1(x))).mean(axis=(1, 2)))


class ReluMLP(nnx.Module):
    """y = W2 relu(W1 flatten(x)), no biases: the ReLU rules can be worked out by hand."""

    def __init__(self, rngs):
        self.fc1 = nnx.Linear(16, 12, use_bias=False, rngs=rngs)
        self.fc2 = nnx.Linear(12, 2, use_bias=False, rngs=rngs)
        self.act = nnx.relu

    def __call__(self, x):
        return self.fc2(self.act(self.fc1(x.reshape(x.shape[0], -1))))


def _image(shape, seed=0, lo=0.0, hi=1.0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32)


def test_saliency_of_a_linear_model_is_its_weights():
    model = LinearImage((6, 6, 2), 4, nnx.Rngs(0))
    image = _image((6, 6, 2))
    weights = np.asarray(model.fc.kernel.get_value())[:, 3].reshape(6, 6, 2)
    np.testing.assert_allclose(saliency.vanilla_gradient(model, image, 3), weights, rtol=1e-6)
    np.testing.assert_allclose(saliency.smoothgrad(model, image, 3, samples=4), weights,
                               rtol=1e-5)
    # integrated gradients of a linear score: exactly (x - baseline) * w
    np.testing.assert_allclose(saliency.integrated_gradients(model, image, 3, steps=4),
                               image * weights, rtol=1e-5, atol=1e-7)


def test_gradcam_of_a_gap_net_is_its_class_activation_map():
    """conv2 -> global average pool -> dense: dy_c/dA_k is w_kc / (HW) everywhere, so
    Grad-CAM is ReLU(sum_k w_kc A_k) / (HW), the CAM of Zhou et al. 2016."""
    model = GapNet(nnx.Rngs(1))
    image = _image((8, 8, 1), seed=1)
    coarse, fine, layer = gradcam.gradcam(model, image, 2)
    assert layer == "conv2"  # the last spatial feature map
    a = np.asarray(model.conv2(model.act(model.conv1(jnp.asarray(image)[None]))))[0]
    w = np.asarray(model.fc.kernel.get_value())[:, 2]
    expected = np.maximum(a @ w, 0) / 64
    assert expected.max() > 0
    np.testing.assert_allclose(coarse, expected, rtol=1e-5, atol=1e-7)
    assert fine.shape == (8, 8)


def test_guided_backprop_and_deconvnet_apply_their_relu_rules():
    model = ReluMLP(nnx.Rngs(2))
    image = _image((4, 4, 1), seed=2, lo=-1.0)
    w1, w2 = np.asarray(model.fc1.kernel.get_value()), np.asarray(model.fc2.kernel.get_value())
    x = image.reshape(-1)
    on = (x @ w1) > 0
    g = w2[:, 1]                                      # d y_1 / d relu output
    assert on.any() and (~on).any() and (g > 0).any() and (g < 0).any()
    plain = w1 @ (g * on)
    guided_ = w1 @ (np.maximum(g, 0) * on)
    deconv = w1 @ np.maximum(g, 0)
    np.testing.assert_allclose(saliency.vanilla_gradient(model, image, 1).reshape(-1), plain,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(guided.guided_backprop(model, image, 1).reshape(-1), guided_,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(guided.deconvnet(model, image, 1).reshape(-1), deconv,
                               rtol=1e-5, atol=1e-7)
    assert model.act is nnx.relu  # the network itself is left as it was


def test_guided_backprop_refuses_a_network_without_relu():
    model = ReluMLP(nnx.Rngs(0))
    model.act = jnp.tanh
    with pytest.raises(UserError, match="no ReLU"):
        guided.guided_backprop(model, _image((4, 4, 1)), 0)


def _loss(model, images, labels):
    return float(optax.softmax_cross_entropy_with_integer_labels(
        model(jnp.asarray(images)), jnp.asarray(labels)).sum())


def test_fgsm_moves_exactly_epsilon_and_raises_the_loss():
    model = GapNet(nnx.Rngs(3))
    images = _image((4, 8, 8, 1), seed=3, lo=0.3, hi=0.7)   # away from the box's edges
    labels = np.array([0, 1, 2, 0])
    adv = adversarial.attacker(model, "fgsm")(images, labels, 0.05)
    moved = np.abs(adv - images)
    np.testing.assert_allclose(moved.max(), 0.05, rtol=1e-5)
    assert np.all(np.isclose(moved, 0.05, rtol=1e-4) | (moved == 0))
    assert _loss(model, adv, labels) > _loss(model, images, labels)


def test_pgd_stays_in_the_ball_and_the_box():
    model = GapNet(nnx.Rngs(4))
    images = _image((4, 8, 8, 1), seed=4)
    labels = np.array([2, 1, 0, 1])
    adv = adversarial.attacker(model, "pgd", steps=8)(images, labels, 0.1)
    assert np.abs(adv - images).max() <= 0.1 + 1e-6
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    assert np.abs(adv - images).max() > 0.09       # it does use the budget
    assert _loss(model, adv, labels) > _loss(model, images, labels)


def test_gram_matrices_equal_numpys():
    f = _image((2, 5, 3, 4), seed=5, lo=-1.0)
    expected = np.stack([m.reshape(15, 4).T @ m.reshape(15, 4) / 15 for m in f])
    np.testing.assert_allclose(np.asarray(style.gram(jnp.asarray(f))), expected, rtol=1e-5)


def test_style_layers_of_a_vgg_are_the_papers():
    import models

    vgg = nnx.eval_shape(lambda: models.create("vgg16", num_classes=10))
    content, styles = style.default_layers(vgg, (32, 32, 3))
    blocks = [f"convs.layers.{i}" for i in (0, 3, 6, 10, 14)]  # conv1_1 ... conv5_1
    assert styles == blocks and content == ["convs.layers.11"]  # conv4_2


def test_deepdream_raises_its_objective():
    model = GapNet(nnx.Rngs(6))
    image = _image((16, 16, 1), seed=6, lo=0.2, hi=0.8)
    dreamed, history = dream.deepdream(model, image, "conv1", steps=5, octaves=2)
    assert [shape for shape, _, _ in history] == [(11, 11), (16, 16)]
    assert all(after > before for _, before, after in history)
    objective = dream.dream_objective(model, "conv1")
    assert float(objective(jnp.asarray(dreamed)[None])) > float(
        objective(jnp.asarray(image)[None]))


def test_a_circularly_padded_conv_stack_is_exactly_shift_equivariant():
    model = GapNet(nnx.Rngs(7), padding="CIRCULAR")
    image = _image((12, 12, 1), seed=7)
    rows, change = equivariance.layer_distances(model, image, 3, {"conv1": 1, "conv2": 1},
                                                mode="circular")
    for row in rows:
        assert row.equivariance_error < 1e-5
        assert row.invariance_distance > 0.1        # the maps did move
    assert change < 1e-5                            # global pooling: invariant output


class TwoStage(nnx.Module):
    """conv > pool > conv > pool > dense, the pooling layer one module called twice."""

    def __init__(self, rngs):
        from models import layers

        self.c1 = nnx.Conv(1, 3, (3, 3), padding="VALID", rngs=rngs)
        self.c2 = nnx.Conv(3, 4, (3, 3), padding="VALID", rngs=rngs)
        self.pool = layers.Pool("max", 2)
        self.head = nnx.Linear(16, 2, rngs=rngs)

    def __call__(self, x):
        x = self.pool(self.c2(self.pool(self.c1(x))))
        return self.head(x.reshape(x.shape[0], -1))


def test_layers_are_named_by_module_path_and_unknown_ones_are_listed():
    model = TwoStage(nnx.Rngs(0))
    assert taps.layers(model, (14, 14, 1)) == {
        "c1": (12, 12, 3), "pool#1": (6, 6, 3), "c2": (4, 4, 4), "pool#2": (2, 2, 4),
        "head": (2,)}
    with pytest.raises(UserError, match=r"'c9' is not a layer.*c1, pool#1, c2, pool#2, head"):
        taps.check_layer(model, (14, 14, 1), "c9")
    # a layer read at a size the later (dense) layer refuses: the pass stops after it
    _, seen = taps.run(model, jnp.zeros((1, 20, 20, 1)), ("pool#2",), stop=True)
    assert seen["pool#2"].shape == (1, 3, 3, 4)


@pytest.mark.parametrize("argv, message", [
    (["colours", "--workdir", "x", "--out", "a.png"], "unknown analysis 'colours'"),
    (["filters", "--workdir", "x", "--out", "a.jpg"], "give a .png file name"),
    (["style", "--workdir", "x", "--out", "a.png"], "style needs --input"),
    (["filters", "--out", "a.png"], "--workdir"),
])
def test_cli_mistakes_are_one_line(argv, message):
    with pytest.raises(UserError, match=message) as err:
        cli.parse(argv)
    assert "\n" not in str(err.value)


def test_launch_analyze_reports_a_missing_run_with_exit_status_2(tmp_path):
    result = run_launch("analyze", "filters", "--workdir", str(tmp_path / "none"),
                        "--out", str(tmp_path / "f.png"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no config.json" in result.stderr
    assert not (tmp_path / "f.png").exists()


def test_adversarial_training_learns_from_the_batchs_attack():
    from tasks.base import DataInfo
    from tasks.classification import Classification
    from training import config as config_lib

    info = DataInfo(name="", num_classes=3, in_channels=1)
    c = config_lib.base_config()
    c.train.adversarial, c.train.adversarial_steps = "pgd", 2
    model = GapNet(nnx.Rngs(8))
    batch = {"image": jnp.asarray(_image((4, 8, 8, 1), seed=8)),
             "label": jnp.array([0, 1, 2, 1])}
    key = jax.random.key(0)
    clean, _ = Classification(config_lib.base_config(), info).loss(model, batch, key)
    (robust, _), grads = nnx.value_and_grad(Classification(c, info).loss, has_aux=True)(
        model, batch, key)
    assert float(robust) > float(clean)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


def test_top_patches_are_cropped_at_the_units_receptive_field():
    from analysis import top_patches

    class OneConv(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(1, 2, (3, 3), strides=2, padding="VALID", rngs=rngs)
            self.fc = nnx.Linear(2, 2, rngs=rngs)

        def __call__(self, x):
            return self.fc(self.conv(x).mean(axis=(1, 2)))

    model = OneConv(nnx.Rngs(9))
    images = _image((6, 9, 9, 1), seed=9)
    found = top_patches.top_patches(model, images, "conv", channel=1, k=3)
    maps = np.asarray(model.conv(jnp.asarray(images)))[..., 1]
    assert found.field == 3 and found.images[0] == int(np.argmax(maps.max(axis=(1, 2))))
    for n, patch, value in zip(found.images, found.patches, found.values):
        i, j = np.unravel_index(np.argmax(maps[n]), maps[n].shape)
        np.testing.assert_array_equal(patch, images[n, 2 * i:2 * i + 3, 2 * j:2 * j + 3])
        assert value == pytest.approx(maps[n, i, j], rel=1e-5)


def test_style_transfer_lowers_the_style_loss():
    model = GapNet(nnx.Rngs(10))
    content, target = _image((12, 12, 1), seed=10), _image((12, 12, 1), seed=11) ** 3
    image, report = style.style_transfer(model, content, target, content_layers=["conv2"],
                                         style_layers=["conv1", "conv2"], steps=10)
    assert report["content_start"] == 0.0            # it starts from the content image
    assert report["style_end"] < 0.8 * report["style_start"]
    assert image.shape == content.shape and 0 <= image.min() and image.max() <= 1
