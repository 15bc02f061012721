"""The GAN task: both players learn in one step, resume is exact, FID is the Fréchet distance
it claims to be, and `launch.py sample` writes what it says or answers in one line."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from flax import nnx

import launch
import models
import tasks
from errors import UserError
from experiments.dcgan_digits import get_config
from models.dcgan import UpConv
from tasks import fid, gan
from tasks.base import HEALTH
from training import checkpoint, health, loop, sample_cli
from training import mesh as mesh_lib


def _tiny(c, conditional=False):
    """16x16 digits, width 4: the form is under test, not the quality."""
    c.model.width = 4
    c.data.image_size = 16
    c.task.conditional = conditional
    c.task.feature_steps = 20
    c.train.steps, c.train.batch_size, c.eval.batch_size = 2, 16, 128
    c.train.log_every_steps = c.eval.every_steps = c.checkpoint.every_steps = 2
    return c


TX = optax.adam(2e-4, b1=0.5)


def _players(c, mesh):
    """(task, defs, state at step 0 on `mesh`) of the tiny pair."""
    info = tasks.DataInfo(name="digits", num_classes=10, in_channels=1)
    task = tasks.create(c, info)
    model = models.create("dcgan", seed=0, **task.model_kwargs(), width=4)
    task.check_model("dcgan", model)
    defs, state = task.create_state(model, TX, seed=0)
    return task, defs, mesh_lib.put_state(state, mesh)


def _batches(n, mesh):
    rng = np.random.default_rng(1)
    for _ in range(n):
        images = rng.uniform(-1, 1, (16, 16, 16, 1)).astype(np.float32)
        labels = rng.integers(0, 10, 16).astype(np.int32)
        yield mesh_lib.global_batch({"image": images, "label": labels}, mesh)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def test_both_players_update_every_step_and_resume_is_exact(tmp_path):
    c = _tiny(get_config(), conditional=True)
    # One device: the sharded step is what the run below trains with (eight devices).
    mesh = mesh_lib.make_mesh(devices=jax.devices()[:1])
    task, defs, start = _players(c, mesh)
    step = mesh_lib.compile_train_step(task.train_step(defs, TX), mesh)
    before = jax.device_get(start)
    batches = list(_batches(4, mesh))
    state, sums = step(start, batches[0])
    after = jax.device_get(state)
    for player in ("generator", "discriminator"):
        for old, new in zip(_leaves(before.params[player]), _leaves(after.params[player])):
            assert not np.array_equal(old, new), f"a {player} parameter did not move"
        for old, new in zip(_leaves(before.batch_stats[player]),
                            _leaves(after.batch_stats[player])):
            assert not np.array_equal(old, new), f"{player} BatchNorm statistics did not move"
    counts = [int(x) for x in jax.tree.leaves(after.opt_state) if np.ndim(x) == 0]
    assert counts and all(n == 1 for n in counts)  # each player's own Adam took one step
    assert set(task.finalize(sums)) == {"d_loss", "g_loss", "d_real", "d_fake"}

    straight = mesh_lib.put_state(after, mesh)  # the step donates its state: a copy per branch
    for batch in batches[1:]:
        straight, _ = step(straight, batch)
    resumed, _ = step(mesh_lib.put_state(after, mesh), batches[1])
    mngr = checkpoint.manager(tmp_path / "ckpt", keep=2, best_metric="test/fid", best_mode="min")
    checkpoint.save(mngr, 2, resumed, {}, {}, {"test/fid": 1.0})
    mngr.wait_until_finished()
    fresh = _players(c, mesh)[2]
    restored, _, _ = checkpoint.restore_latest(mngr, fresh)
    mngr.close()
    for batch in batches[2:]:
        restored, _ = step(restored, batch)
    for a, b in zip(_leaves(straight), _leaves(restored)):
        np.testing.assert_array_equal(a, b)


def test_losses_at_known_logits():
    real, fake = jnp.array([2.0, -1.0]), jnp.array([0.5, -3.0])
    sp = lambda x: np.log1p(np.exp(x))
    assert gan.discriminator_loss(real, fake, "non_saturating") == pytest.approx(
        np.mean(sp(-np.array([2.0, -1.0]))) + np.mean(sp(np.array([0.5, -3.0]))), rel=1e-6)
    assert gan.discriminator_loss(real, fake, "hinge") == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)
    f = np.array([0.5, -3.0])
    assert gan.generator_loss(fake, "non_saturating") == pytest.approx(np.mean(sp(-f)), rel=1e-6)
    assert gan.generator_loss(fake, "minimax") == pytest.approx(-np.mean(sp(f)), rel=1e-6)
    assert gan.generator_loss(fake, "hinge") == pytest.approx(1.25)


def test_fid_of_a_set_against_itself_is_zero():
    features = np.random.default_rng(0).normal(size=(300, 16)) @ np.diag(np.arange(1, 17.0))
    assert 0 <= fid.fid(features, features) <= 1e-6


def _hand_fid(mu1, c1, mu2, c2):
    """Tr sqrt(C1 C2) as the eigenvalues of sqrt(C1) C2 sqrt(C1), by eigh (no sqrtm)."""
    w, v = np.linalg.eigh(c1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    middle = np.linalg.eigvalsh(root1 @ c2 @ root1)
    return np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * np.sum(np.sqrt(middle))


def test_fid_equals_a_hand_computation_on_small_gaussians():
    assert fid.frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]) == pytest.approx(2.0)  # 1 + (1-2)^2
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 3)) @ np.array([[1.0, 0.3, 0], [0, 0.7, 0.2], [0, 0, 0.5]])
    b = rng.normal(size=(300, 3)) * [0.5, 1.5, 1.0] + [0.2, -0.1, 0.4]
    hand = _hand_fid(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid.fid(a, b) == pytest.approx(hand, rel=1e-9)
    mu, cov = fid.gaussian(b)
    np.testing.assert_allclose(cov, np.cov(b.T), rtol=1e-12)
    assert np.allclose(scipy.linalg.sqrtm(cov) @ scipy.linalg.sqrtm(cov), cov)


def test_coverage_counts_the_classes_a_generator_keeps():
    real = np.repeat(np.arange(4), 25)
    assert gan.coverage(real, real, 4) == 1.0
    assert gan.coverage(real, np.array([0] * 50 + [1] * 50), 4) == 0.5
    assert gan.coverage(real, np.array([0] * 40 + [1] * 40 + [2] * 13 + [3] * 7), 4) == 0.75


def test_up_convolution_equals_flax_transposed_convolution():
    up = UpConv(3, 5, use_bias=True, rngs=nnx.Rngs(0))
    up.bias[...] = jnp.arange(5.0)
    reference = nnx.ConvTranspose(3, 5, (4, 4), 2, padding="SAME", rngs=nnx.Rngs(1))
    reference.kernel[...], reference.bias[...] = up.kernel[...], up.bias[...]
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
    np.testing.assert_allclose(up(x), reference(x), atol=1e-5)


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    """A two-step conditional run through the trainer (FID's LeNet-5 trained for 20 steps)."""
    if not os.environ.get("CONVJAX_HEAVY"):
        pytest.skip("trains a GAN run and FID's LeNet-5 (.ci/run's heavy stage runs it)")
    workdir = tmp_path_factory.mktemp("gan") / "run"
    summary = loop.train(_tiny(get_config(), conditional=True), workdir, show_progress=False)
    return workdir, summary


def test_a_run_reports_fid_and_coverage_and_draws_its_pictures(gan_run):
    workdir, summary = gan_run
    metrics = summary["final_metrics"]
    assert {"test/fid", "test/coverage", "test/label_accuracy"} <= set(metrics)
    assert metrics["test/fid"] > 0 and 0 <= metrics["test/coverage"] <= 1
    for picture in ("samples/step_000002.png", "interpolation.png", "samples.png"):
        assert (workdir / picture).stat().st_size > 0


def test_sample_writes_uint8_images_and_their_labels(gan_run, tmp_path):
    workdir, _ = gan_run
    out, grid = tmp_path / "s.npz", tmp_path / "s.png"
    args = ["--workdir", str(workdir), "--n", "12", "--out", str(out), "--seed", "3"]
    assert sample_cli.main(args + ["--grid", str(grid)]) == 0
    saved = np.load(out)
    assert saved["images"].shape == (12, 16, 16, 1) and saved["images"].dtype == np.uint8
    np.testing.assert_array_equal(saved["labels"], np.arange(12) % 10)
    assert grid.stat().st_size > 0
    sample_cli.main(args)  # the same seed again: the same images
    np.testing.assert_array_equal(np.load(out)["images"], saved["images"])


def test_sample_errors_are_one_line(gan_run, tmp_path, capsys):
    workdir, _ = gan_run
    classifier = tmp_path / "classifier"
    classifier.mkdir()
    (classifier / "config.json").write_text(json.dumps({"task": {"name": "classification"}}))
    cases = {
        "sample needs a run of task gan": ["--workdir", str(classifier), "--n", "4",
                                           "--out", str(tmp_path / "a.npz")],
        "--n must be at least 1": ["--workdir", str(workdir), "--n", "0",
                                   "--out", str(tmp_path / "a.npz")],
        "does not exist": ["--workdir", str(workdir), "--n", "4",
                           "--out", str(tmp_path / "missing" / "a.npz")],
        "is a directory": ["--workdir", str(workdir), "--n", "4", "--out", str(tmp_path)],
    }
    for expected, args in cases.items():
        with pytest.raises(UserError, match=expected):
            sample_cli.main(args)
    assert launch.main(["sample", *cases["sample needs a run of task gan"]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sample needs a run of task gan" in err
    assert not (tmp_path / "a.npz").exists()


def test_a_non_finite_gan_step_is_caught_naming_the_loss():
    c = _tiny(get_config())
    mesh = mesh_lib.make_mesh(devices=jax.devices()[:1])
    task, defs, start = _players(c, mesh)
    step = mesh_lib.compile_train_step(task.train_step(defs, TX), mesh)
    healthy = health.HealthWatch(start.params, skip_nonfinite=False)
    state, sums = step(start, next(_batches(1, mesh)))
    healthy.add(1, sums.pop(HEALTH))
    assert healthy.check()["train/grad_norm"] > 0
    bad = {"image": np.full((16, 16, 16, 1), np.nan, np.float32),
           "label": np.zeros(16, np.int32)}
    _, sums = step(state, mesh_lib.global_batch(bad, mesh))
    healthy.add(2, sums.pop(HEALTH))
    with pytest.raises(health.NonFiniteError, match="step 2: the loss is not finite"):
        healthy.check()


@pytest.mark.parametrize("field, value, expected", [
    ("dtype", "bfloat16", "trains in float32 only"),
    ("skip_nonfinite", True, "skip_nonfinite is not applied")])
def test_options_the_gan_step_does_not_apply_are_refused(field, value, expected):
    c = _tiny(get_config())
    c.train[field] = value
    task = tasks.create(c, tasks.DataInfo(name="digits", num_classes=10, in_channels=1))
    with pytest.raises(UserError, match=expected):
        task.check()
