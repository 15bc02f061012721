"""Mixed precision (`train.dtype`): bfloat16 computes in bfloat16 and keeps float32 parameters,
optimizer state and BatchNorm statistics; float16 scales the loss and skips overflowing steps."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from errors import UserError
from training import config as config_lib, precision, state as state_lib, step as step_lib


class _TinyNet(nnx.Module):
    """Conv, BatchNorm, ReLU, pooling, Linear: every kind of state a CNN has, and small."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.head = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.bn(self.conv(x)))
        return self.head(x.mean(axis=(1, 2)))


def _setup(dtype, tx=None):
    tx = tx or optax.sgd(0.1, momentum=0.9)
    defs, state = state_lib.create(_TinyNet(nnx.Rngs(0)), tx, seed=0)
    state = state.replace(loss_scale=precision.initial_loss_scale(dtype))
    step = step_lib.make_train_step(defs, tx, num_classes=3, dtype=dtype)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.random((8, 8, 8, 1), np.float32)),
             "label": jnp.asarray(rng.integers(0, 3, 8))}
    return step, state, batch


def _float_dtypes(tree):
    return {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


def test_bfloat16_keeps_float32_params_optimizer_state_and_batchnorm_statistics():
    step, state, batch = _setup("bfloat16")
    new, sums = jax.jit(step)(state, batch)
    assert _float_dtypes(new.params) == {jnp.dtype("float32")}
    assert _float_dtypes(new.opt_state) == {jnp.dtype("float32")}
    assert _float_dtypes(new.batch_stats) == {jnp.dtype("float32")}
    assert new.loss_scale is None
    # the statistics did move (they are updated, not just kept)
    assert not np.allclose(new.batch_stats["bn"]["mean"][...], state.batch_stats["bn"]["mean"][...])
    assert np.isfinite(float(sums["loss"]))


def _conv_and_matmul_inputs(jaxpr):
    """dtypes of the first operand of every convolution and matmul, in nested jaxprs too."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("conv_general_dilated", "dot_general"):
            found.append(eqn.invars[0].aval.dtype)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            found += _conv_and_matmul_inputs(sub)
    return found


def test_bfloat16_step_computes_its_activations_in_bfloat16():
    step, state, batch = _setup("bfloat16")
    low = _conv_and_matmul_inputs(jax.make_jaxpr(step)(state, batch).jaxpr)
    assert low and set(low) == {jnp.dtype("bfloat16")}  # forward and both gradients
    step32, state32, _ = _setup("float32")
    assert set(_conv_and_matmul_inputs(jax.make_jaxpr(step32)(state32, batch).jaxpr)) == {
        jnp.dtype("float32")}


def test_float16_scales_the_loss_and_skips_a_step_whose_gradients_overflow():
    step, state, batch = _setup("float16")
    step = jax.jit(step)
    # A scale near float16's limit: the scaled gradients overflow, the step is skipped.
    huge = state.replace(loss_scale=state.loss_scale.replace(scale=jnp.asarray(6e4 * 2.0 ** 10)))
    skipped, _ = step(huge, batch)
    assert int(skipped.step) == 1
    for kept, before in ((skipped.params, huge.params), (skipped.opt_state, huge.opt_state),
                         (skipped.batch_stats, huge.batch_stats)):
        assert all(np.array_equal(a, b) for a, b in
                   zip(jax.tree.leaves(kept), jax.tree.leaves(before)))
    assert float(skipped.loss_scale.scale) == float(huge.loss_scale.scale) / 2
    # The default scale fits: the step applies, in float32, and counts a finite step.
    applied, _ = step(state, batch)
    assert not np.array_equal(applied.params["head"]["kernel"][...],
                              state.params["head"]["kernel"][...])
    assert _float_dtypes(applied.params) == {jnp.dtype("float32")}
    assert int(applied.loss_scale.fin_steps) == 1
    assert float(applied.loss_scale.scale) == 2.0 ** 16


def test_unknown_dtype_is_a_one_line_config_error():
    c = config_lib.base_config()
    c.train.dtype = "float64"
    with pytest.raises(UserError, match="train.dtype"):
        config_lib.validate(c, 1)
