"""Metric learning: mining picks the expected triplets on a hand-made batch, the losses equal
hand computations, episodes are seeded, recall on a hand-made set, P x K batches are balanced
and resume, class splits, and what `launch.py embed` and `retrieve` write and refuse."""

import os

import jax
import numpy as np
import pytest

import launch
from data import balanced_batches, class_split, pipeline
from errors import UserError
from tasks import mining, retrieval_metrics

# Five examples on a line (x, 0): classes 0, 0, 1, 1, 0. Distances are |x_i - x_j|.
X = np.array([0.0, 1.0, 3.0, 4.0, 10.0])
LABELS = np.array([0, 0, 1, 1, 0])


def _batch(x=X):
    return np.stack([x, np.zeros_like(x)], axis=1).astype(np.float32)


# Jitted: one compilation per kind, rather than one per operation run eagerly.
_mine = jax.jit(lambda x, labels, valid, kind: mining.mine(mining.pairwise_distances(x), labels,
                                                           valid, kind), static_argnames="kind")
_batch_loss = jax.jit(mining.batch_loss, static_argnames=("loss", "mining", "margin"))


def _mined(kind, x=X, labels=LABELS, valid=None):
    valid = np.ones(len(x), bool) if valid is None else valid
    w = _mine(_batch(x), labels, valid, kind=kind)
    return sorted(tuple(int(i) for i in t) for t in np.argwhere(np.asarray(w) > 0))


def test_batch_hard_picks_farthest_positive_and_closest_negative():
    assert _mined("batch_hard") == [(0, 4, 2), (1, 4, 2), (2, 3, 1), (3, 2, 1), (4, 0, 3)]


def test_semi_hard_picks_closest_farther_negative_else_farthest():
    # (0, 1): negatives at 3 and 4 are farther than 1, the closest is 2. (0, 4): none is
    # farther than 10, so the farthest, 3. And so on for every positive pair.
    assert _mined("semi_hard") == [(0, 1, 2), (0, 4, 3), (1, 0, 2), (1, 4, 3), (2, 3, 1),
                                   (3, 2, 1), (4, 0, 2), (4, 1, 2)]


def test_all_mining_is_every_valid_triplet():
    assert len(_mined("all")) == 3 * 2 * 2 + 2 * 1 * 3  # class-0 anchors, then class-1


def test_padded_examples_are_never_mined():
    # A padded class-1 example at 0.5 would be the hardest negative of anchors 0 and 1.
    x, labels = np.append(X, 0.5), np.append(LABELS, 1)
    valid = np.array([1, 1, 1, 1, 1, 0], bool)
    for kind in mining.MINING:
        assert _mined(kind, x, labels, valid) == _mined(kind)


def _loss(loss, kind, margin):
    return float(_batch_loss(_batch(), LABELS, loss=loss, mining=kind, margin=margin))


def test_triplet_loss_equals_hand_computation():
    # batch-hard, margin 0.5: max(0, d_ap - d_an + 0.5) per anchor = 7.5, 7.5, 0, 0, 4.5
    assert _loss("triplet", "batch_hard", 0.5) == pytest.approx(19.5 / 5)
    # semi-hard: anchors' means over their positives = 3.25, 3.25, 0, 0, (3.5 + 2.5) / 2
    assert _loss("triplet", "semi_hard", 0.5) == pytest.approx((3.25 + 3.25 + 3.0) / 5)


def test_contrastive_loss_equals_hand_computation():
    # batch-hard, margin 2.5: d_ap^2 / 2 + max(0, 2.5 - d_an)^2 / 2 per anchor, with
    # (d_ap, d_an) = (10, 3), (9, 2), (1, 2), (1, 3), (10, 6)
    per_anchor = [100 / 2 + 0, 81 / 2 + 0.25 / 2, 1 / 2 + 0.25 / 2, 1 / 2 + 0, 100 / 2 + 0]
    assert _loss("contrastive", "batch_hard", 2.5) == pytest.approx(np.mean(per_anchor))


def test_loss_gradient_is_finite_with_coinciding_embeddings():
    same = np.zeros((4, 2), np.float32)  # every distance 0: a plain sqrt has no gradient there
    grad = jax.jit(jax.grad(lambda e: mining.batch_loss(e, np.array([0, 0, 1, 1]), loss="triplet",
                                                        mining="batch_hard", margin=0.2)))(same)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_recall_at_k_on_a_hand_made_set():
    # Nearest others: 0 -> 1 (hit), 1 -> 2 (miss), 2 -> 1 (miss), 3 -> 2 (hit); second
    # nearest rescues 1 (0 is at 1.0) but not 2 (0 at 1.4 beats 3 at 3.6).
    emb = _batch(np.array([0.0, 1.0, 1.4, 5.0]))
    recalls = retrieval_metrics.recall_at(emb, np.array([0, 0, 1, 1]), ks=(1, 2, 3))
    assert recalls == {1: 0.5, 2: 0.75, 3: 1.0}


def test_episodes_are_seeded_and_well_formed():
    labels = np.repeat(np.arange(8), 6)
    draw = lambda seed: list(retrieval_metrics.episodes(labels, ways=5, shots=2, queries=3,
                                                        count=20, seed=seed))
    first, again, other = draw(0), draw(0), draw(1)
    assert all(np.array_equal(a, b) for e, f in zip(first, again) for a, b in zip(e, f))
    assert any(not np.array_equal(e[0], f[0]) for e, f in zip(first, other))
    for support, query, classes in first:
        assert support.shape == (5, 2) and query.shape == (5, 3)
        assert len(set(classes)) == 5
        assert np.all(labels[support] == classes[:, None])
        assert np.all(labels[query] == classes[:, None])
        assert not set(support.ravel()) & set(query.ravel())


def test_few_shot_accuracy():
    labels = np.repeat(np.arange(6), 4)
    separated = np.eye(6)[labels] + 0.01 * np.random.default_rng(0).normal(size=(24, 6))
    acc, _ = retrieval_metrics.few_shot_accuracy(separated, labels, ways=5, shots=1, queries=3,
                                                 count=50, seed=0)
    assert acc == 1.0
    # One embedding for everything: the nearest prototype is always the first class drawn.
    acc, _ = retrieval_metrics.few_shot_accuracy(np.ones((24, 3)), labels, ways=5, shots=1,
                                                 queries=3, count=50, seed=0)
    assert acc == pytest.approx(1 / 5)
    # Too few classes with more than `shots` examples: no episode, no number.
    acc, _ = retrieval_metrics.few_shot_accuracy(separated, labels, ways=5, shots=4, queries=1,
                                                 count=5, seed=0)
    assert np.isnan(acc)


def test_pk_batches_are_balanced_and_resume():
    labels = np.repeat(np.arange(6), [3, 5, 7, 9, 11, 13])
    records = pipeline.grain.MapDataset.source([{"label": np.int32(k), "i": np.int32(i)}
                                               for i, k in enumerate(labels)])
    ds = balanced_batches.pk_dataset(records, labels, classes_per_batch=4, per_class=4, seed=3)
    stream = lambda: iter(pipeline.train_dataset(ds, batch_size=16, seed=3, shuffle=False))
    it = stream()
    batches = [next(it) for _ in range(6)]
    for batch in batches:
        classes, counts = np.unique(batch["label"], return_counts=True)
        assert len(classes) == 4 and np.all(counts == 4)
        assert np.all(labels[batch["i"]] == batch["label"])
    assert len({tuple(b["i"]) for b in batches}) == 6  # each batch drawn anew
    resumed = stream()
    resumed.set_state(_state_after(stream(), 3))
    assert np.array_equal(next(resumed)["i"], batches[3]["i"])
    # Two processes' shares: two classes each, together the one-process batch.
    shares = [balanced_batches.batch_indices(balanced_batches.class_members(labels), 5,
                                             classes_per_batch=4, per_class=4, seed=3,
                                             share=(r, 2)) for r in range(2)]
    whole = balanced_batches.batch_indices(balanced_batches.class_members(labels), 5,
                                           classes_per_batch=4, per_class=4, seed=3)
    assert sorted(np.concatenate(shares)) == sorted(whole)
    assert all(len(np.unique(labels[s])) == 2 for s in shares)


def _state_after(it, n):
    for _ in range(n):
        next(it)
    return it.get_state()


def test_pk_batches_need_enough_classes():
    with pytest.raises(UserError, match="classes_per_batch"):
        balanced_batches.pk_dataset([], np.array([0, 1, 1]), classes_per_batch=3, per_class=2,
                                    seed=0)


def test_class_split_keeps_the_chosen_classes():
    source = [{"label": k % 4} for k in range(12)]
    subset = class_split.restrict(source, (1, 3), field="eval_classes", num_classes=4)
    assert [subset[i]["label"] for i in range(len(subset))] == [1, 3] * 3
    assert class_split.restrict(source, (), field="eval_classes", num_classes=4) is source
    with pytest.raises(UserError, match="data.train_classes names class 7"):
        class_split.restrict(source, (7,), field="train_classes", num_classes=4)
    with pytest.raises(UserError, match="leaves no records"):
        class_split.restrict(source[:1], (2,), field="train_classes", num_classes=4)


# --- embed and retrieve over real (tiny) runs --------------------------------------------------

def _short(c):
    c.train.steps = c.train.log_every_steps = c.eval.every_steps = c.checkpoint.every_steps = 2
    c.schedule.warmup_steps = 0
    c.eval.batch_size = 64
    c.data.device_augment = ""  # the outputs' form is under test, not their quality
    return c


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 2-step embedding run (digits 0-4 in P x K batches, evaluated on 5-9) and a 2-step
    LeNet-5 classifier, with an index folder of digit images."""
    if not os.environ.get("CONVJAX_HEAVY"):
        pytest.skip("trains an embedding run and a classifier (.ci/run's heavy stage runs it)")
    from experiments import lenet5_digits, siamese_digits
    from training import loop

    root = tmp_path_factory.mktemp("embed")
    c = _short(siamese_digits.get_config())
    c.train.batch_size, c.data.classes_per_batch = 40, 5  # 8 test devices: K = 8
    c.data.eval_split, c.task.episodes = "test", 20
    summary = loop.train(c, root / "siamese", show_progress=False)
    lenet = _short(lenet5_digits.get_config())
    lenet.data.eval_split = "test[:64]"
    loop.train(lenet, root / "lenet", show_progress=False)
    index = siamese_digits.export_digits(str(root / "digits"), classes=(5, 6), split="test")
    return {"siamese": root / "siamese", "lenet": root / "lenet", "index": index,
            "summary": summary}


def test_embedding_run_reports_whole_set_metrics(runs):
    metrics = runs["summary"]["final_metrics"]
    for name in ("test/recall@1", "test/recall@5", "test/way5_shot1", "test/way5_shot5"):
        assert 0.0 <= metrics[name] <= 1.0
    assert metrics["test/recall@1"] <= metrics["test/recall@5"]
    assert (runs["siamese"] / "samples.png").is_file()


@pytest.mark.parametrize("run, dim", [("siamese", 64), ("lenet", 84)])
def test_embed_writes_unit_embeddings_and_files(runs, run, dim, tmp_path):
    out = tmp_path / "emb.npz"
    assert launch.main(["embed", "--workdir", str(runs[run]), "--input", str(runs["index"]),
                        "--out", str(out)]) == 0
    saved = np.load(out)
    files = sorted(str(p) for p in runs["index"].rglob("*.png"))
    assert list(saved["files"]) == files
    assert saved["embeddings"].shape == (len(files), dim)
    assert np.allclose(np.linalg.norm(saved["embeddings"], axis=1), 1.0, atol=1e-5)


def test_predict_writes_the_embeddings_embed_does(runs, tmp_path):
    folder = runs["index"] / "6"
    assert launch.main(["predict", "--workdir", str(runs["siamese"]), "--input", str(folder),
                        "--out", str(tmp_path / "pred")]) == 0
    assert launch.main(["embed", "--workdir", str(runs["siamese"]), "--input", str(folder),
                        "--out", str(tmp_path / "e.npz")]) == 0
    predicted, embedded = np.load(tmp_path / "pred" / "embeddings.npz"), np.load(tmp_path / "e.npz")
    assert list(predicted["files"]) == list(embedded["files"])
    np.testing.assert_allclose(predicted["embeddings"], embedded["embeddings"], atol=1e-6)


def test_retrieve_draws_the_nearest_images(runs, tmp_path, capsys):
    query = runs["index"] / "5" / "0000.png"
    out = tmp_path / "nearest.png"
    assert launch.main(["retrieve", "--workdir", str(runs["siamese"]), "--index",
                        str(runs["index"]), "--query", str(query), "--k", "3",
                        "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    others = len(list(runs["index"].rglob("*.png"))) - 1  # the query is not its own neighbour
    assert capsys.readouterr().out.startswith(f"0000.png: 3 nearest of {others} in")


@pytest.mark.parametrize("args, message", [
    (["--out", "x.txt"], "give a .npz file"),
    (["--input", "/no/such/dir"], "does not exist"),
])
def test_embed_refuses_in_one_line(runs, tmp_path, capsys, args, message):
    argv = {"--workdir": str(runs["siamese"]), "--input": str(runs["index"]),
            "--out": str(tmp_path / "e.npz")}
    argv.update(dict(zip(args[::2], args[1::2])))
    assert launch.main(["embed", *[x for kv in argv.items() for x in kv]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "e.npz").exists()


def test_embed_refuses_a_classifier_without_features(runs, tmp_path, monkeypatch, capsys):
    from models import lenet

    monkeypatch.delattr(lenet.LeNet5, "features")
    assert launch.main(["embed", "--workdir", str(runs["lenet"]), "--input", str(runs["index"]),
                        "--out", str(tmp_path / "e.npz")]) == 2
    assert "has no features(x)" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    ({"--k": "100"}, "fewer than --k 100"),
    ({"--k": "0"}, "at least 1"),
    ({"--out": "nearest.jpg"}, "give a .png"),
    ({"--query": "/no/such.png"}, "is not a file"),
])
def test_retrieve_refuses_in_one_line(runs, tmp_path, capsys, change, message):
    argv = {"--workdir": str(runs["siamese"]), "--index": str(runs["index"]),
            "--query": str(runs["index"] / "6" / "0001.png"), "--k": "5",
            "--out": str(tmp_path / "nearest.png"), **change}
    assert launch.main(["retrieve", *[x for kv in argv.items() for x in kv]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())
