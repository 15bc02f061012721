"""Test-time augmentation for classifiers: logits averaged over flipped and shifted views.

`eval.tta`: "none"; "flip" (the image and its mirror, equal weights); "flip_translate" (airbench's
multi-crop evaluation as its paper describes it: half the weight on the image and its mirror,
a quarter each on the pair shifted one pixel up-left and the pair shifted one pixel
down-right, edges filled by reflection). Runs inside the compiled eval step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MODES = ("none", "flip", "flip_translate")
SHIFT = 1  # pixels


def _flip_pair(forward, x: jax.Array) -> jax.Array:
    return 0.5 * (forward(x) + forward(jnp.flip(x, axis=2)))


def _shift(x: jax.Array, dy: int, dx: int) -> jax.Array:
    """`x` (B, H, W, C) moved by (dy, dx) pixels, the uncovered edge reflected."""
    h, w = x.shape[1:3]
    p = SHIFT
    padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
    return padded[:, p - dy:p - dy + h, p - dx:p - dx + w]


def logits(forward, images: jax.Array, mode: str) -> jax.Array:
    """`forward(images)` averaged over the views of `mode`, in float32."""
    if mode == "none":
        return forward(images)
    f = lambda x: forward(x).astype(jnp.float32)
    if mode == "flip":
        return _flip_pair(f, images)
    if mode == "flip_translate":
        up_left = _flip_pair(f, _shift(images, -SHIFT, -SHIFT))
        down_right = _flip_pair(f, _shift(images, SHIFT, SHIFT))
        return 0.5 * _flip_pair(f, images) + 0.25 * (up_left + down_right)
    raise ValueError(f"unknown eval.tta {mode!r}; choose one of {', '.join(MODES)}")
