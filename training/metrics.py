"""Metrics as (sum, count) pairs, reduced once on the host (Scenic's rule).

A step returns sums over the examples it saw, with padded examples masked out; dividing happens
only after summing over steps and devices, so neither padding nor device count biases a mean.
What is summed is the task's (tasks/); this module only adds and reduces.
"""

from __future__ import annotations

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


def reduce(sums: dict, prefix: str) -> dict[str, float]:
    """Means from sums: {prefix/loss, prefix/accuracy, ...}, as Python floats."""
    return {f"{prefix}/{k}": v for k, v in means(sums).items()}
