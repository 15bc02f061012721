"""Optimizer and learning-rate schedule from the config, composed from Optax parts."""

from __future__ import annotations

import jax
import optax


def make_schedule(c) -> optax.Schedule:
    lr, steps, s = c.optimizer.lr, c.train.steps, c.schedule
    decay_steps = steps - s.warmup_steps
    if s.name == "constant":
        main = optax.constant_schedule(lr)
    elif s.name == "step":
        main = optax.piecewise_constant_schedule(
            lr, {b - s.warmup_steps: s.factor for b in s.boundaries})
    elif s.name in ("cosine", "warmup_cosine"):
        main = optax.cosine_decay_schedule(lr, decay_steps, alpha=s.final_lr_fraction)
    elif s.name == "linear":
        main = optax.linear_schedule(lr, lr * s.final_lr_fraction, decay_steps)
    else:  # validate() lists the names; this guards a new name added to one place only
        raise ValueError(f"unknown schedule {s.name!r}")
    if s.warmup_steps == 0:
        return main
    warmup = optax.linear_schedule(0.0, lr, s.warmup_steps)
    return optax.join_schedules([warmup, main], [s.warmup_steps])


def _kernels_only(params):
    """Weight decay applies to kernels, not to biases or norm scales (Goyal et al. 2017)."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(c) -> optax.GradientTransformation:
    o, schedule = c.optimizer, make_schedule(c)
    parts = []
    if o.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(o.grad_clip_norm))
    if o.weight_decay > 0 and o.name != "adamw":
        parts.append(optax.add_decayed_weights(o.weight_decay, mask=_kernels_only))
    if o.name == "sgd":
        parts.append(optax.sgd(schedule, momentum=o.momentum or None, nesterov=o.nesterov))
    elif o.name == "adam":
        parts.append(optax.adam(schedule, b1=o.b1, b2=o.b2))
    elif o.name == "adamw":
        parts.append(optax.adamw(schedule, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay,
                                 mask=_kernels_only))
    elif o.name == "rmsprop":
        parts.append(optax.rmsprop(schedule, momentum=o.momentum))
    elif o.name == "adagrad":
        parts.append(optax.adagrad(schedule))
    else:
        raise ValueError(f"unknown optimizer {o.name!r}")
    return optax.chain(*parts)
