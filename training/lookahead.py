"""Lookahead weights (Zhang et al. 2019) as an Optax wrapper around any optimizer, with the
ramped step size of the airbench94 CIFAR speed run (Jordan 2024).

The inner optimizer moves the "fast" weights (the train state's params) every step. Every
`every` steps the "slow" weights, kept in this wrapper's state, move a fraction alpha(t) of the
way to the fast ones, and the fast ones are reset to them:

    slow <- slow + alpha(t) (fast - slow);   fast <- slow.

With `total_steps`, the last step also sets the params to the slow weights (after that step's
sync, if it is one), so the model a run evaluates and saves at its end is the slow one, as in
airbench94; the fast steps taken since the last sync are dropped. Between syncs the updates
are the inner optimizer's, unchanged. A run that stops before `total_steps` (early stopping)
keeps its last step's weights. Evaluations on a multiple of `every` see the slow weights.

Why not `optax.lookahead`: it expects the params to be an `optax.LookaheadParams(fast, slow)`
pair, and the trainer's state (training/state.py) holds the model's params, which the step
merges into the model as they are; its slow step size is also a constant. Here the slow copy
lives in the optimizer state (saved, restored and sharded with it: its paths end in the
params' own), and on a sync step the emitted update is `slow - params`, which moves the params
onto the slow weights (to float rounding: `p + (s - p)` is not always exactly `s`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


class LookaheadState(NamedTuple):
    inner: Any        # the wrapped optimizer's state
    slow: Any         # the slow weights, shaped as the params
    count: jax.Array  # updates taken so far


def ramped_alpha(alpha: float, power: float, total_steps: int) -> Callable[[jax.Array], jax.Array]:
    """alpha(t) = 1 - (1 - alpha) (t / total_steps) ** power: from 1 at step 0 (the slow weights
    follow the fast ones) to `alpha` at the last step; power 0 keeps `alpha` throughout.
    airbench94 keeps 0.95**5 (t/T)**3 of the slow weights at each sync: alpha = 1 - 0.95**5,
    power 3."""
    def schedule(t):
        if power == 0:
            return jnp.asarray(alpha, jnp.float32)
        return 1.0 - (1.0 - alpha) * (t.astype(jnp.float32) / total_steps) ** power
    return schedule


def lookahead(inner: optax.GradientTransformation, every: int,
              alpha: float | Callable[[jax.Array], jax.Array], *,
              total_steps: int | None = None) -> optax.GradientTransformationExtraArgs:
    """`inner` with lookahead weights synced every `every` updates; `alpha` is a constant or a
    function of the update number (1, 2, ...); the update number `total_steps` ends on the slow
    weights. Extra arguments (the plateau's `value=`) pass through to `inner`."""
    if every < 1 or (total_steps is not None and every > total_steps):
        # every > total_steps would never sync, and the last step would undo all training
        raise ValueError(f"lookahead every must be in [1, total_steps], got {every}")
    inner = optax.with_extra_args_support(inner)
    alpha_at = alpha if callable(alpha) else (lambda t: jnp.asarray(alpha, jnp.float32))

    def init(params):
        # A copy, not the params' own buffers: the step donates the state, and one buffer may
        # not be donated twice.
        return LookaheadState(inner.init(params), jax.tree.map(jnp.array, params),
                              jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError("lookahead needs the params in update(); pass them")
        inner_updates, inner_state = inner.update(updates, state.inner, params, **extra_args)
        # The slow weights start from the params of the first update, not of init: weights
        # loaded after the optimizer state was made (model.init_from) are then the start.
        first = state.count == 0
        slow = jax.tree.map(lambda s, p: jnp.where(first, p, s), state.slow, params)
        count = state.count + 1
        sync = count % every == 0
        a = alpha_at(count)
        fast = optax.apply_updates(params, inner_updates)
        # fast + (1 - a)(slow - fast): alpha = 1 gives the fast weights exactly.
        slow = jax.tree.map(lambda s, f: jnp.where(sync, f + (1 - a).astype(f.dtype) * (s - f), s),
                            slow, fast)
        to_slow = sync if total_steps is None else sync | (count == total_steps)
        out = jax.tree.map(lambda u, s, p: jnp.where(to_slow, (s - p).astype(u.dtype), u),
                           inner_updates, slow, params)
        return out, LookaheadState(inner_state, slow, count)

    return optax.GradientTransformationExtraArgs(init, update)


def from_config(c, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """`tx` wrapped as `optimizer.lookahead_*` asks, ending on the slow weights at
    `train.steps`; `tx` itself when `optimizer.lookahead_every` is 0."""
    o = c.optimizer
    every = o.get("lookahead_every", 0)  # a config saved before the field existed
    if every == 0:
        return tx
    alpha = ramped_alpha(o.lookahead_alpha, o.lookahead_ramp, c.train.steps)
    return lookahead(tx, every, alpha, total_steps=c.train.steps)
