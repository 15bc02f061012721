"""Random draws behind one interface, so each op's parameter draw is written once for both twins.

An op's `draw(s, shape, **args)` asks a sampler for uniforms, integers, coins and normals and
combines them with `s.xp` (NumPy on the host, jax.numpy on device). The host sampler wraps the
Grain worker's per-example `np.random.Generator`; the device sampler wraps one JAX key. Both
return float32, so host and device draw from the same distributions in the same precision.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


class HostSampler:
    """Draws from a NumPy Generator (the per-example stream a Grain `random_map` hands over)."""

    xp = np

    def __init__(self, rng: np.random.Generator):
        self._rng = rng

    def uniform(self, lo=0.0, hi=1.0, shape=()):
        u = self._rng.random(shape, dtype=np.float32)
        return np.float32(lo) + u * (np.float32(hi) - np.float32(lo))

    def normal(self, shape):
        return self._rng.standard_normal(shape, dtype=np.float32)

    def integer(self, lo, hi):
        """One integer in [lo, hi] (both ends included)."""
        return np.int32(self._rng.integers(lo, hi, endpoint=True))

    def coin(self, p):
        return np.bool_(self._rng.random() < p)


class DeviceSampler:
    """Draws from one JAX key (one example, one op).

    Small draws are served from a pool of uniforms made by a single RNG call: every separate
    call compiles into its own threefry hash, and those dominated compile time (about a second
    each on CPU under vmap) when each scalar had its own. Large draws (noise fields) get their
    own key. Nothing here outlives the traced call (design decision 3).
    """

    xp = jnp
    POOL = 32

    def __init__(self, key: jax.Array):
        self._key, self._calls = key, 0
        self._pool, self._used = None, 0

    def _next_key(self) -> jax.Array:
        self._calls += 1
        return self._key if self._calls == 1 else jax.random.fold_in(self._key, self._calls)

    def _uniforms(self, n: int) -> jax.Array:
        if n > self.POOL:
            return jax.random.uniform(self._next_key(), (n,), jnp.float32)
        if self._pool is None or self._used + n > self.POOL:
            self._pool, self._used = jax.random.uniform(self._next_key(), (self.POOL,)), 0
        self._used += n
        return self._pool[self._used - n:self._used]

    def uniform(self, lo=0.0, hi=1.0, shape=()):
        u = self._uniforms(math.prod(shape)).reshape(shape)
        return jnp.float32(lo) + u * (jnp.float32(hi) - jnp.float32(lo))

    def normal(self, shape):
        return jax.random.normal(self._next_key(), shape, jnp.float32)

    def integer(self, lo, hi):
        """One integer in [lo, hi] (both ends included); the bounds may be traced."""
        lo, hi = jnp.asarray(lo, jnp.int32), jnp.asarray(hi, jnp.int32)
        pick = jnp.floor(self._uniforms(1)[0] * (hi - lo + 1).astype(jnp.float32))
        return jnp.minimum(lo + pick.astype(jnp.int32), hi)

    def coin(self, p):
        return self._uniforms(1)[0] < p
