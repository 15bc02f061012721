"""Grain pipelines: a shuffled, repeated, sharded train stream and a padded, masked eval pass.

Stages: this process's shard of the records, decoded (uint8 -> float32 in [0, 1], resized),
optionally held in memory, then for training shuffled anew each epoch from the run's seed,
augmented with per-example random streams that Grain derives from the seed and the example's
position, and batched. The train iterator's state is a small dict that goes into every
checkpoint, so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Callable, Iterator

import grain
import numpy as np
from absl import flags as absl_flags
from PIL import Image


def to_float_image(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 HWC -> float32 HWC in [0, 1], resized (bilinear) to size x size."""
    image = np.asarray(image).astype(np.float32) / 255.0
    if image.shape[:2] == (size, size):
        return image
    # Pillow reads a 2-D float32 array as mode F (32-bit float), resized without rounding.
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
        (size, size), Image.Resampling.BILINEAR)) for c in range(image.shape[-1])]
    return np.stack(channels, axis=-1)


def decode(record: dict, image_size: int, pad: int = 0) -> dict:
    """A record as float32 image_size x image_size, then `pad` zero pixels on every side."""
    image = to_float_image(record["image"], image_size)
    if pad:  # into zeros: np.pad takes 35 us an image, most of a small image's decode
        padded = np.zeros((image_size + 2 * pad, image_size + 2 * pad, image.shape[-1]),
                          np.float32)
        padded[pad:-pad, pad:-pad] = image
        image = padded
    return {"image": image, "label": np.int32(record["label"])}


def decoded(source, *, cache: bool, prepare: Callable | None = None, image_size: int | None = None,
            pad: int = 0, keyed: Callable | None = None, shard_index: int = 0,
            shard_count: int = 1) -> grain.MapDataset:
    """This process's shard of `source`, decoded by `prepare(record)` (default: the classifier's
    resize + pad to `image_size`), then `keyed(example, index)` with the record's index in the
    whole split (evaluation's per-example degradations); with `cache`, all of it done once and
    kept in memory.

    Grain's MapDataset has no in-memory cache, and for small sets (digits, CIFAR) reading and
    resizing every record every epoch costs more than the train step, hence the list.
    """
    if prepare is None:
        prepare = functools.partial(decode, image_size=image_size, pad=pad)
    if cache:
        return grain.MapDataset.source(_decoded_list(source, prepare, keyed, shard_index,
                                                     shard_count))
    ds = grain.MapDataset.source(source).map(prepare)
    if keyed is not None:
        ds = ds.map_with_index(lambda index, example: keyed(example, index))
    return ds[shard_index::shard_count]


def _decoded_list(source, prepare: Callable, keyed: Callable | None, shard_index: int,
                  shard_count: int) -> list[dict]:
    """`decoded`'s examples, all made now: read in one call where the source reads many
    records at once (TFDS's ArrayRecord sources), decoded without Grain's per-record map.
    Measured on the digits' 1,437 train records: 0.59 s through Grain, 0.33 s so."""
    indices = list(range(shard_index, len(source), shard_count))
    many = getattr(source, "__getitems__", None)
    records = many(indices) if many is not None else [source[i] for i in indices]
    examples = [prepare(record) for record in records]
    if keyed is not None:
        examples = [keyed(example, index) for example, index in zip(examples, indices)]
    return examples


def labels_of(ds: grain.MapDataset) -> np.ndarray:
    """Every record's label (a full pass: cheap on a cached dataset)."""
    return np.array([int(ds[i]["label"]) for i in range(len(ds))])


def balanced(ds: grain.MapDataset, labels: np.ndarray, seed: int) -> grain.MapDataset:
    """An epoch with every class as often as the largest one: the smaller classes' records
    repeated whole, then topped up by a seeded draw without replacement."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    target = max(int(np.sum(labels == k)) for k in classes)
    picked = []
    for k in classes:
        members = np.flatnonzero(labels == k)
        repeats, rest = divmod(target, len(members))
        picked += [np.tile(members, repeats), rng.choice(members, rest, replace=False)]
    order = np.sort(np.concatenate(picked))  # Grain's shuffle orders the epoch
    return _subset(ds, order)


def _subset(ds: grain.MapDataset, indices: np.ndarray) -> grain.MapDataset:
    return grain.MapDataset.range(len(indices)).map(lambda i: ds[int(indices[i])])


def train_dataset(ds: grain.MapDataset, *, batch_size: int, seed: int,
                  augment: Callable | None = None, transform: Callable | None = None,
                  num_workers: int = 0, prefetch: int = 2, shuffle: bool = True,
                  share: tuple[int, int] = (0, 1), in_memory: bool = False):
    """An endless iterable of batches of `batch_size`, this process's share of each global
    batch of `batch_size * share[1]` examples (process `share[0]` of `share[1]`).

    `ds` is the whole split, the same on every process: the epoch order and every example's
    random stream (Grain's `random_map` seeds it by the example's position in the stream) are
    global, and each process prepares only its own rows of each global batch. So N processes
    train on exactly the batches one process would.
    `transform(example, rng)` prepares each example with its own random stream (a task's
    augmentation, patch and degradation); `augment(image, rng)` is the image-only shorthand.
    `shuffle=False` keeps the order of `ds` (a stream already in batch order and already this
    process's share: P x K batches). `in_memory` (a cached `ds`) with no per-example work
    batches by one NumPy gather instead (`memory_batches`; no worker processes are needed
    then, and `num_workers` is not used)."""
    if in_memory and shuffle and augment is None and transform is None:
        return memory_batches(ds, batch_size=batch_size, seed=seed, prefetch=prefetch,
                              share=share)
    ds = ds.seed(seed)
    ds = (ds.shuffle() if shuffle else ds).repeat(None)
    if augment is not None:
        ds = ds.random_map(lambda ex, rng: {**ex, "image": augment(ex["image"], rng)})
    if transform is not None:
        ds = ds.random_map(transform)
    if shuffle:
        ds = process_rows(ds, batch_size, share)
    ds = ds.batch(batch_size, drop_remainder=True).to_iter_dataset(read_options(prefetch))
    if num_workers > 0:
        # Grain's workers read absl's global flags; our CLI parses its own FlagValues.
        if not absl_flags.FLAGS.is_parsed():
            absl_flags.FLAGS.mark_as_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(
            num_workers=num_workers, per_worker_buffer_size=prefetch))
    return ds


def memory_batches(ds: grain.MapDataset, *, batch_size: int, seed: int, prefetch: int = 2,
                   share: tuple[int, int] = (0, 1)) -> grain.IterDataset:
    """`train_dataset`'s stream for an in-memory split without per-example work: the same
    global order semantics (a new permutation of the whole split each epoch, from the seed and
    the epoch; batches run on across epoch boundaries; process `share[0]` of `share[1]` takes
    its rows of each global batch), each batch one NumPy gather from the stacked split.

    Why not Grain's per-record stages: they cost ~50 us of Python per record (a 64-digit
    batch: 3.5-4 ms), which on 2 cores took ~4 ms from every 15 ms LeNet-5 step of the
    default experiment. The elements here are whole batches, so Grain still reads ahead on
    its threads and its iterator state (the next batch's index) is checkpointed and resumed
    as before."""
    arrays = {k: np.stack([ds[i][k] for i in range(len(ds))]) for k in ds[0]}
    size, (index, count) = len(ds), share

    @functools.lru_cache(maxsize=4)
    def order(epoch: int) -> np.ndarray:
        return np.random.default_rng([seed, epoch]).permutation(size)

    def batch(number: int, _) -> dict:
        start = number * batch_size * count + index * batch_size
        epochs, offsets = np.divmod(np.arange(start, start + batch_size), size)
        picks = np.concatenate([order(int(e))[offsets[epochs == e]] for e in np.unique(epochs)])
        return {k: v[picks] for k, v in arrays.items()}

    return (grain.MapDataset.range(1).repeat(None).map_with_index(batch)
            .to_iter_dataset(read_options(prefetch)))


def read_options(prefetch: int) -> grain.ReadOptions:
    """Threads reading batches ahead of the train step: one per core, `prefetch` batches each.
    Grain's default (16 threads, 500 elements; here an element is a whole batch) prepares 500
    batches at the start, which on 2 cores halves the speed of the first ~100 train steps."""
    threads = max(1, min(16, os.cpu_count() or 1))
    return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=threads * max(1, prefetch))


def process_rows(ds: grain.MapDataset, local_batch: int, share: tuple[int, int]):
    """Process `share[0]`'s rows of each global batch of `ds` (a stream in batch order): its
    local example i is global example (i // b) * B + index * b + i % b, b local, B global.
    Grain's own sharding (`ds[index::count]`) interleaves processes, which changes the epoch
    each one shuffles; slicing after the global order keeps it."""
    index, count = share
    if count == 1:
        return ds
    rows = local_batch * count
    return grain.MapDataset.range(len(ds) // count).map(
        lambda i: ds[(i // local_batch) * rows + index * local_batch + i % local_batch])


def eval_batch_count(num_records: int, batch_size: int, shard_count: int) -> int:
    """Batches every process runs: enough for the largest shard, because each batch is one
    collective computation across processes."""
    return math.ceil(math.ceil(num_records / shard_count) / batch_size)


def eval_batches(ds: grain.MapDataset, *, batch_size: int, num_batches: int) -> Iterator[dict]:
    """Every example of `ds` exactly once, in `num_batches` batches padded with mask 0."""
    template = ds[0]
    for b in range(num_batches):
        examples = [ds[i] for i in range(b * batch_size, min((b + 1) * batch_size, len(ds)))]
        yield pad_and_stack(examples, batch_size, template)


def eval_batches_by_shape(ds: grain.MapDataset, batch_size: int, multiple: int) -> Iterator[dict]:
    """Every example of `ds` once, for whole images of different sizes: examples of one shape
    (in index order within it) batched together, each batch padded with mask-0 copies only to
    a multiple of `multiple` (the devices), since a full eval batch of one large image would
    be mostly padding. Each shape compiles the eval step once."""
    groups: dict[tuple, list[dict]] = {}
    for i in range(len(ds)):  # each example prepared once (such eval sets are small)
        example = ds[i]
        shapes = tuple(np.shape(v) for v in example.values() if not isinstance(v, str))
        groups.setdefault(shapes, []).append(example)
    for group in groups.values():
        for start in range(0, len(group), batch_size):
            examples = group[start:start + batch_size]
            yield pad_and_stack(examples, -(-len(examples) // multiple) * multiple, examples[0])


def pad_and_stack(examples: list[dict], batch_size: int, template: dict) -> dict:
    pad = batch_size - len(examples)
    arrays = [k for k, v in template.items() if not isinstance(v, str)]  # names stay on the host
    blank = {k: np.zeros_like(template[k]) for k in arrays}
    batch = {k: np.stack([e[k] for e in examples] + [blank[k]] * pad) for k in arrays}
    batch["mask"] = np.array([1] * len(examples) + [0] * pad, np.int32)
    return batch
