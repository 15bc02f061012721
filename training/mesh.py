"""The device mesh, the shardings, and the compiled steps.

One `Mesh` with axis `data` over every device of every process. The state is replicated, each
batch is split along its first axis. Each process feeds only its own slice of the global batch
(`jax.make_array_from_process_local_data`), so the same code runs on one CPU, eight GPUs, or
many hosts.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def put_state(state, mesh: Mesh):
    return jax.device_put(state, replicated(mesh))


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
    """Assembles this process's slice of every array into one globally sharded array; text
    (file names) stays on the host."""
    sharding = batch_sharded(mesh)
    arrays = {k: np.asarray(v) for k, v in local_batch.items()}
    return {k: jax.make_array_from_process_local_data(sharding, v)
            for k, v in arrays.items() if v.dtype.kind not in "USO"}


def compile_train_step(step_fn, mesh: Mesh):
    """jit with the state replicated and donated, the batch sharded, metric sums replicated."""
    return jax.jit(step_fn, in_shardings=(replicated(mesh), batch_sharded(mesh)),
                   out_shardings=(replicated(mesh), replicated(mesh)), donate_argnums=0)


def compile_eval_step(step_fn, mesh: Mesh):
    return jax.jit(step_fn, in_shardings=(replicated(mesh), batch_sharded(mesh)),
                   out_shardings=replicated(mesh))
