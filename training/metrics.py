"""Metrics as (sum, count) pairs, reduced once on the host (Scenic's rule).

A step returns sums over the examples it saw, with padded examples masked out; dividing happens
only after summing over steps and devices, so neither padding nor device count biases a mean.
What is summed is the task's (tasks/); this module only adds and reduces.
"""

from __future__ import annotations

import jax

from tasks.base import GATHERED, means


def add(total: dict | None, sums: dict) -> dict:
    """Sums added key by key; a task's gathered rows (tasks.base.GATHERED) kept, one entry per
    batch, for its `finalize`."""
    sums = dict(sums)
    rows = sums.pop(GATHERED, None)
    out = sums if total is None else {k: total[k] + sums[k] for k in sums}
    if rows is not None:
        out[GATHERED] = (total or {}).get(GATHERED, []) + [rows]
    return out


def total(steps: list[dict]) -> dict | None:
    """The sums of several steps (or eval batches), added on the host after one transfer.
    Adding each step's sums on the device as they come costs more than it looks: a CPU run's
    host then waits on every step instead of preparing the next batch (LeNet-5, b64, 2 cores:
    47 against 27 ms per step, min of 5 x 50 steps; the default experiment's train loop)."""
    out = None
    for sums in jax.device_get(steps):
        out = add(out, sums)
    return out


def reduce(sums: dict, prefix: str) -> dict[str, float]:
    """Means from sums: {prefix/loss, prefix/accuracy, ...}, as Python floats."""
    return {f"{prefix}/{k}": v for k, v in means(sums).items()}
