"""The train state created already sharded (DESIGN.md §10), never whole on one device.

`build()` is the eager construction of the step-0 `(defs, state)`: the network, its split, the
optimizer state, the root key and the loss scale, as `training/loop.py:initial_state` makes them
(the generic one-model state, or a task's own, such as a GAN's two players). Here it runs twice,
never eagerly:

1. under `jax.eval_shape`, which builds nothing: the graph definitions (static, so they come out
   as they are) and the state's shapes and dtypes, from which `sharding.state_shardings` reads
   where every leaf goes;
2. under `jax.jit` with those shardings as `out_shardings`, so XLA computes each device's shard
   of every parameter and optimizer moment in place: a model larger than one device's memory is
   never materialised on one device.

The values do not depend on the mesh, to the bit: JAX's partitionable Threefry gives each
shard the random bits the whole array would have. They are the eager construction's to one unit
in the last place: compiled as one program, XLA's algebraic simplifier folds an initialiser's
constant factors (normal's sqrt(2), then the scale) into one product, where the eager
construction multiplies twice (with that pass disabled the two agree to the bit). Measured
against the eager `state.create`: ResNet-20 differs in 44% of its parameters by 1 ulp (at
most 5.96e-8, He-normal stem kernel), AlexNet in 27% (at most 3.7e-9); LeNet-5 and VGG-A are
bit-identical. A run's weights, and so its fingerprint, do not depend on the mesh it
starts on.

The price is one XLA compilation of the initialisation (seconds on CPU; the persistent
compilation cache keeps it for the next run of the same network and seed).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from jax.sharding import Mesh

from training import sharding

Build = Callable[[], tuple[Any, Any]]  # () -> (defs, state at step 0), built eagerly


def abstract(build: Build):
    """(defs, state of ShapeDtypeStructs) of `build()`, with nothing computed."""
    return jax.eval_shape(build)


def init_fn(build: Build, mesh: Mesh):
    """(defs, a jitted `() -> state` whose output is placed by the sharding rules)."""
    defs, shapes = abstract(build)
    return defs, jax.jit(lambda: build()[1], out_shardings=sharding.state_shardings(shapes, mesh))


def create(build: Build, mesh: Mesh):
    """(defs, state at step 0), every leaf already where `sharding.state_shardings` puts it."""
    defs, init = init_fn(build, mesh)
    return defs, init()
