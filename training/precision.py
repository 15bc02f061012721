"""Mixed precision as a config policy: `train.dtype` = float32 | bfloat16 | float16.

- float32: the step differentiates the module with `nnx.value_and_grad`, as it always did.
- bfloat16, float16: the network computes in that dtype. Inside the differentiated function the
  float32 parameters are cast (so their gradients arrive in float32 through the cast, and the
  optimizer state and the update stay float32: the parameters are the float32 master copy),
  and so is the input image, and every Flax layer's `dtype` (computation dtype) is set, so every
  convolution and matmul runs in the low dtype. BatchNorm's running statistics are never cast:
  they stay float32 variables, updated from batch moments that Flax reduces in at least
  float32; its output is in the low dtype. The classification loss is taken
  in float32 (tasks/classification.py casts its logits). Evaluation uses the float32 weights.
- float16 also scales the loss (5 exponent bits: small gradients would flush to zero). The
  scale is Flax's `DynamicScale` (x2 after 2000 finite steps in a row, /2 at an overflow, the
  gradients divided back in float32), kept in `TrainState.loss_scale`; a step whose gradients
  are not finite is skipped (parameters and optimizer state kept) while the scale backs off.
  (Optax has no loss scaler; `DynamicScale` is the kept library's.)

`value_and_grad` and `skip_overflow` are what the step calls; `initial_loss_scale` starts the
state.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from flax.training.dynamic_scale import DynamicScale

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def initial_loss_scale(dtype: str) -> DynamicScale | None:
    """The loss scale a run in `dtype` starts with: float16's dynamic scale, else None."""
    if dtype != "float16":
        return None
    return DynamicScale(fin_steps=jnp.zeros((), jnp.int32), scale=jnp.asarray(2.0 ** 16))


def cast_floats(tree, dtype):
    """Every floating leaf of `tree` as `dtype`; integer leaves (labels, counters) unchanged."""
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating)
                        else x, tree)


def value_and_grad(loss_fn: Callable, dtype: str, loss_scale: DynamicScale | None):
    """`grad_fn(model, batch, key) -> ((loss, outputs), grads, next loss scale or None)` for a
    task's `loss_fn(model, batch, key) -> (loss, outputs)`, computing in `dtype`.

    As `nnx.value_and_grad`, grads are a State of the float32 Params and the model's BatchNorm
    statistics are updated in place (float32).
    """
    if dtype == "float32":
        grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
        return lambda model, batch, key: (*grad_fn(model, batch, key), None)
    compute = DTYPES[dtype]

    def grad_fn(model, batch, key):
        graphdef, params, others = nnx.split(model, nnx.Param, ...)

        def pure(params):
            low = nnx.merge(graphdef, cast_floats(params, compute), others, copy=True)
            # Flax layers' computation dtype: without it BatchNorm promotes its input to its
            # float32 statistics' dtype and everything after it runs in float32.
            low.set_attributes(dtype=compute, raise_if_not_found=False)
            low_batch = {**batch, "image": batch["image"].astype(compute)}
            loss, outputs = loss_fn(low, low_batch, key)
            return loss.astype(jnp.float32), (outputs, nnx.state(low, nnx.BatchStat))

        if loss_scale is None:
            (loss, (outputs, stats)), grads = jax.value_and_grad(pure, has_aux=True)(params)
            next_scale = None
        else:
            next_scale, _, (loss, (outputs, stats)), grads = loss_scale.value_and_grad(
                pure, has_aux=True)(params)
        nnx.update(model, stats)
        return (loss, outputs), grads, next_scale

    return grad_fn


def skip_overflow(grads, loss_scale: DynamicScale | None, new, old):
    """The step's new state, or (float16, gradients not finite) the old one one step on; with
    the loss scale's next value either way (it backs off at an overflow)."""
    if loss_scale is None:
        return new
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    kept = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old.replace(step=new.step))
    return kept.replace(loss_scale=loss_scale)
