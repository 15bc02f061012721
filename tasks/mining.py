"""Metric-learning losses and the mining that picks what they are computed on.

Every loss here is computed on mined triplets (anchor a, positive p of a's class, negative n of
another class), held as a weight tensor W of shape (B, B, B) with W[a, p, n] = 1 for a mined
triplet; the tests read W to check what was picked. Mining (`MINING`):

- `batch_hard` (Hermans, Beyer and Leibe 2017): per anchor, its farthest positive and its
  closest negative, one triplet per anchor.
- `semi_hard` (Schroff, Kalenichenko and Philbin 2015, FaceNet): every positive pair (a, p),
  with the closest negative farther from a than p; where none is farther, the farthest
  negative (the rule of TensorFlow Addons' `triplet_semihard_loss`).
- `all`: every valid triplet.

Losses (`LOSSES`), on Euclidean distances between (L2-normalised) embeddings:

- `triplet` (Schroff et al. 2015): max(0, d(a, p) - d(a, n) + margin).
- `contrastive` (Hadsell, Chopra and LeCun 2006): 1/2 d(a, p)^2 + 1/2 max(0, margin - d(a, n))^2,
  the similar pair (a, p) and the dissimilar pair (a, n) of each mined triplet, so the loss sees
  the two kinds of pair in equal number.

The loss of an anchor is the mean over its mined triplets; the batch's loss is the mean over
anchors that have any (an anchor with no positive or no negative in the batch has none). Padded
examples (`valid` 0) are neither anchors nor candidates. Optax has no metric-learning losses,
hence these by hand.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MINING = ("batch_hard", "semi_hard", "all")
LOSSES = ("triplet", "contrastive")


def pairwise_distances(embeddings: jax.Array) -> jax.Array:
    """(B, B) Euclidean distances; exactly 0 (with a zero gradient) where two rows coincide,
    where the gradient of a plain sqrt would be infinite."""
    sq = jnp.sum(embeddings * embeddings, axis=-1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * embeddings @ embeddings.T
    positive = d2 > 1e-12
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, d2, 1.0)), 0.0)


def pair_masks(labels: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(positive, negative) boolean (B, B): same class (not itself) and other class, both valid."""
    valid = valid.astype(bool)
    both = valid[:, None] & valid[None, :]
    same = labels[:, None] == labels[None, :]
    eye = jnp.eye(labels.shape[0], dtype=bool)
    return same & ~eye & both, ~same & both


def mine(distances: jax.Array, labels: jax.Array, valid: jax.Array, kind: str) -> jax.Array:
    """W (B, B, B) float32: 1 where (a, p, n) is a triplet the mining `kind` picks."""
    positive, negative = pair_masks(labels, valid)
    d = jax.lax.stop_gradient(distances)  # what is picked is not differentiated
    has_negative = jnp.any(negative, axis=1)
    b = labels.shape[0]
    if kind == "all":
        w = positive[:, :, None] & negative[:, None, :]
    elif kind == "batch_hard":
        hardest_p = jnp.argmax(jnp.where(positive, d, -jnp.inf), axis=1)
        hardest_n = jnp.argmin(jnp.where(negative, d, jnp.inf), axis=1)
        has = jnp.any(positive, axis=1) & has_negative
        w = (jax.nn.one_hot(hardest_p, b, dtype=bool)[:, :, None]
             & jax.nn.one_hot(hardest_n, b, dtype=bool)[:, None, :] & has[:, None, None])
    elif kind == "semi_hard":
        d_an = jnp.broadcast_to(d[:, None, :], (b, b, b))   # [a, p, n] -> d(a, n)
        farther = negative[:, None, :] & (d_an > d[:, :, None])
        closest_farther = jnp.argmin(jnp.where(farther, d_an, jnp.inf), axis=2)
        farthest = jnp.argmax(jnp.where(negative, d, -jnp.inf), axis=1)
        chosen = jnp.where(jnp.any(farther, axis=2), closest_farther, farthest[:, None])
        w = (jax.nn.one_hot(chosen, b, dtype=bool) & positive[:, :, None]
             & has_negative[:, None, None])
    else:
        raise ValueError(f"unknown mining {kind!r}; choose one of {', '.join(MINING)}")
    return w.astype(jnp.float32)


def triplet_losses(distances: jax.Array, loss: str, margin: float) -> jax.Array:
    """(B, B, B) loss of every triplet [a, p, n] from the (B, B) distances."""
    d_ap, d_an = distances[:, :, None], distances[:, None, :]
    if loss == "triplet":
        return jax.nn.relu(d_ap - d_an + margin)
    if loss == "contrastive":
        return 0.5 * d_ap ** 2 + 0.5 * jax.nn.relu(margin - d_an) ** 2
    raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")


def per_anchor_loss(embeddings: jax.Array, labels: jax.Array, valid: jax.Array, *, loss: str,
                    mining: str, margin: float) -> tuple[jax.Array, jax.Array]:
    """(loss of each anchor over its mined triplets (B,), whether it has any (B,) bool)."""
    distances = pairwise_distances(embeddings)
    w = mine(distances, labels, valid, mining)
    count = jnp.sum(w, axis=(1, 2))
    total = jnp.sum(w * triplet_losses(distances, loss, margin), axis=(1, 2))
    return total / jnp.maximum(count, 1.0), count > 0


def batch_loss(embeddings: jax.Array, labels: jax.Array, *, loss: str, mining: str,
               margin: float) -> jax.Array:
    """The mean over anchors with mined triplets (every example of a train batch is valid)."""
    per_anchor, has = per_anchor_loss(embeddings, labels, jnp.ones_like(labels, bool), loss=loss,
                                      mining=mining, margin=margin)
    return jnp.sum(per_anchor * has) / jnp.maximum(jnp.sum(has), 1)
