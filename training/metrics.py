"""Metrics as (sum, count) pairs, reduced once on the host (Scenic's rule).

A step returns sums over the examples it saw, with padded examples masked out; dividing happens
only after summing over steps and devices, so neither padding nor device count biases a mean.
What is summed is the task's (tasks/); this module only adds and reduces.
"""

from __future__ import annotations

from tasks.base import means


def add(total: dict | None, sums: dict) -> dict:
    return dict(sums) if total is None else {k: total[k] + sums[k] for k in total}


def reduce(sums: dict, prefix: str) -> dict[str, float]:
    """Means from sums: {prefix/loss, prefix/accuracy, ...}, as Python floats."""
    return {f"{prefix}/{k}": v for k, v in means(sums).items()}
