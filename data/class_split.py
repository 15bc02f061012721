"""Class splits: a split's records restricted to some classes (`data.train_classes`,
`data.eval_classes`), so a metric-learning run trains on some classes and is evaluated on
classes it never saw (digits 0-4 against 5-9).

Labels keep their dataset ids (class 7 stays 7, its name stays its name). Finding the records
of the chosen classes reads every record's label once, when the split is opened.
"""

from __future__ import annotations

import numpy as np

from errors import UserError


class ClassSubset:
    """A random-access source (len, __getitem__) of `source`'s records whose label is in
    `classes`, in their original order."""

    def __init__(self, source, classes, *, field: str, num_classes: int):
        classes = [int(k) for k in classes]
        bad = [k for k in classes if not 0 <= k < num_classes]
        if bad:
            raise UserError(f"data.{field} names class {bad[0]}, but the dataset has classes "
                            f"0..{num_classes - 1}; give class ids in that range")
        if len(source) and "label" not in source[0]:
            raise UserError(f"data.{field} needs labelled records; this dataset has no class "
                            f"per image (leave data.{field} empty)")
        labels = np.array([int(source[i]["label"]) for i in range(len(source))])
        self.indices = np.flatnonzero(np.isin(labels, classes))
        if not len(self.indices):
            raise UserError(f"data.{field}={tuple(classes)} leaves no records in this split; "
                            "choose classes the split has")
        self._source = source

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        return self._source[int(self.indices[index])]


def restrict(source, classes, *, field: str, num_classes: int):
    """`source` itself when `classes` is empty (all classes), else its ClassSubset."""
    if source is None or not len(classes):
        return source
    return ClassSubset(source, classes, field=field, num_classes=num_classes)
