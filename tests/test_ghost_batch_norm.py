"""Ghost BatchNorm (models/ghost_batch_norm.py, `train.bn_group_size`): one group is global
BatchNorm, in training and evaluation; each of several groups is BatchNorm of that group alone;
the conversion keeps a model's parameters and state; groups that span devices train the same on
one device and on eight; through the trainer a group of the whole global batch trains the same
weights as the default, and a group size that does not divide the batch is one line, exit 2."""

import os

import jax
import numpy as np
import optax
import pytest
from flax import nnx

import models
import tasks
from errors import UserError
from models.ghost_batch_norm import GhostBatchNorm, use_ghost_batch_norm
from tests.helpers import run_launch
from tests.test_mesh import TinyResidualBN, _batches
from training import config as config_lib, loop, mesh as mesh_lib, run_dir
from training import state as state_lib, step as step_lib

TOL = dict(rtol=1e-6, atol=1e-6)


def _batch_norm(features=3) -> nnx.BatchNorm:
    """A BatchNorm whose parameters and running statistics are all away from their defaults."""
    bn = nnx.BatchNorm(features, momentum=0.9, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    bn.scale[...] = rng.uniform(0.5, 2, features).astype(np.float32)
    bn.bias[...] = rng.normal(size=features).astype(np.float32)
    bn.mean[...] = rng.normal(size=features).astype(np.float32)
    bn.var[...] = rng.uniform(0.5, 2, features).astype(np.float32)
    return bn


def _images(batch: int, features=3) -> np.ndarray:
    rng = np.random.default_rng(2)
    # Each example its own offset, so groups differ in mean as well as in spread.
    return (rng.normal(size=(batch, 5, 5, features)) * 2
            + rng.normal(size=(batch, 1, 1, features)) + 3).astype(np.float32)


def _ghost(bn: nnx.BatchNorm, group_size: int) -> GhostBatchNorm:
    ghost = nnx.clone(bn)
    assert use_ghost_batch_norm(ghost, group_size) == 1 and isinstance(ghost, GhostBatchNorm)
    return ghost


@pytest.mark.parametrize("use_running_average", [False, True], ids=["train", "eval"])
def test_one_group_is_batch_norm(use_running_average):
    x = _images(8)
    bn = _batch_norm()
    ghost = _ghost(bn, 8)
    np.testing.assert_allclose(ghost(x, use_running_average), bn(x, use_running_average), **TOL)
    np.testing.assert_allclose(ghost.mean[...], bn.mean[...], **TOL)
    np.testing.assert_allclose(ghost.var[...], bn.var[...], **TOL)


def test_each_group_is_batch_norm_of_that_group_alone():
    x, group = _images(16), 4
    bn = _batch_norm()
    ghost = _ghost(bn, group)
    y = ghost(x, use_running_average=False)
    alone = [nnx.clone(bn) for _ in range(16 // group)]
    for k, ref in enumerate(alone):
        part = slice(k * group, (k + 1) * group)
        np.testing.assert_allclose(y[part], ref(x[part], use_running_average=False), **TOL)
    # The stated convention: one step towards the average of the group statistics, which is the
    # average of what BatchNorm of each group alone would have stored.
    np.testing.assert_allclose(ghost.mean[...], np.mean([r.mean[...] for r in alone], 0), **TOL)
    np.testing.assert_allclose(ghost.var[...], np.mean([r.var[...] for r in alone], 0), **TOL)
    # So the running mean is global BatchNorm's; the variance is the smaller within-group one.
    global_bn = nnx.clone(bn)
    global_bn(x, use_running_average=False)
    np.testing.assert_allclose(ghost.mean[...], global_bn.mean[...], **TOL)
    assert np.all(ghost.var[...] < global_bn.var[...])


def test_a_batch_that_does_not_split_into_groups_is_a_clear_error():
    ghost = _ghost(_batch_norm(), 4)
    with pytest.raises(ValueError, match="batch of 6 examples .* group_size=4"):
        ghost(_images(6), use_running_average=False)
    ghost(_images(6), use_running_average=True)  # evaluation does not group


def test_converting_a_resnet_keeps_its_parameters_and_state():
    # Abstract (shapes only): conversion touches no value, and nothing is initialised.
    model = nnx.eval_shape(lambda: models.create("resnet20_cifar", num_classes=10, in_channels=3))
    before = nnx.state(model)
    count = lambda: sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert count() == 269_722  # ResNet-20's 0.27M (He et al. 2015, table 6)
    norms = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)]
    assert use_ghost_batch_norm(model, 4) == len(norms) == 19  # stem + 2 per block x 9 blocks
    assert all(type(m) is GhostBatchNorm and m.group_size == 4 for m in norms)
    after = nnx.state(model)
    assert jax.tree.structure(after) == jax.tree.structure(before)
    assert all(a is b for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before)))
    assert count() == 269_722
    # What the train step sees: the graph definition rebuilds ghost layers.
    rebuilt = nnx.merge(*nnx.split(model))
    assert all(type(m) is GhostBatchNorm
               for _, m in nnx.iter_modules(rebuilt) if isinstance(m, nnx.BatchNorm))


def _train_on(mesh, steps=5):
    """SGD steps of test_mesh's tiny BatchNorm residual net, ghost groups of 4 of 16 examples."""
    tx = optax.sgd(0.05, momentum=0.9)
    model = TinyResidualBN(nnx.Rngs(0))
    use_ghost_batch_norm(model, 4)
    defs, state = state_lib.create(model, tx, seed=0)
    state = mesh_lib.put_state(state, mesh)
    step = mesh_lib.compile_train_step(step_lib.make_train_step(defs, tx, num_classes=10), mesh,
                                       state)
    for batch in _batches(steps):
        state, _ = step(state, mesh_lib.global_batch(batch, mesh))
    return jax.device_get(state)


def test_ghost_groups_are_the_same_on_one_and_eight_devices():
    # Two examples per device: each group of 4 spans two devices.
    one = _train_on(mesh_lib.make_mesh(devices=jax.devices()[:1]))
    eight = _train_on(mesh_lib.make_mesh({"data": 8}))
    for a, b in zip(jax.tree.leaves(eight), jax.tree.leaves(one)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _tiny_bn_run(group: int):
    """Three SGD steps of a one-block-per-stage ResNet-20 at quarter width on 16x16 digits."""
    c = config_lib.base_config()
    c.model.name = "resnet20_cifar"
    with c.model.unlocked():
        c.model.width, c.model.depths = 0.25, (1, 1, 1)
    c.data.image_size = 16
    c.train.steps, c.train.batch_size, c.train.bn_group_size = 3, 16, group
    c.train.log_every_steps = c.eval.every_steps = c.checkpoint.every_steps = 3
    c.eval.batch_size = 64
    c.optimizer.name, c.optimizer.lr = "sgd", 0.05  # Adam would magnify rounding noise
    return c


def _trained(c, workdir):
    loop.train(c, workdir, show_progress=False)
    task = tasks.create(c, run_dir.saved_data_info(workdir))
    return jax.device_get(run_dir.restore(workdir, c, task, "latest")[1])


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="two short runs (.ci/run runs it)")
def test_trainer_group_of_the_whole_batch_trains_the_same_weights(tmp_path):
    whole = _trained(_tiny_bn_run(16), tmp_path / "whole")
    default = _trained(_tiny_bn_run(0), tmp_path / "default")
    for name in ("params", "batch_stats"):
        for a, b in zip(jax.tree.leaves(getattr(whole, name)),
                        jax.tree.leaves(getattr(default, name))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    # ... and the option does reach the network the trainer builds.
    task = tasks.create(_tiny_bn_run(4), run_dir.saved_data_info(tmp_path / "whole"))
    built = loop.build_model(_tiny_bn_run(4), task)
    assert any(type(m) is GhostBatchNorm for _, m in nnx.iter_modules(built))


def test_a_group_size_for_a_network_without_batch_norm_is_one_line():
    c = config_lib.base_config()  # LeNet-5
    c.train.bn_group_size = 4
    task = tasks.create(c, tasks.DataInfo(name="digits", num_classes=10, in_channels=1))
    with pytest.raises(UserError, match="lenet5 has no BatchNorm layer"):
        nnx.eval_shape(lambda: loop.build_model(c, task))  # shapes only: nothing initialised


def test_a_group_that_does_not_divide_the_batch_is_one_line_and_exit_2(tmp_path):
    workdir = tmp_path / "run"
    result = run_launch("train", f"--workdir={workdir}", "--config.model.name=resnet20_cifar",
                        "--config.train.batch_size=64", "--config.train.bn_group_size=24",
                        devices=1, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "bn_group_size=24" in lines[0] and "64" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not workdir.exists()
