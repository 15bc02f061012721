"""Optimizer and learning-rate schedule from the config, composed from Optax parts.

OPTIMIZERS and SCHEDULES are the registries: one table each, which both `make_optimizer` and
the config's validation read.
"""

from __future__ import annotations

import jax
import optax

from training import callbacks, lookahead, transfer


def _step_schedule(lr, decay_steps, s):
    return optax.piecewise_constant_schedule(
        lr, {b - s.warmup_steps: s.factor for b in s.boundaries})


# name -> (lr, steps after warm-up, schedule config) -> optax schedule
SCHEDULES = {
    "constant": lambda lr, n, s: optax.constant_schedule(lr),
    "step": _step_schedule,
    "cosine": lambda lr, n, s: optax.cosine_decay_schedule(lr, n, alpha=s.final_lr_fraction),
    "warmup_cosine": lambda lr, n, s: optax.cosine_decay_schedule(lr, n, alpha=s.final_lr_fraction),
    "linear": lambda lr, n, s: optax.linear_schedule(lr, lr * s.final_lr_fraction, n),
}


def _kernels_only(params):
    """Weight decay applies to kernels, not to biases or norm scales (Goyal et al. 2017)."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


# name -> (schedule, optimizer config) -> optax transformation. Coupled L2 weight decay for all
# but adamw is added in front by make_optimizer.
OPTIMIZERS = {
    "sgd": lambda lr, o: optax.sgd(lr, momentum=o.momentum or None, nesterov=o.nesterov),
    "adam": lambda lr, o: optax.adam(lr, b1=o.b1, b2=o.b2),
    "adamw": lambda lr, o: optax.adamw(lr, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay,
                                       mask=_kernels_only),
    "rmsprop": lambda lr, o: optax.rmsprop(lr, momentum=o.momentum),
    "adagrad": lambda lr, o: optax.adagrad(lr),
}


def make_schedule(c) -> optax.Schedule:
    lr, s = c.optimizer.lr, c.schedule
    main = SCHEDULES[s.name](lr, c.train.steps - s.warmup_steps, s)
    if s.warmup_steps == 0:
        return main
    warmup = optax.linear_schedule(0.0, lr, s.warmup_steps)
    return optax.join_schedules([warmup, main], [s.warmup_steps])


def make_optimizer(c) -> optax.GradientTransformation:
    o = c.optimizer
    parts = []
    if o.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(o.grad_clip_norm))
    if o.weight_decay > 0 and o.name != "adamw":
        parts.append(optax.add_decayed_weights(o.weight_decay, mask=_kernels_only))
    parts.append(OPTIMIZERS[o.name](make_schedule(c), o))
    tx = transfer.partition(c, optax.chain(*parts))  # train.trainable, backbone lr multiplier
    tx = optax.chain(tx, *callbacks.plateau(c))  # the plateau scales scheduled updates
    return lookahead.from_config(c, tx)  # outermost: its sync jumps are never rescaled
