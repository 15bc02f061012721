"""models/max_pool.py: the same forward as nnx.max_pool, and the same gradient, routed to the
same input position when a window holds its maximum more than once."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models import layers
from models.max_pool import max_pool

# (window, stride, padding): ResNet's stem pool, VGG's 2x2/2, overlapping stride 1, AlexNet's
# 3x3/2 VALID, GoogLeNet's ceil-mode right/bottom padding, an odd window with an even stride,
# windows that tile the input with a ragged edge left over (3x3/3) or padded (2x2/2 SAME).
CASES = [(3, 2, ((1, 1), (1, 1))), (2, 2, "VALID"), (3, 1, "SAME"), (3, 2, "VALID"),
         (3, 2, ((0, 1), (0, 1))), (5, 2, "SAME"), (3, 3, "VALID"), (2, 2, "SAME")]


def _grads(pool, x, g, window, stride, padding):
    f = lambda x: jnp.vdot(pool(x, (window, window), (stride, stride), padding), g)
    return jax.jit(jax.value_and_grad(f))(x)


@pytest.mark.parametrize("window,stride,padding", CASES)
def test_forward_and_gradient_equal_nnx_max_pool_with_ties(window, stride, padding):
    # Small integers: most windows hold their maximum two or more times, and integer
    # cotangents keep every sum exact, so the routing itself is compared, not float rounding.
    kx, kg = jax.random.split(jax.random.key(0))
    x = jax.random.randint(kx, (3, 11, 10, 4), 0, 3).astype(jnp.float32)
    y = nnx.max_pool(x, (window, window), (stride, stride), padding)
    g = jax.random.randint(kg, y.shape, -4, 5).astype(jnp.float32)
    np.testing.assert_array_equal(max_pool(x, (window, window), (stride, stride), padding), y)
    want = _grads(nnx.max_pool, x, g, window, stride, padding)
    got = _grads(max_pool, x, g, window, stride, padding)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_gradient_of_real_activations_and_its_dtype():
    x = jax.nn.relu(jax.random.normal(jax.random.key(1), (2, 16, 16, 8), jnp.bfloat16))
    g = jax.random.normal(jax.random.key(2), (2, 8, 8, 8), jnp.bfloat16)
    want = _grads(nnx.max_pool, x, g, 3, 2, ((1, 1), (1, 1)))[1]
    got = _grads(max_pool, x, g, 3, 2, ((1, 1), (1, 1)))[1]
    assert got.dtype == jnp.bfloat16 and got.shape == x.shape
    # overlapping windows add their shares in another order: bfloat16 rounding differs
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=2e-2,
                               atol=2e-2)


@pytest.mark.parametrize("window,stride,padding", [(3, 2, "SAME"), (2, 2, "VALID"), (4, 1, "SAME"),
                                                    (3, 3, "VALID")])
def test_one_dimensional_pooling_equals_nnx_max_pool(window, stride, padding):
    """(B, T, C) signals, as the 1-D nets pool them (models/layers_1d.py)."""
    x = jax.random.randint(jax.random.key(3), (2, 17, 3), 0, 3).astype(jnp.float32)
    y = nnx.max_pool(x, (window,), (stride,), padding)
    g = jax.random.randint(jax.random.key(4), y.shape, -4, 5).astype(jnp.float32)
    f = lambda pool: jax.grad(lambda x: jnp.vdot(pool(x, (window,), (stride,), padding), g))(x)
    np.testing.assert_array_equal(max_pool(x, (window,), (stride,), padding), y)
    np.testing.assert_array_equal(f(max_pool), f(nnx.max_pool))


def test_the_pool_layer_uses_it():
    """layers.Pool('max') differentiates without XLA's select-and-scatter."""
    pool = layers.Pool("max", 3, 2, 1)
    jaxpr = jax.make_jaxpr(jax.grad(lambda x: jnp.sum(pool(x))))(jnp.zeros((1, 8, 8, 2)))
    names = {eqn.primitive.name for eqn in jaxpr.jaxpr.eqns}
    assert "reduce_window_max" in names and "select_and_scatter_add" not in names
