"""The CIFAR speed-run network (models/airbench.py): its whitening layer whitens and stays
frozen, it matches its PyTorch twin's parameter count, the trainer fits it from the data, the
experiment's config validates, and test-time augmentation's shifted views are shifts."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import models
from errors import UserError
from models import airbench
from tasks import tta
from training import config as config_lib, data_init, state as state_lib, step as step_lib

TINY = (8, 8, 8)


def _correlated_images(n=48, side=16, seed=0) -> np.ndarray:
    """Images with correlated channels and neighbouring pixels, as natural images have."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, side + 1, side + 1, 3))
    x = x[:, 1:, 1:] + 0.6 * x[:, :-1, :-1]            # spatial correlation
    mix = np.array([[1.0, 0.5, 0.2], [0.0, 0.8, 0.4], [0.0, 0.0, 0.3]])
    return (x @ mix + 0.5).astype(np.float32)     # channel correlation, unequal scales


def test_whitening_outputs_have_identity_covariance_on_the_fitting_patches():
    layer = airbench.PatchWhitening(3, rngs=None)
    images = _correlated_images()
    layer.fit_to_data(images)
    out = np.asarray(layer(jnp.asarray(images)), np.float64).reshape(-1, 24)
    first, second = out[:, :12], out[:, 12:]
    np.testing.assert_allclose(first.mean(axis=0), 0.0, atol=1e-3)
    # eps = 5e-4 shrinks each direction by l / (l + eps); the smallest l here is above 0.05
    np.testing.assert_allclose(np.cov(first, rowvar=False), np.eye(12), atol=1.5e-2)
    np.testing.assert_allclose(second, -first, atol=1e-5)  # the negated filters


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="a compiled airbench train step (.ci/run runs it)")
def test_whitening_kernel_is_outside_the_params_and_unchanged_by_a_train_step():
    model = models.create("airbench94", widths=TINY)
    rng = np.random.default_rng(1)
    images = rng.random((8, 32, 32, 3), dtype=np.float32)
    model.fit_to_data(images)
    tx = optax.sgd(0.5, momentum=0.9, nesterov=True)
    defs, state = state_lib.create(model, tx, seed=0)
    assert "kernel" not in state.params["whiten"]  # only its bias is trained
    kernel_before = np.asarray(state.rest["whiten"]["kernel"][...])
    bias_before = np.asarray(state.params["whiten"]["bias"][...])
    step = jax.jit(step_lib.make_train_step(defs, tx, num_classes=10, label_smoothing=0.2))
    batch = {"image": jnp.asarray(images), "label": jnp.arange(8) % 10}
    state, sums = step(state, batch)
    np.testing.assert_array_equal(np.asarray(state.rest["whiten"]["kernel"][...]),
                                  kernel_before)
    assert not np.allclose(np.asarray(state.params["whiten"]["bias"][...]), bias_before)
    assert np.isfinite(float(sums["loss"]))


def test_parameter_count_equals_the_pytorch_twin():
    from flax import nnx

    model = nnx.eval_shape(lambda: models.create("airbench94"))  # shapes only: no init cost
    params = nnx.state(model, nnx.Param)
    assert state_lib.count_params(params) == 1_971_352
    torch = pytest.importorskip("torch")
    from benchmarks import airbench_twin

    twin = airbench_twin.Airbench()
    assert airbench_twin.count_params(twin) == state_lib.count_params(params)
    assert twin(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="the trainer's set-up of airbench (.ci/run runs it)")
def test_the_trainer_fits_the_whitening_on_images_spread_over_the_split():
    model = models.create("airbench94", widths=TINY)
    identity = np.asarray(model.whiten.kernel[...])
    images = _correlated_images(n=10, side=32)
    records = [{"image": im, "label": k % 2} for k, im in enumerate(images)]
    seen = []

    def decode(record):
        seen.append(record["label"])
        return {"image": record["image"], "label": record["label"]}

    data_init.fit_model_to_data(model, records, decode)
    assert len(seen) == 10
    assert not np.allclose(np.asarray(model.whiten.kernel[...]), identity)
    data_init.fit_model_to_data(object(), records, decode)  # a model without fit_to_data
    assert len(seen) == 10


def test_experiment_config_validates_and_rejects_an_unknown_tta():
    from experiments import airbench_cifar

    c = airbench_cifar.get_config()
    config_lib.validate(c, num_devices=1)
    assert c.train.steps == 483 and c.eval.tta == "flip_translate"
    assert c.optimizer.nesterov and c.train.label_smoothing == 0.2
    c.eval.tta = "rotate"
    with pytest.raises(UserError, match="eval.tta"):
        config_lib.validate(c, num_devices=1)


def test_tta_shifted_views_move_the_image_and_flip_averages_mirrors():
    x = jnp.arange(2 * 5 * 5 * 1, dtype=jnp.float32).reshape(2, 5, 5, 1)
    down_right = tta._shift(x, 1, 1)
    np.testing.assert_array_equal(down_right[:, 1:, 1:], x[:, :-1, :-1])
    up_left = tta._shift(x, -1, -1)
    np.testing.assert_array_equal(up_left[:, :-1, :-1], x[:, 1:, 1:])
    # a "network" reading the left column: its flip-TTA logits average left and right columns
    forward = lambda im: im[:, :, 0, 0]
    np.testing.assert_allclose(tta.logits(forward, x, "flip"),
                               0.5 * (x[:, :, 0, 0] + x[:, :, -1, 0]))
    np.testing.assert_array_equal(tta.logits(forward, x, "none"), forward(x))


def test_the_pools_equal_flax_max_pool_on_ragged_sides_gradients_included():
    x = jax.random.randint(jax.random.key(0), (2, 31, 31, 4), 0, 3).astype(jnp.float32)
    from flax import nnx

    for k in (2, 3):  # small integers: ties everywhere, routed to the first maximum as XLA does
        ours = lambda x: jnp.sum(jnp.sin(jnp.arange(4.0)) * airbench.pool(x, k))
        flax = lambda x: jnp.sum(jnp.sin(jnp.arange(4.0)) * nnx.max_pool(x, (k, k), (k, k)))
        np.testing.assert_array_equal(airbench.pool(x, k), nnx.max_pool(x, (k, k), (k, k)))
        np.testing.assert_array_equal(jax.grad(ours)(x), jax.grad(flax)(x))


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="a PyTorch peer process (.ci/run runs it)")
def test_the_epoch_benchmark_times_both_sides_with_the_peer_in_its_own_process(tmp_path):
    pytest.importorskip("torch")
    from benchmarks import airbench_epoch

    out = tmp_path / "epoch.json"
    assert airbench_epoch.main(["--examples", "16", "--batch", "8", "--rounds", "2",
                                "--torch-threads", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["peer_process"] == "separate"
    assert result["peer_params"] == result["params"] and result["steps_per_epoch"] == 2
    assert set(result["runs"]) == {"convjax", "torch[eager_cl,t1]"}
    for run in result["runs"].values():
        assert len(run["round_s"]) == 2 and run["epoch_s"] > 0
    assert result["best_peer"] == "torch[eager_cl,t1]" and result["ratio"] > 0
