"""The train state: the model's state pytrees, optimizer state, step and root key.

The model is split once (DESIGN.md §1) into a graph definition, which stays outside the compiled
step, and pytrees: trainable params, BatchNorm statistics, and the rest (RNG stream counters,
reseeded every step). Train and eval modes are two graph definitions over the same state.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any
    rest: Any
    opt_state: Any
    root_key: jax.Array  # raw uint32 key data: Orbax saves it as a plain array
    loss_scale: Any = None  # float16's dynamic loss scale (training/precision.py), else None


@flax.struct.dataclass
class ModelDefs:
    """The static halves of the split model: one graph definition per mode."""

    train: nnx.GraphDef = flax.struct.field(pytree_node=False)
    eval: nnx.GraphDef = flax.struct.field(pytree_node=False)


def split_model(model: nnx.Module):
    """(ModelDefs, params, batch_stats, rest) of a freshly built model."""
    model.eval()
    eval_def, *_ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    model.train()
    train_def, params, batch_stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    return ModelDefs(train_def, eval_def), params, batch_stats, rest


def create(model: nnx.Module, tx: optax.GradientTransformation, seed: int):
    """(ModelDefs, TrainState) at step 0 for `model`, on the device its arrays are on
    (training builds it inside training/sharded_init.py, each device making its own shards)."""
    defs, params, batch_stats, rest = split_model(model)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                       rest=rest, opt_state=tx.init(params),
                       root_key=jax.random.key_data(jax.random.key(seed)))
    return defs, state


def count_params(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))
