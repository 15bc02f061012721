"""Lookahead weights (training/lookahead.py): the identity settings give the inner optimizer,
the slow and fast weights follow the rule by hand on a quadratic (the last step ending on the
slow ones), the config wires and validates it, and a run resumed mid-period from a checkpoint
gives the uninterrupted run's weights exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from errors import UserError
from training import (checkpoint, config as config_lib, lookahead, optim, state as state_lib,
                      step as step_lib)

W0 = np.array([1.0, -2.0, 3.0], np.float32)


def _descend(tx, steps):
    """The params after each of `steps` updates of `tx` on f(w) = |w|^2 / 2 (gradient w)."""
    params = {"w": jnp.asarray(W0)}
    opt_state = tx.init(params)
    trajectory = []
    for _ in range(steps):
        updates, opt_state = tx.update(params, opt_state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append(np.asarray(params["w"]))
    return np.array(trajectory), opt_state


def test_syncing_every_step_with_alpha_one_is_the_inner_optimizer():
    inner = optax.sgd(0.1, momentum=0.9, nesterov=True)
    expected, _ = _descend(inner, 8)
    synced, _ = _descend(lookahead.lookahead(inner, 1, 1.0), 8)
    np.testing.assert_allclose(synced, expected, rtol=1e-6)  # p + (s - p): float rounding
    never, _ = _descend(lookahead.lookahead(inner, 100, 0.5), 8)  # no sync within the run
    np.testing.assert_array_equal(never, expected)


def test_slow_and_fast_weights_follow_the_rule_by_hand_and_end_on_the_slow_ones():
    lr, every, total, alpha = 0.25, 3, 7, 0.5
    tx = lookahead.lookahead(optax.sgd(lr), every, lookahead.ramped_alpha(alpha, 3, total),
                             total_steps=total)
    got, state = _descend(tx, total)
    shrink = 1 - lr  # one plain SGD step on the quadratic multiplies w by this
    a = lambda t: 1 - (1 - alpha) * (t / total) ** 3
    slow1 = W0 + a(3) * (shrink ** 3 * W0 - W0)
    slow2 = slow1 + a(6) * (shrink ** 3 * slow1 - slow1)
    expected = [shrink * W0, shrink ** 2 * W0, slow1,       # a sync resets the fast weights
                shrink * slow1, shrink ** 2 * slow1, slow2,
                slow2]                                      # the last step: the slow weights
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-5)
    np.testing.assert_allclose(state.slow["w"], slow2, rtol=1e-5)
    assert int(state.count) == total


def test_the_slow_weights_start_from_the_params_of_the_first_update():
    """Weights loaded after the optimizer state was made (model.init_from) are the start."""
    tx = lookahead.lookahead(optax.sgd(0.25), 2, 0.5)
    opt_state = tx.init({"w": jnp.zeros(3)})
    params = {"w": jnp.asarray(W0)}
    for _ in range(2):
        updates, opt_state = tx.update(params, opt_state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params["w"], W0 + 0.5 * (0.75 ** 2 * W0 - W0), rtol=1e-6)


def _config(**optimizer):
    c = config_lib.base_config()
    c.train.steps = 8
    c.schedule.name = "constant"
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.5
    c.optimizer.update(optimizer)
    return c


def test_config_turns_it_on_and_rejects_a_bad_alpha():
    params = {"w": jnp.asarray(W0)}
    assert not isinstance(optim.make_optimizer(_config()).init(params),
                          lookahead.LookaheadState)
    c = _config(lookahead_every=5, lookahead_alpha=0.2)
    c.plateau.patience = 2
    opt_state = optim.make_optimizer(c).init(params)
    assert isinstance(opt_state, lookahead.LookaheadState)
    from training import callbacks
    assert callbacks.lr_scale(opt_state) == {"train/lr_scale": 1.0}  # found inside the wrapper
    for field, value in (("lookahead_alpha", 0.0), ("lookahead_alpha", 1.5),
                         ("lookahead_every", -1), ("lookahead_every", 9),  # > train.steps
                         ("lookahead_ramp", -1.0)):
        bad = _config(**{field: value})
        with pytest.raises(UserError, match=f"optimizer.{field}"):
            config_lib.validate(bad, num_devices=1)


def test_the_airbench_experiment_uses_lookahead_as_the_recipe_does():
    from experiments import airbench_cifar

    o = airbench_cifar.get_config().optimizer
    assert (o.lookahead_every, o.lookahead_ramp) == (5, 3.0)
    np.testing.assert_allclose(1 - o.lookahead_alpha, 0.95 ** 5)


def test_a_run_resumed_mid_period_from_a_checkpoint_gives_the_uninterrupted_weights(tmp_path):
    c = _config(lookahead_every=3, lookahead_alpha=0.3, lookahead_ramp=3.0, momentum=0.9)
    tx = optim.make_optimizer(c)

    def fresh(seed):
        return state_lib.create(nnx.Linear(4, 3, rngs=nnx.Rngs(seed)), tx, seed=0)

    defs, start = fresh(0)
    train_step = jax.jit(step_lib.make_train_step(defs, tx, num_classes=3))

    def batch(i):
        rng = np.random.default_rng(i)
        return {"image": jnp.asarray(rng.normal(size=(8, 4)), jnp.float32),
                "label": jnp.asarray(rng.integers(0, 3, 8))}

    def train(state, steps):
        for i in steps:
            state, _ = train_step(state, batch(i))
        return state

    straight = train(start, range(8))
    mngr = checkpoint.manager(tmp_path / "ckpt", keep=1, best_metric="m", best_mode="max")
    checkpoint.save(mngr, 4, train(start, range(4)), {}, {}, {"m": 0.0})  # 4 % 3: mid-period
    mngr.wait_until_finished()
    restored, _, _ = checkpoint.restore_latest(mngr, fresh(1)[1])  # other weights overwritten
    mngr.close()
    assert int(restored.opt_state.count) == 4
    resumed = train(restored, range(4, 8))
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the last step ends on the slow weights
    for p, s in zip(jax.tree.leaves(straight.params), jax.tree.leaves(straight.opt_state.slow)):
        np.testing.assert_allclose(np.asarray(p), np.asarray(s), rtol=1e-6, atol=1e-7)
