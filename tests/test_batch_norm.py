"""models/batch_norm.py: BatchNorm as one scale and shift per channel is nnx.BatchNorm (same
variables, statistics, running averages, outputs and gradients to rounding), and the zoo uses
it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import models
from models.batch_norm import BatchNorm


def _pair(**kwargs):
    make = lambda cls: cls(6, momentum=0.8, rngs=nnx.Rngs(0), **kwargs)
    ours, ref = make(BatchNorm), make(nnx.BatchNorm)
    # non-trivial parameters and running statistics, the same in both
    for layer in (ours, ref):
        for name, value in (("scale", 1.5), ("bias", -0.3), ("mean", 0.2), ("var", 2.0)):
            variable = getattr(layer, name)
            if variable is not None:
                variable[...] = value + 0.1 * jnp.arange(6.0)
    return ours, ref


@pytest.mark.parametrize("kwargs", [{}, {"use_scale": False}, {"use_bias": False}])
def test_training_and_evaluation_match_nnx_batch_norm(kwargs):
    x = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), (8, 5, 4, 6))
    ours, ref = _pair(**kwargs)
    for train in (True, False):
        got = ours(x, use_running_average=not train)
        want = ref(x, use_running_average=not train)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for name in ("mean", "var"):  # one training step moved both averages alike
        np.testing.assert_array_equal(getattr(ours, name)[...], getattr(ref, name)[...])
    assert (jax.tree.map(jnp.shape, nnx.state(ours)) == jax.tree.map(jnp.shape, nnx.state(ref)))


def test_gradients_match_nnx_batch_norm():
    x = jax.random.normal(jax.random.key(1), (16, 3, 3, 6))
    g = jax.random.normal(jax.random.key(2), x.shape)
    ours, ref = _pair()

    def grads(layer):
        loss = lambda layer, x: jnp.vdot(layer(x, use_running_average=False), g)
        return nnx.grad(loss, argnums=(0, 1))(layer, x)

    (p_ours, x_ours), (p_ref, x_ref) = grads(ours), grads(ref)
    np.testing.assert_allclose(x_ours, x_ref, rtol=1e-4, atol=1e-5)
    for a, b in zip(jax.tree.leaves(p_ours), jax.tree.leaves(p_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet20_cifar", "airbench94", "dcgan", "cnn1d"])
def test_the_zoo_builds_this_batch_norm(name):
    model = nnx.eval_shape(lambda: models.create(name))
    norms = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)]
    assert norms and all(type(m) is BatchNorm for m in norms)
