"""A run's data, built from its config: the two sources, what the task needs to know of them,
and this process's train stream and eval set.

The task (tasks/) supplies how an example is prepared: `decode(record)`, then
`train_example(example, rng)` for training and `eval_example(example, index)` for evaluation;
this module only wires them into the Grain pipeline of data/pipeline.py.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import ml_collections
import numpy as np

from data import balanced_batches, class_split, few_shot, pipeline, sources


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a task needs to know of its dataset, read before anything is built."""

    name: str
    num_classes: int | None      # label or mask classes; None for unlabelled images
    in_channels: int
    class_names: tuple[str, ...] = ()
    description: str = ""        # e.g. how label values were mapped to classes, printed at start
    labels: str = "class"        # what records are labelled with: class, pixel (masks) or none


@dataclasses.dataclass
class Data:
    train_source: object
    eval_source: object
    info: DataInfo


def open_data(c: ml_collections.ConfigDict, *, train: bool = True) -> Data:
    """The config's sources (the train one only when `train`) and their metadata."""
    d = c.data
    train_source = (sources.open_split(d.name, d.train_split, d.data_dir, skip_bad=d.skip_bad)
                    if train else None)
    eval_source = sources.open_split(d.name, d.eval_split, d.data_dir, skip_bad=d.skip_bad)
    from data import stats  # normalize(NAME) finds its cached statistics in the run's data dir

    stats.use_data_dir(d.data_dir)
    info = DataInfo(name=d.name, num_classes=sources.num_classes(d.name, d.data_dir),
                    in_channels=sources.image_channels(d.name, d.data_dir),
                    class_names=tuple(sources.class_names(d.name, d.data_dir)),
                    description=sources.describe(d.name, d.data_dir),
                    labels=labels_of_record(eval_source[0]) if len(eval_source) else "none")
    k = info.num_classes or 0
    train_source = class_split.restrict(train_source, d.get("train_classes", ()),
                                        field="train_classes", num_classes=k)
    eval_source = class_split.restrict(eval_source, d.get("eval_classes", ()),
                                       field="eval_classes", num_classes=k)
    train_source = few_shot.first_per_class(train_source, d.get("train_per_class", 0))
    return Data(train_source, eval_source, info)


def labels_of_record(record: dict) -> str:
    return "pixel" if "mask" in record else "class" if "label" in record else "none"


@dataclasses.dataclass
class Inputs:
    train_iter: object
    eval_ds: object
    eval_batches: Callable[[], object]  # a fresh pass over the eval set, in padded batches
    class_counts: np.ndarray | None     # train records per class, when known


def build_inputs(c: ml_collections.ConfigDict, data: Data, *, decode: Callable,
                 train_example: Callable | None, eval_example: Callable, multiple: int = 1,
                 eval_sizes_vary: bool = False) -> Inputs:
    """This process's train stream and eval set. Class counts are reported when they come
    cheap (a cached set) or are needed (balanced sampling): a full pass otherwise. Eval sets of
    whole images of different sizes are batched by shape, each batch padded to a multiple of
    `multiple` (the device count) rather than to the full eval batch size."""
    shard = dict(shard_index=jax.process_index(), shard_count=jax.process_count())
    train_iter, counts = None, None
    if data.train_source is not None:
        train_iter, counts = _train_stream(c, data, decode, train_example)
    eval_ds = pipeline.decoded(data.eval_source, prepare=decode, keyed=eval_example,
                               cache=c.data.cache, **shard)
    per_process = c.eval.batch_size // jax.process_count()
    if eval_sizes_vary:
        local_multiple = max(1, multiple // jax.process_count())
        batches = lambda: pipeline.eval_batches_by_shape(eval_ds, per_process, local_multiple)
    else:
        count = pipeline.eval_batch_count(len(data.eval_source), per_process,
                                          jax.process_count())
        batches = lambda: pipeline.eval_batches(eval_ds, batch_size=per_process,
                                                num_batches=count)
    return Inputs(train_iter, eval_ds, batches, counts)


def _train_stream(c, data: Data, decode: Callable, train_example: Callable):
    """(the train iterator, class counts or None)."""
    # The whole split on every process: train_dataset gives each process its rows of the
    # global batches (cached, each process keeps the whole set: caching is for small sets).
    train_ds = pipeline.decoded(data.train_source, prepare=decode, cache=c.data.cache)
    counts = None
    per_batch = c.data.get("classes_per_batch", 0)  # P of P x K batches; 0: shuffled batches
    if "label" in train_ds[0] and (c.data.cache or c.data.balance or per_batch):
        labels = pipeline.labels_of(train_ds)
        counts = np.bincount(labels, minlength=data.info.num_classes)
        if c.data.balance:
            train_ds = pipeline.balanced(train_ds, labels, seed=c.seed)
        if per_batch:
            train_ds = balanced_batches.pk_dataset(
                train_ds, labels, classes_per_batch=per_batch,
                per_class=c.train.batch_size // per_batch, seed=c.seed,
                share=(jax.process_index(), jax.process_count()))
    train_iter = iter(pipeline.train_dataset(
        train_ds, batch_size=c.train.batch_size // jax.process_count(), seed=c.seed,
        transform=train_example, num_workers=c.data.num_workers, prefetch=c.data.prefetch,
        shuffle=not per_batch, share=(jax.process_index(), jax.process_count()),
        in_memory=c.data.cache))
    return train_iter, counts
