"""Few-shot training sets: the first N records of each class of a split (`data.train_per_class`),
in their original order, so "10 labelled examples per class" is the same set for every seed."""

from __future__ import annotations

import numpy as np

from errors import UserError


class FirstPerClass:
    """A random-access source of the first `n` records of every class of `source`."""

    def __init__(self, source, n: int):
        if len(source) and "label" not in source[0]:
            raise UserError("data.train_per_class needs labelled records; this dataset has no "
                            "class per image (leave it 0)")
        labels = np.array([int(source[i]["label"]) for i in range(len(source))])
        keep = np.zeros(len(labels), bool)
        for k in np.unique(labels):
            keep[np.flatnonzero(labels == k)[:n]] = True
        self.indices = np.flatnonzero(keep)
        self._source = source

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        return self._source[int(self.indices[index])]


def first_per_class(source, n: int):
    """`source` itself when n is 0 (every record), else its FirstPerClass."""
    return source if source is None or not n else FirstPerClass(source, n)
