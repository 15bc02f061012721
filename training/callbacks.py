"""What a Keras user expects around the loop: a validation split carved from train, early
stopping on a validation metric (patience, min delta, restore best), reduce-on-plateau, and a
checkpoint kept at every improvement, with their state saved in every checkpoint so a resumed
run stops, or lowers its learning rate, exactly where an uninterrupted one would.

- `data.val_split=0.1` holds out a fixed 10% of the train split (the same examples for every
  seed, so variants are selected on the same data); it is evaluated beside the eval split,
  under the `val/` prefix, and is what model selection (best checkpoint, early stopping) reads
  when set: the test set is only reported.
- `early_stopping.patience=P` stops after P evaluations without an improvement of the best
  checkpoint's metric (`checkpoint.best_metric`, a `val/` metric) by more than `min_delta`;
  with `restore_best` the run ends with the best evaluation's weights, and its final metrics
  and fingerprint are theirs.
- `plateau.patience=P` multiplies the learning rate (after the schedule) by `factor` when the
  mean train loss over `plateau.every_steps` steps has not improved for P such windows:
  `optax.contrib.reduce_on_plateau`, fed the loss through `update(..., value=loss)`; its state
  is part of the optimizer state.
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections
import numpy as np
import optax
from optax import contrib

VAL_PREFIX = "val"
VAL_SEED = 0  # the held-out examples do not depend on the run's seed


# --- validation split ---------------------------------------------------------------------------

class Subset:
    """Records `indices` of a random-access source, as a random-access source."""

    def __init__(self, source, indices):
        self.source, self.indices = source, [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.source[self.indices[i]]


def split_indices(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) record indices, each sorted: a fixed permutation's first
    round(n * fraction) records are held out."""
    held = int(round(n * fraction))
    if not 0 < held < n:
        raise ValueError(f"data.val_split={fraction} of {n} train records holds out {held}; "
                         "choose a fraction that leaves records on both sides")
    order = np.random.default_rng(VAL_SEED).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def carve_validation(c: ml_collections.ConfigDict, data):
    """(data with the train source reduced, the validation source or None)."""
    from errors import UserError

    if c.data.val_split <= 0 or data.train_source is None:
        return data, None
    try:
        train, val = split_indices(len(data.train_source), c.data.val_split)
    except ValueError as err:
        raise UserError(str(err)) from None
    source = data.train_source
    return dataclasses.replace(data, train_source=Subset(source, train)), Subset(source, val)


def as_validation(values: dict, eval_prefix: str) -> dict:
    """`test/accuracy` -> `val/accuracy`: the eval metrics of the validation pass."""
    return {f"{VAL_PREFIX}/{k.split('/', 1)[1]}" if k.startswith(eval_prefix + "/") else k: v
            for k, v in values.items()}


# --- early stopping ------------------------------------------------------------------------------

@dataclasses.dataclass
class EarlyStopping:
    """Keras' EarlyStopping on one metric: `wait` counts evaluations since the last improvement
    (by more than `min_delta`); at `patience` the run stops. Off when patience is 0."""

    metric: str
    mode: str
    patience: int = 0
    min_delta: float = 0.0
    best: float | None = None
    best_step: int | None = None
    wait: int = 0
    stopped_at: int | None = None

    @property
    def enabled(self) -> bool:
        return self.patience > 0

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def improves(self, value: float) -> bool:
        if self.best is None:
            return not math.isnan(value)
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, step: int, values: dict) -> bool:
        """Takes one evaluation's metrics; True when this evaluation is a new best (the
        checkpoint to keep). Sets `stopped_at` when patience runs out."""
        if not self.enabled or self.metric not in values:
            return False
        value = float(values[self.metric])
        if self.improves(value):
            self.best, self.best_step, self.wait = value, step, 0
            return True
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_at = step
        return False

    def ranked(self, metrics: dict | None, step: int) -> dict | None:
        """The metrics the checkpoint at `step` is ranked by for keep-best: with early stopping
        only its improvements compete, so the kept best is the one `restore_best` restores."""
        return metrics if not self.enabled or self.best_step == step else None

    def state(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "wait": self.wait,
                "stopped_at": self.stopped_at}

    def load(self, state: dict | None) -> None:
        for key, value in (state or {}).items():
            setattr(self, key, value)

    def summary(self) -> dict:
        if not self.enabled:
            return {}
        out = {"early_stopped": self.stopped, "stopped_at": self.stopped_at,
               "best_step": self.best_step, "best_value": self.best}
        return {**out, "steps": self.stopped_at} if self.stopped else out  # steps trained


def early_stopping(c: ml_collections.ConfigDict, metric: str, mode: str) -> EarlyStopping:
    e = c.early_stopping
    return EarlyStopping(metric, mode, patience=e.patience, min_delta=e.min_delta)


# Callback state rides in the checkpoint's JSON `data` item beside the data iterator's state,
# so it is saved and restored atomically with the step it belongs to.
_KEY = "callbacks"


def pack(data_state: dict, stopper: EarlyStopping) -> dict:
    return {"iterator": data_state, _KEY: {"early_stopping": stopper.state()}}


def unpack(saved: dict, stopper: EarlyStopping) -> dict:
    """The data iterator's state; loads the callbacks' into `stopper` (a checkpoint written
    before callbacks existed holds the iterator's state alone)."""
    if _KEY not in saved:
        return saved
    stopper.load(saved[_KEY].get("early_stopping"))
    return saved["iterator"]


# --- reduce on plateau ---------------------------------------------------------------------------

def plateau(c: ml_collections.ConfigDict) -> list[optax.GradientTransformation]:
    """`[reduce_on_plateau]` to chain after the optimizer (it scales the scheduled updates),
    or `[]` when off."""
    p = c.plateau
    if p.patience <= 0:
        return []
    return [contrib.reduce_on_plateau(factor=p.factor, patience=p.patience, rtol=p.rtol,
                                      atol=p.atol, cooldown=p.cooldown,
                                      accumulation_size=p.every_steps, min_scale=p.min_scale)]


def lr_scale(opt_state) -> dict[str, float]:
    """{"train/lr_scale": the plateau's current factor} when the optimizer has one."""
    found = [s for s in _states(opt_state) if isinstance(s, contrib.ReduceLROnPlateauState)]
    return {"train/lr_scale": float(found[0].scale)} if found else {}


def _states(tree):
    if isinstance(tree, contrib.ReduceLROnPlateauState):
        yield tree
    elif isinstance(tree, (tuple, list)):
        for item in tree:
            yield from _states(item)
