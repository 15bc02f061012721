"""Watching a run's numbers: a non-finite loss or gradient, and the global gradient norm.

The train step computes a few scalars per step beside its metric sums (`step_health`, under
the `HEALTH` key of the sums; both in tasks/base.py, since a task that owns its step returns
them too); the loop hands them to a `HealthWatch`, which reads them from the
device in batches, at each log and before each checkpoint, so no step waits for the host and a
checkpoint is never written from non-finite weights. With `train.skip_nonfinite` the step keeps
the previous state instead of applying such an update (`keep_if_finite`), and the watch counts
the skipped steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


class NonFiniteError(Exception):
    """A non-finite loss or gradient, with the step and the quantity: the run stops (exit 3)."""


def is_finite(health: dict) -> jax.Array:
    return health["loss_finite"] & (health["bad_leaf"] < 0)


def keep_if_finite(health: dict, new, old):
    """`new` where the step's loss and gradients are finite, else `old` (leaf by leaf)."""
    ok = is_finite(health)
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


class HealthWatch:
    """Collects each step's health (device arrays) and checks them in batches."""

    def __init__(self, params, *, skip_nonfinite: bool):
        self.paths = [jax.tree_util.keystr(p) for p, _ in
                      jax.tree_util.tree_leaves_with_path(params)]
        self.skip = skip_nonfinite
        self.pending: list[tuple[int, dict]] = []

    def add(self, step_number: int, health: dict) -> None:
        self.pending.append((step_number, health))

    def check(self) -> dict[str, float]:
        """{train/grad_norm (mean since the last check), train/skipped_steps}; raises
        NonFiniteError at the first bad step unless such steps are skipped."""
        if not self.pending:
            return {}
        steps, healths = zip(*self.pending)
        self.pending = []
        host = jax.device_get(list(healths))
        skipped = 0
        for step_number, h in zip(steps, host):
            if bool(h["loss_finite"]) and int(h["bad_leaf"]) < 0:
                continue
            if not self.skip:
                raise NonFiniteError(f"step {step_number}: {self._quantity(h)} is not finite; the "
                                     "last checkpoint before it is kept. Lower optimizer.lr, or "
                                     "skip such steps with --config.train.skip_nonfinite=True")
            skipped += 1
        norms = [float(h["grad_norm"]) for h in host if np.isfinite(h["grad_norm"])]
        values = {"train/skipped_steps": float(skipped)}
        if norms:
            values["train/grad_norm"] = float(np.mean(norms))
        return values

    def _quantity(self, h: dict) -> str:
        if not bool(h["loss_finite"]):
            return "the loss"
        return f"the gradient of {self.paths[int(h['bad_leaf'])]}"
