"""Rematerialisation as an option (`train.remat`): a block keeps only its input for the
backward pass and recomputes its inner activations there, trading a second forward pass of
the block for their memory (Chen et al. 2016, "Training deep nets with sublinear memory
cost"; `jax.checkpoint`, here Flax's lifted `nnx.remat`, which carries the block's in-place
BatchNorm updates).

A block opts in by decorating its `__call__` with `rematerialisable`; `enable(model)` switches
every such block of a built network on. The switch is a plain attribute of the module (part of
the graph definition, not of the state), so parameters, checkpoints and the maths are the same
with or without it: only what the compiled step keeps between its passes changes.

Measured on the 2-core CPU (`compiled.memory_analysis()`, float32): XLA's CPU scheduler does
not turn the smaller saved set into a smaller peak (ResNet-50 at 8x224x224: 677 MiB of
temporaries without, 800 MiB with per-block remat, and 6.0 -> 5.5-8.0 s a step), so the option
is for accelerators, whose schedulers free each block's activations as the backward pass
reaches it. What it changes everywhere is what the backward pass is handed: the forward's
saved residuals (`saved_bytes` below; ResNet-50's, tests/test_remat.py).
"""

from __future__ import annotations

import functools

import jax
from flax import nnx

ATTRIBUTE = "remat"


def rematerialisable(call):
    """Decorates a block's `__call__(self, x)`: when the module's `remat` attribute is set
    (`enable`), the call runs under `nnx.remat`, else as written."""
    checkpointed = nnx.remat(call)

    @functools.wraps(call)
    def wrapper(self, *args):
        if getattr(self, ATTRIBUTE, False):
            return checkpointed(self, *args)
        return call(self, *args)

    wrapper.rematerialisable = True
    return wrapper


def blocks(model: nnx.Module) -> list[nnx.Module]:
    """The modules of `model` whose class's `__call__` is `rematerialisable`."""
    return [m for _, m in nnx.iter_modules(model)
            if getattr(type(m).__call__, "rematerialisable", False)]


def enable(model: nnx.Module) -> int:
    """Switches rematerialisation on for every rematerialisable block of the built `model`, in
    place; returns how many (0: the network has none)."""
    found = blocks(model)
    for block in found:
        setattr(block, ATTRIBUTE, True)
    return len(found)


def saved_bytes(loss_fn, params) -> int:
    """Bytes of the residuals the forward pass of `loss_fn(params)` (a pure function) hands its
    backward pass: the arrays `jax.vjp`'s backward function holds, found without computing."""
    residuals = jax.eval_shape(lambda p: jax.tree.leaves(jax.vjp(loss_fn, p)[1]), params)
    return sum(r.size * r.dtype.itemsize for r in residuals)
