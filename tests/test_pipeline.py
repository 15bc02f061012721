"""Grain pipelines: eval covers every example once; the train stream shuffles per epoch,
shards without overlap, and resumes from its saved state exactly."""

import numpy as np

from data import pipeline


def _records(n):
    return [{"image": np.full((4, 4, 1), i, np.uint8), "label": i % 10} for i in range(n)]


def _ids(batch):
    return np.round(batch["image"][:, 0, 0, 0] * 255).astype(int).tolist()


def test_decode_scales_and_resizes():
    out = pipeline.decode({"image": np.full((8, 8, 1), 255, np.uint8), "label": 3}, 32)
    assert out["image"].shape == (32, 32, 1) and out["image"].dtype == np.float32
    np.testing.assert_allclose(out["image"], 1.0, atol=1e-6)
    assert out["label"] == 3


class _ManyAtOnce(list):
    """A source that reads many records in one call, as TFDS's ArrayRecord sources do."""

    def __getitems__(self, indices):
        return [self[i] for i in indices]


def test_cached_examples_equal_the_streamed_ones_shard_by_shard():
    """Held in memory or decoded on demand, a shard holds the same examples in the same order,
    with the whole split's index given to `keyed`, and padding at the image's edges."""
    keyed = lambda example, index: {**example, "index": np.int32(index)}
    for source in (_records(11), _ManyAtOnce(_records(11))):
        for shard in range(3):
            options = dict(image_size=4, pad=1, keyed=keyed, shard_index=shard, shard_count=3)
            cached = pipeline.decoded(source, cache=True, **options)
            streamed = pipeline.decoded(source, cache=False, **options)
            assert len(cached) == len(streamed) == len(range(shard, 11, 3))
            for got, want in zip(cached, streamed):
                assert got.keys() == want.keys() and got["index"] % 3 == shard
                for key in want:
                    np.testing.assert_array_equal(got[key], want[key])
    image = pipeline.decode({"image": np.full((4, 4, 1), 255, np.uint8), "label": 0}, 4, pad=1)
    assert image["image"].shape == (6, 6, 1) and image["image"][1:-1, 1:-1].min() == 1.0
    assert image["image"][0].max() == image["image"][:, -1].max() == 0.0


def test_eval_batches_cover_every_example_once_with_mask():
    ds = pipeline.decoded(_records(23), image_size=4, cache=True)
    batches = list(pipeline.eval_batches(ds, batch_size=8, num_batches=3))
    assert [b["mask"].sum() for b in batches] == [8, 8, 7]
    seen = [i for b in batches for i, m in zip(_ids(b), b["mask"]) if m]
    assert sorted(seen) == list(range(23))


def test_eval_shards_run_equal_batch_counts_and_partition_the_set():
    records = _records(23)
    count = pipeline.eval_batch_count(23, batch_size=4, shard_count=2)
    seen = []
    for shard in range(2):
        ds = pipeline.decoded(records, image_size=4, cache=False, shard_index=shard,
                              shard_count=2)
        batches = list(pipeline.eval_batches(ds, batch_size=4, num_batches=count))
        assert len(batches) == count == 3
        seen += [i for b in batches for i, m in zip(_ids(b), b["mask"]) if m]
    assert sorted(seen) == list(range(23))


def test_train_stream_reshuffles_each_epoch_and_visits_all():
    ds = pipeline.decoded(_records(20), image_size=4, cache=True)
    it = iter(pipeline.train_dataset(ds, batch_size=5, seed=0))
    epoch1 = sum((_ids(next(it)) for _ in range(4)), [])
    epoch2 = sum((_ids(next(it)) for _ in range(4)), [])
    assert sorted(epoch1) == sorted(epoch2) == list(range(20))
    assert epoch1 != epoch2


def test_processes_share_the_one_process_batches_and_augmentation_draws():
    ds = pipeline.decoded(_records(20), image_size=4, cache=True)
    noise = lambda image, rng: image + rng.normal(size=image.shape).astype(np.float32)
    make = lambda share, batch: iter(pipeline.train_dataset(ds, batch_size=batch, seed=5,
                                                            augment=noise, share=share))
    alone, shares = make((0, 1), 6), [make((i, 3), 2) for i in range(3)]
    for _ in range(7):  # past an epoch boundary
        expected = next(alone)
        got = [next(s) for s in shares]
        for key in ("image", "label"):
            np.testing.assert_array_equal(np.concatenate([g[key] for g in got]), expected[key])


def test_resumed_iterator_equals_uninterrupted_batch_by_batch():
    ds = pipeline.decoded(_records(20), image_size=4, cache=True)
    noise = lambda image, rng: image + rng.normal(size=image.shape).astype(np.float32)
    straight = iter(pipeline.train_dataset(ds, batch_size=6, seed=3, augment=noise))
    reference = [next(straight) for _ in range(9)]
    first = iter(pipeline.train_dataset(ds, batch_size=6, seed=3, augment=noise))
    for _ in range(4):
        next(first)
    state = first.get_state()
    resumed = iter(pipeline.train_dataset(ds, batch_size=6, seed=3, augment=noise))
    resumed.set_state(state)
    for expected in reference[4:]:
        got = next(resumed)
        np.testing.assert_array_equal(got["image"], expected["image"])
        np.testing.assert_array_equal(got["label"], expected["label"])


def _add_noise(image, rng):
    return image + rng.normal(size=image.shape).astype(np.float32)


def test_balanced_epoch_has_every_class_equally_often():
    records = [{"image": np.full((2, 2, 1), i, np.uint8), "label": 0 if i < 14 else 1 + i % 2}
               for i in range(20)]  # 14 of class 0, 3 each of classes 1 and 2
    ds = pipeline.decoded(records, image_size=2, cache=True)
    bal = pipeline.balanced(ds, pipeline.labels_of(ds), seed=0)
    assert np.bincount(pipeline.labels_of(bal)).tolist() == [14, 14, 14]
    ids = [int(round(bal[i]["image"][0, 0, 0] * 255)) for i in range(len(bal))]
    assert set(ids) == set(range(20)), "every record appears"


def test_worker_processes_give_the_same_batches_and_resume():
    ds = pipeline.decoded(_records(20), image_size=4, cache=True)
    make = lambda workers: iter(pipeline.train_dataset(ds, batch_size=5, seed=2,
                                                       augment=_add_noise, num_workers=workers))
    local, workers = make(0), make(2)
    for _ in range(3):
        np.testing.assert_array_equal(next(local)["image"], next(workers)["image"])
    state = workers.get_state()
    resumed = make(2)
    resumed.set_state(state)
    np.testing.assert_array_equal(next(resumed)["image"], next(local)["image"])


def _memory_stream(ds, **kwargs):
    return iter(pipeline.train_dataset(ds, in_memory=True, **kwargs))


def test_an_in_memory_split_without_example_work_is_batched_by_one_gather():
    ds = pipeline.decoded(_records(20), image_size=4, cache=True)
    it = _memory_stream(ds, batch_size=8, seed=0)
    ids = sum((_ids(next(it)) for _ in range(5)), [])  # two epochs, batches across the seam
    assert sorted(ids[:20]) == sorted(ids[20:40]) == list(range(20))
    assert ids[:20] != ids[20:40], "each epoch is shuffled anew"
    again = _memory_stream(ds, batch_size=8, seed=0)
    assert sum((_ids(next(again)) for _ in range(5)), []) == ids, "the seed fixes the order"
    other = _memory_stream(ds, batch_size=8, seed=1)
    assert sum((_ids(next(other)) for _ in range(5)), []) != ids
    batch = next(_memory_stream(ds, batch_size=8, seed=0))
    assert batch["image"].shape == (8, 4, 4, 1) and batch["label"].tolist() == [
        i % 10 for i in _ids(batch)]
    # per-example work keeps Grain's per-record stages
    noisy = pipeline.train_dataset(ds, batch_size=8, seed=0, in_memory=True,
                                   augment=_add_noise)
    pixels = next(iter(noisy))["image"] * 255
    assert not np.allclose(pixels, np.round(pixels)), "the noise was added"


def test_in_memory_batches_share_across_processes_and_resume():
    ds = pipeline.decoded(_records(20), image_size=4, cache=True)
    alone = _memory_stream(ds, batch_size=6, seed=5)
    shares = [_memory_stream(ds, batch_size=2, seed=5, share=(i, 3)) for i in range(3)]
    reference = [next(alone) for _ in range(9)]  # past two epoch boundaries
    for expected in reference[:7]:
        got = [next(s) for s in shares]
        for key in ("image", "label"):
            np.testing.assert_array_equal(np.concatenate([g[key] for g in got]), expected[key])
    first = _memory_stream(ds, batch_size=6, seed=5)
    for _ in range(4):
        next(first)
    resumed = _memory_stream(ds, batch_size=6, seed=5)
    resumed.set_state(first.get_state())
    for expected in reference[4:]:
        np.testing.assert_array_equal(next(resumed)["image"], expected["image"])
