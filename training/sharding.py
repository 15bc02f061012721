"""Where every leaf of the train state lives on the mesh (DESIGN.md §10: sharding is data).

`RULES` is the one table: a regex over a leaf's path in the train state (`jax.tree_util.keystr`,
e.g. `.params['fc6']['kernel'].value`, or `.opt_state[0].mu['fc6']['kernel'].value` for its
Adam moment, which therefore lands where its parameter does) -> a PartitionSpec over the mesh
axes `data`, `fsdp` and `model`. The first matching rule wins. A leaf no rule names is
FSDP-sharded when it is large: its largest dimension divisible by the `fsdp` axis is split over
it (parameters, optimizer state and BatchNorm statistics alike), and replicated otherwise.

An axis a dimension cannot be split by (not divisible, or the axis has size 1) is dropped from
that dimension, so one table serves every mesh, from one CPU to (data x fsdp x model) pods, and
every model of every task, GAN players included (their paths hold the same layer names).
"""

from __future__ import annotations

import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

# Tensor ("model") parallelism for the large dense layers of AlexNet and VGG (fc6, fc7: 85% of
# VGG-16's parameters): output features split over `model` (Megatron's column-parallel layer;
# XLA gathers the activations before the next layer), input features over `fsdp`.
RULES: tuple[tuple[str, P], ...] = (
    (r"\['fc[67]'\]\['kernel'\]", P("fsdp", "model")),
    (r"\['fc[67]'\]\['bias'\]", P("model")),
)

FSDP_MIN_SIZE = 2 ** 14  # smaller leaves are replicated: splitting them costs more than it saves


def spec_for(path: str, shape: tuple[int, ...], mesh: Mesh) -> P:
    """The PartitionSpec of the leaf at `path`, fitted to `shape` and `mesh`."""
    for pattern, spec in RULES:
        if re.search(pattern, path):
            return _fit(spec, shape, mesh)
    return _fsdp(shape, mesh)


def _fit(spec: P, shape: tuple[int, ...], mesh: Mesh) -> P:
    dims = list(spec) + [None] * (len(shape) - len(spec))
    fitted = [axis if axis is not None and mesh.shape.get(axis, 1) > 1
              and shape[i] % mesh.shape[axis] == 0 else None
              for i, axis in enumerate(dims[:len(shape)])]
    return P(*fitted)


def _fsdp(shape: tuple[int, ...], mesh: Mesh) -> P:
    n = mesh.shape.get("fsdp", 1)
    if n == 1 or int(np.prod(shape)) < FSDP_MIN_SIZE:
        return P()
    candidates = [i for i in np.argsort(shape)[::-1] if shape[i] % n == 0]
    if not candidates:
        return P()
    dims = [None] * len(shape)
    dims[candidates[0]] = "fsdp"
    return P(*dims)


def state_shardings(state, mesh: Mesh):
    """A pytree of NamedShardings matching `state` (arrays or ShapeDtypeStructs)."""
    def place(path, leaf):
        return NamedSharding(mesh, spec_for(jax.tree_util.keystr(path), tuple(leaf.shape), mesh))

    return jax.tree_util.tree_map_with_path(place, state)


def bytes_per_device(state) -> dict[str, int]:
    """Bytes of `state` held by each device (what FSDP saves against replication)."""
    held: dict[str, int] = {}
    for leaf in jax.tree.leaves(state):
        for shard in leaf.addressable_shards:
            key = str(shard.device)
            held[key] = held.get(key, 0) + shard.data.nbytes
    return held
