"""Rematerialisation (`train.remat`, models/remat.py): the same loss, gradients and BatchNorm
updates, the same state to checkpoint, fewer saved residuals; refused where there is no block."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import models
import tasks
from errors import UserError
from models import remat
from training import config as config_lib, loop


def _loss(model, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def _gradient_and_stats(model, x, y):
    loss, grads = nnx.value_and_grad(_loss)(model, x, y)
    return loss, nnx.to_pure_dict(grads), nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))


def test_remat_changes_neither_gradients_nor_batch_statistics_nor_the_state():
    x = jax.random.normal(jax.random.key(0), (8, 32, 32, 3))
    y = jnp.arange(8) % 10
    plain = models.create("resnet20_cifar", seed=0)
    rematted = models.create("resnet20_cifar", seed=0)
    assert remat.enable(rematted) == 9 and remat.blocks(plain) and not any(
        getattr(m, remat.ATTRIBUTE, False) for m in remat.blocks(plain))
    # The state (what a checkpoint holds) has the same paths, shapes and values.
    state_of = lambda m: jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(m)))
    jax.tree.map(np.testing.assert_array_equal, state_of(plain), state_of(rematted))
    want = jax.jit(_gradient_and_stats)(plain, x, y)
    got = jax.jit(_gradient_and_stats)(rematted, x, y)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    for g, w in zip(jax.tree.leaves(got[1:]), jax.tree.leaves(want[1:])):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


def test_remat_saves_a_fraction_of_the_residuals():
    x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    y = jnp.arange(4)

    def saved(model):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        pure = lambda p: _loss(nnx.merge(graphdef, p, rest, copy=True), x, y)
        return remat.saved_bytes(pure, params)

    plain = saved(models.create("resnet20_cifar", seed=0))
    rematted = models.create("resnet20_cifar", seed=0)
    remat.enable(rematted)
    assert saved(rematted) < 0.5 * plain


def test_remat_on_a_network_without_blocks_is_one_line():
    c = config_lib.base_config()  # LeNet-5
    c.train.remat = True
    task = tasks.create(c, tasks.DataInfo(name="digits", num_classes=10, in_channels=1))
    with pytest.raises(UserError, match="lenet5 has no rematerialisable block"):
        nnx.eval_shape(lambda: loop.build_model(c, task))


def test_the_trainer_builds_a_rematerialised_network():
    c = config_lib.base_config()
    c.model.name, c.train.remat = "resnet20_cifar", True
    task = tasks.create(c, tasks.DataInfo(name="cifar10", num_classes=10, in_channels=3))
    built = nnx.eval_shape(lambda: loop.build_model(c, task))
    assert all(getattr(b, remat.ATTRIBUTE) for b in remat.blocks(built))
