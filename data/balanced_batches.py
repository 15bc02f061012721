"""Class-balanced P x K train batches for metric learning (Hermans, Beyer and Leibe 2017): each
batch holds P classes drawn without replacement and K examples of each, so every anchor has
K - 1 positives and (P - 1) K negatives to mine from.

The stream is an endless Grain MapDataset in batch order: example i belongs to batch
i // (its share of P x K), and that batch's classes and examples are drawn from
`default_rng([seed, batch])` alone, so the stream is the same after a resume (Grain's iterator
state is a position) and the same on every process. Each process takes its contiguous share
of the batch's P classes (P must divide by the process count), drawn from the whole split, so
the global batch is the one a single process would draw: P x K with P distinct classes. A
class with fewer than K examples has them drawn with replacement. Grain has no such sampler,
hence this one.
"""

from __future__ import annotations

import grain
import numpy as np

from errors import UserError

ENDLESS = 2 ** 62  # examples in the stream: more than any run reads


def class_members(labels: np.ndarray) -> dict[int, np.ndarray]:
    labels = np.asarray(labels)
    return {int(k): np.flatnonzero(labels == k) for k in np.unique(labels)}


def batch_indices(members: dict[int, np.ndarray], batch: int, *, classes_per_batch: int,
                  per_class: int, seed: int, share: tuple[int, int] = (0, 1)) -> np.ndarray:
    """The record indices of `batch`'s share (process `share[0]` of `share[1]`): its
    classes' K examples each, class after class."""
    rng = np.random.default_rng([seed, batch])
    classes = np.array(sorted(members))
    chosen = rng.choice(classes, classes_per_batch, replace=False)
    # Every process draws every class's examples, so the draws agree across processes.
    drawn = [rng.choice(members[int(k)], per_class, replace=len(members[int(k)]) < per_class)
             for k in chosen]
    index, count = share
    per_process = classes_per_batch // count  # contiguous shares: the global batch's order
    return np.concatenate(drawn[index * per_process:(index + 1) * per_process])


def pk_dataset(ds: grain.MapDataset, labels: np.ndarray, *, classes_per_batch: int,
               per_class: int, seed: int, share: tuple[int, int] = (0, 1)) -> grain.MapDataset:
    """`ds`'s records as an endless stream of P x K batch shares, in order (not to be
    shuffled: consecutive runs of its local batch size are one batch)."""
    members = class_members(labels)
    if len(members) < classes_per_batch:
        raise UserError(f"P x K batches of {classes_per_batch} classes, but the train set has "
                        f"{len(members)}; lower task.classes_per_batch or train on more classes")
    if classes_per_batch % share[1]:
        raise UserError(f"task.classes_per_batch={classes_per_batch} must divide by the "
                        f"{share[1]} processes, so each feeds whole classes")
    local = classes_per_batch // share[1] * per_class
    indices = _BatchDraws(members, classes_per_batch=classes_per_batch, per_class=per_class,
                          seed=seed, share=share)
    return grain.MapDataset.range(ENDLESS).map(
        lambda i: ds[int(indices(i // local)[i % local])])


class _BatchDraws:
    """`batch_indices` of a batch, drawn once for all its examples (a few batches kept); a
    plain object rather than an lru_cache closure, so Grain's workers can be sent it."""

    def __init__(self, members: dict[int, np.ndarray], **draw):
        self.members, self.draw, self.kept = members, draw, {}

    def __call__(self, batch: int) -> np.ndarray:
        if batch not in self.kept:
            if len(self.kept) >= 4:
                self.kept.clear()
            self.kept[batch] = batch_indices(self.members, batch, **self.draw)
        return self.kept[batch]
