"""The device mesh, the shardings, and the compiled steps.

One `Mesh` over every device of every process, with axes `data`, `fsdp` and `model`
(`--config.mesh.data=-1 --config.mesh.fsdp=1 --config.mesh.model=1`: data parallel by default).
Each batch is split along its first axis over `data` x `fsdp`; the state is placed by the rules
of training/sharding.py (replicated on a data-only mesh). Each process feeds only its own slice
of the global batch (`jax.make_array_from_process_local_data`), so the same code runs on one
CPU, eight GPUs, or many hosts, and the maths does not depend on the mesh.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from errors import UserError
from models import conv_lowering
from training import sharding

AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")   # FSDP is data parallelism whose state is split, not copied


def mesh_shape(sizes: dict | None, devices: int) -> tuple[int, int, int]:
    """(data, fsdp, model) from the config's sizes, one of them -1 (the devices left)."""
    sizes = {"data": -1, "fsdp": 1, "model": 1, **(sizes or {})}
    shape = [int(sizes[a]) for a in AXES]
    free = [i for i, n in enumerate(shape) if n == -1]
    known = int(np.prod([n for n in shape if n != -1]))
    if len(free) > 1 or any(n == 0 or n < -1 for n in shape) or devices % known:
        raise UserError(f"mesh {dict(zip(AXES, shape))} does not fit {devices} devices; give "
                        "positive sizes whose product is the device count (one may be -1)")
    if free:
        shape[free[0]] = devices // known
    if int(np.prod(shape)) != devices:
        raise UserError(f"mesh {dict(zip(AXES, shape))} uses {int(np.prod(shape))} of the "
                        f"{devices} devices; make the sizes' product {devices} (or use -1)")
    return tuple(shape)


def make_mesh(sizes: dict | None = None, devices=None) -> Mesh:
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(mesh_shape(sizes, devices.size)), AXES)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES))


def batch_devices(mesh: Mesh) -> int:
    """How many ways a batch is split: what the batch size must be divisible by."""
    return mesh.shape["data"] * mesh.shape["fsdp"]


def put_state(state, mesh: Mesh):
    """`state`, already made, moved where the rules place it (a restored or transferred state;
    training creates its state in place: training/sharded_init.py)."""
    return jax.device_put(state, sharding.state_shardings(state, mesh))


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
    """Assembles this process's slice of every array into one globally sharded array; text
    (file names) stays on the host."""
    sharding_ = batch_sharded(mesh)
    arrays = {k: np.asarray(v) for k, v in local_batch.items()}
    return {k: jax.make_array_from_process_local_data(sharding_, v)
            for k, v in arrays.items() if v.dtype.kind not in "USO"}


def _state_in(mesh: Mesh, state):
    return replicated(mesh) if state is None else sharding.state_shardings(state, mesh)


def traced_under(mesh: Mesh, step_fn):
    """`step_fn`, traced with `mesh` as the abstract mesh, so that layers which sum over the
    batch can split the sum per device (models/conv_lowering.py: `split_over_mesh`)."""
    @functools.wraps(step_fn)
    def traced(*args):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return step_fn(*args)
    return traced


def compile_train_step(step_fn, mesh: Mesh, state=None, options: dict | None = None):
    """jit with the state placed by the sharding rules (of `state`, an example or abstract
    state; replicated without one) and donated, the batch sharded, metric sums replicated;
    traced under the mesh (`traced_under`); compiled with XLA `options` (default:
    models/conv_lowering.py's `compiler_options()`)."""
    placed = _state_in(mesh, state)
    return jax.jit(traced_under(mesh, step_fn), in_shardings=(placed, batch_sharded(mesh)),
                   out_shardings=(placed, replicated(mesh)), donate_argnums=0,
                   compiler_options=_options(options))


def compile_eval_step(step_fn, mesh: Mesh, state=None, options: dict | None = None):
    return jax.jit(step_fn, in_shardings=(_state_in(mesh, state), batch_sharded(mesh)),
                   out_shardings=replicated(mesh), compiler_options=_options(options))


def _options(options: dict | None) -> dict:
    """XLA `options` as given, or models/conv_lowering.py's defaults."""
    return conv_lowering.compiler_options() if options is None else options
