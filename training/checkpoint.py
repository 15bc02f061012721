"""Orbax checkpoints: train state, data-iterator state and config, saved together.

One `CheckpointManager`, asynchronous, that keeps the last `keep` checkpoints plus the best one
by the configured metric. Each checkpoint has three items: `state` (the TrainState pytree, with
step, parameters, optimizer state and root key), `data` (the Grain iterator's state) and
`config` (the resolved config, so a run directory is self-describing).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers as policies

from errors import UserError, one_line

ITEMS = ("state", "data", "config")


def manager(directory: Path, *, keep: int, best_metric: str, best_mode: str):
    best = policies.BestN(get_metric_fn=lambda m: m[best_metric], reverse=best_mode == "min",
                          n=1, keep_checkpoints_without_metrics=False)
    # best_fn too, not only the policy: `best_step()` ranks by it (without it, it is the latest).
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policies.AnyPreservationPolicy([policies.LatestN(keep), best]),
        best_fn=lambda m: m[best_metric], best_mode=best_mode, enable_async_checkpointing=True)
    return ocp.CheckpointManager(directory.absolute(), options=options, item_names=ITEMS)


def save(mngr, step: int, state, data_state: dict, config: dict, metrics: dict) -> None:
    assert_same_on_every_process(data_state)
    mngr.save(step, metrics=metrics, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
        config=ocp.args.JsonSave(config)))


def assert_same_on_every_process(data_state: dict) -> None:
    """Orbax writes the JSON items from process 0 alone. Every process reads its rows of one
    global stream (data/pipeline.py `train_dataset`) and is at the same position in it, so its
    iterator state is process 0's: asserted, since the other processes resume from it."""
    if jax.process_count() == 1:
        return
    digest = hashlib.sha256(json.dumps(data_state, sort_keys=True).encode()).digest()
    # int32: without jax_enable_x64 the gathered copies are 32-bit
    multihost_utils.assert_equal(np.frombuffer(digest[:4], np.int32),
                                 "the data-iterator states of the processes differ")


def restore_latest(mngr, abstract_state):
    """(state, data_state, config) of the latest readable checkpoint, with `abstract_state`'s
    shardings. Orbax commits a checkpoint atomically, so a half-written one is never listed; one
    damaged afterwards (a truncated file) is skipped with a warning naming it, for the one before."""
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    steps = sorted(mngr.all_steps(), reverse=True)
    for step in steps:
        try:
            restored = mngr.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore(),
                config=ocp.args.JsonRestore()))
        except Exception as err:  # Orbax/TensorStore raise many types for a damaged file
            print(f"warning: checkpoint {mngr.directory / str(step)} cannot be read "
                  f"({one_line(err)[:120]}); trying the one before", file=sys.stderr)
            continue
        return restored.state, restored.data, restored.config
    raise UserError(f"no readable checkpoint in {mngr.directory} (tried steps {steps}); move the "
                    "damaged checkpoints away, or train from scratch in a new --workdir")


def restore_state(mngr, step: int, abstract_state):
    """The train state alone of checkpoint `step` (evaluation and prediction)."""
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    return mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target))).state


MODEL_FIELDS = ("params", "batch_stats", "rest")


def restore_model(mngr, step: int, abstract_state):
    """`abstract_state` with the model's fields (params, BatchNorm statistics, the rest) of
    checkpoint `step`: what evaluation, prediction and analysis need. The optimizer state is not
    read, so a run whose optimizer state has another layout (saved by an older convjax, or with
    another optimizer) still evaluates."""
    target = {k: jax.tree.map(ocp.utils.to_shape_dtype_struct, getattr(abstract_state, k))
              for k in MODEL_FIELDS}
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True))).state
    return abstract_state.replace(**{k: restored[k] for k in MODEL_FIELDS})

