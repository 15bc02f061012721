"""Building blocks shared by the model families: activations, pooling and norms chosen by name.

Blocks take these as arguments so an ablation swaps one by config (`model.act=elu`) instead of
forking the block.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx


def lecun_tanh(x: jax.Array) -> jax.Array:
    """LeCun et al. 1998 (appendix A): f(a) = 1.7159 tanh(2a/3), so f(±1) = ±1."""
    return 1.7159 * jnp.tanh(2.0 * x / 3.0)


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nnx.relu,
    "tanh": jnp.tanh,
    "lecun_tanh": lecun_tanh,
    "sigmoid": nnx.sigmoid,
    "elu": nnx.elu,
    "selu": nnx.selu,
    "softplus": nnx.softplus,
    "gelu": nnx.gelu,
    "leaky_relu": nnx.leaky_relu,
    "identity": lambda x: x,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class Pool(nnx.Module):
    """Max or average pooling over NHWC. A module (not a bare function) so that the
    architecture sheet sees it as a layer, with its window and stride."""

    def __init__(self, kind: str, window: int, stride: int | None = None,
                 padding: str | tuple = "VALID"):
        if kind not in ("max", "avg"):
            raise ValueError(f"unknown pooling {kind!r}; choose 'max' or 'avg'")
        self.kind, self.window = kind, window
        self.stride = window if stride is None else stride
        self.padding = padding

    def __call__(self, x: jax.Array) -> jax.Array:
        pool = nnx.max_pool if self.kind == "max" else nnx.avg_pool
        return pool(x, (self.window, self.window), (self.stride, self.stride), self.padding)
