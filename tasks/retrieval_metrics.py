"""Whole-set metrics of an embedding, on the host: recall@k by nearest neighbour and N-way
K-shot accuracy over seeded episodes.

Both need every eval embedding at once (a query's neighbours are anywhere in the set), so they
run in the task's `finalize` on the gathered embeddings, not in the per-batch sums. Distances
are Euclidean; on L2-normalised embeddings they rank as cosine similarity does.

- recall@k (as in Song et al. 2016, and the retrieval literature since): the fraction of
  examples whose k nearest other examples include one of their own class.
- N-way K-shot (the Siamese one-shot test of Koch et al. 2015, with prototypes as Snell et al.
  2017 for K > 1): an episode draws N classes, K support and `queries` query examples of each;
  a query is assigned the class whose mean support embedding is nearest (for K = 1, its nearest
  support example). Accuracy is the mean over episodes; episodes come from one seed, so every
  evaluation (and every checkpoint) is scored on the same episodes.
"""

from __future__ import annotations

import numpy as np


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared Euclidean distances, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)


def nearest(index: np.ndarray, queries: np.ndarray, k: int, *, exclude_self: bool = False):
    """(len(queries), k) indices into `index` of each query's k nearest, nearest first (ties by
    index); with `exclude_self` the queries are the index itself and each skips its own row."""
    d = squared_distances(queries, index)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def recall_at(embeddings: np.ndarray, labels: np.ndarray, ks=(1, 5)) -> dict[int, float]:
    """{k: recall@k} over the set, each example a query against all the others."""
    labels = np.asarray(labels)
    neighbours = nearest(embeddings, embeddings, max(ks), exclude_self=True)
    hits = labels[neighbours] == labels[:, None]
    return {k: float(np.mean(np.any(hits[:, :k], axis=1))) for k in ks}


def episodes(labels: np.ndarray, *, ways: int, shots: int, queries: int, count: int, seed: int):
    """`count` episodes, each (support indices (ways, shots), query indices (ways, q), classes),
    drawn from classes with more than `shots` examples; q is `queries`, or fewer where the
    smallest chosen class has fewer left. The same seed gives the same episodes."""
    labels = np.asarray(labels)
    members = {k: np.flatnonzero(labels == k) for k in np.unique(labels)}
    eligible = np.array(sorted(k for k, m in members.items() if len(m) > shots))
    if len(eligible) < ways:
        return
    rng = np.random.default_rng([seed, ways, shots])
    for _ in range(count):
        classes = rng.choice(eligible, ways, replace=False)
        q = min(queries, min(len(members[k]) for k in classes) - shots)
        drawn = [rng.permutation(members[k])[:shots + q] for k in classes]
        yield (np.stack([d[:shots] for d in drawn]), np.stack([d[shots:] for d in drawn]),
               classes)


def few_shot_accuracy(embeddings: np.ndarray, labels: np.ndarray, *, ways: int, shots: int,
                      queries: int, count: int, seed: int) -> tuple[float, float]:
    """(mean accuracy over the episodes, half-width of its 95% confidence interval); NaN when
    fewer than `ways` classes have more than `shots` examples."""
    embeddings = np.asarray(embeddings, np.float64)
    accuracies = []
    for support, query, _ in episodes(labels, ways=ways, shots=shots, queries=queries,
                                      count=count, seed=seed):
        prototypes = embeddings[support].mean(axis=1)                  # (ways, D)
        d = squared_distances(embeddings[query.reshape(-1)], prototypes)
        truth = np.repeat(np.arange(ways), query.shape[1])
        accuracies.append(np.mean(np.argmin(d, axis=1) == truth))
    if not accuracies:
        return float("nan"), float("nan")
    acc = np.asarray(accuracies)
    half_width = 1.96 * acc.std(ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else 0.0
    return float(acc.mean()), float(half_width)
