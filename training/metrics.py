"""Metrics as (sum, count) pairs, reduced once on the host (Scenic's rule).

A step returns sums over the examples it saw, with padded examples masked out; dividing happens
only after summing over steps and devices, so neither padding nor device count biases a mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def classification_sums(logits: jax.Array, labels: jax.Array, per_example_loss: jax.Array,
                        mask: jax.Array) -> dict[str, jax.Array]:
    """Summed loss, correct top-1 (and top-5 when there are more than 5 classes), and count."""
    mask = mask.astype(jnp.float32)
    top1 = jnp.argmax(logits, axis=-1) == labels
    sums = {"loss": jnp.sum(per_example_loss * mask), "accuracy": jnp.sum(top1 * mask),
            "count": jnp.sum(mask)}
    if logits.shape[-1] > 5:
        _, top5_idx = jax.lax.top_k(logits, 5)
        in_top5 = jnp.any(top5_idx == labels[:, None], axis=-1)
        sums["top5"] = jnp.sum(in_top5 * mask)
    return sums


def add(total: dict | None, sums: dict) -> dict:
    return dict(sums) if total is None else {k: total[k] + sums[k] for k in total}


def reduce(sums: dict, prefix: str) -> dict[str, float]:
    """Means from sums: {prefix/loss, prefix/accuracy, ...}, as Python floats."""
    host = {k: np.asarray(v, np.float64) for k, v in jax.device_get(sums).items()}
    count = host.pop("count")
    return {f"{prefix}/{k}": float(v / count) for k, v in host.items()}
