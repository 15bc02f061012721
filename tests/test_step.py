"""The train step, optimizers and schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import models
from training import config as config_lib, mesh as mesh_lib, optim, state as state_lib
from training import step as step_lib


def test_lenet5_has_the_papers_parameter_count_and_output_shape():
    model = models.create("lenet5")
    _, params, _, _ = state_lib.split_model(model)
    assert state_lib.count_params(params) == 61706
    model.eval()
    assert model(jnp.zeros((3, 32, 32, 1))).shape == (3, 10)


def _fixed_batch(n=32):
    rng = np.random.default_rng(0)
    return {"image": rng.random((n, 32, 32, 1), np.float32), "label": rng.integers(0, 10, n)}


def test_loss_falls_on_a_fixed_batch():
    tx = optax.adam(1e-3)
    defs, state = state_lib.create(models.create("lenet5"), tx, seed=0)
    mesh = mesh_lib.make_mesh()
    step = mesh_lib.compile_train_step(step_lib.make_train_step(defs, tx, num_classes=10), mesh)
    state = mesh_lib.put_state(state, mesh)
    batch = mesh_lib.global_batch(_fixed_batch(), mesh)
    losses = []
    for _ in range(30):
        state, sums = step(state, batch)
        losses.append(float(sums["loss"] / sums["count"]))
    assert losses[-1] < 0.5 * losses[0]
    assert int(state.step) == 30


def test_step_is_sharded_over_the_eight_devices():
    assert len(jax.devices()) == 8
    batch = mesh_lib.global_batch(_fixed_batch(16), mesh_lib.make_mesh())
    assert len(batch["image"].sharding.device_set) == 8
    assert batch["image"].addressable_shards[0].data.shape == (2, 32, 32, 1)


def _config(**fields):
    c = config_lib.base_config()
    c.train.steps = 100
    for dotted, value in fields.items():
        group, name = dotted.split("__")
        c[group][name] = value
    return c


def test_warmup_then_cosine():
    sched = optim.make_schedule(_config(optimizer__lr=0.1, schedule__warmup_steps=10))
    assert float(sched(0)) == 0.0
    assert float(sched(5)) == pytest.approx(0.05)
    assert float(sched(10)) == pytest.approx(0.1)
    assert float(sched(100)) == pytest.approx(0.0, abs=1e-7)


def test_step_schedule_multiplies_at_boundaries():
    sched = optim.make_schedule(_config(optimizer__lr=1.0, schedule__name="step",
                                        schedule__boundaries=(30, 60), schedule__factor=0.1))
    assert [float(sched(s)) for s in (0, 29, 30, 59, 60, 99)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01, 0.01])


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_every_optimizer_builds_and_updates(name):
    tx = optim.make_optimizer(_config(optimizer__name=name, optimizer__weight_decay=1e-4,
                                      optimizer__grad_clip_norm=1.0))
    params = {"kernel": jnp.ones((3, 3)), "bias": jnp.ones(3)}
    updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
    assert all(bool(jnp.all(u != 0)) for u in jax.tree.leaves(updates))


def test_weight_decay_skips_biases():
    tx = optim.make_optimizer(_config(optimizer__name="sgd", optimizer__lr=1.0,
                                      optimizer__momentum=0.0, optimizer__weight_decay=0.5,
                                      schedule__name="constant"))
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    np.testing.assert_allclose(updates["kernel"], -0.5)
    np.testing.assert_allclose(updates["bias"], 0.0)


def test_gradient_clipping_bounds_the_update():
    tx = optim.make_optimizer(_config(optimizer__name="sgd", optimizer__lr=1.0,
                                      optimizer__momentum=0.0, optimizer__grad_clip_norm=1.0,
                                      schedule__name="constant"))
    params = {"kernel": jnp.ones((2, 2))}
    updates, _ = tx.update({"kernel": jnp.full((2, 2), 10.0)}, tx.init(params), params)
    assert float(optax.tree.norm(updates)) == pytest.approx(1.0)


class _SowsAux(nnx.Module):
    """Main logits plus one sown auxiliary head, as GoogLeNet does in train mode."""

    def __init__(self, rngs):
        self.dense = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
        logits = self.dense(x.reshape(x.shape[0], -1)[:, :4])
        self.sow(nnx.Intermediate, "aux_logits", 2.0 * logits)
        return logits


def test_auxiliary_heads_add_their_weighted_loss_to_the_gradient():
    tx = optax.sgd(1.0)
    defs, state = state_lib.create(_SowsAux(nnx.Rngs(0)), tx, seed=0)
    images = jnp.asarray(np.random.default_rng(1).random((6, 2, 2, 1), np.float32))
    labels = jnp.array([0, 1, 2, 0, 1, 2])
    step = jax.jit(step_lib.make_train_step(defs, tx, num_classes=3, aux_loss_weight=0.3))
    new_state, _ = step(state, {"image": images, "label": labels})

    def reference(params):
        logits = images.reshape(6, -1)[:, :4] @ params["dense"]["kernel"] + params["dense"]["bias"]
        ce = lambda z: optax.softmax_cross_entropy_with_integer_labels(z, labels).mean()
        return ce(logits) + 0.3 * ce(2.0 * logits)

    plain = nnx.to_pure_dict(state.params)
    expected = jax.grad(reference)(plain)
    got = nnx.to_pure_dict(new_state.params)
    for name in ("kernel", "bias"):
        np.testing.assert_allclose(plain["dense"][name] - got["dense"][name],
                                   expected["dense"][name], rtol=1e-5, atol=1e-6)


class _Dropped(nnx.Module):
    def __init__(self, rngs):
        self.dense = nnx.Linear(4, 2, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.dense(self.drop(x.reshape(x.shape[0], -1)[:, :4]))


def test_dropout_masks_follow_the_step_key_and_eval_is_deterministic():
    tx = optax.sgd(0.0)  # no update: differences come from the dropout masks alone
    defs, state = state_lib.create(_Dropped(nnx.Rngs(0)), tx, seed=0)
    batch = {"image": jnp.ones((8, 2, 2, 1)), "label": jnp.zeros(8, jnp.int32)}
    step = jax.jit(step_lib.make_train_step(defs, tx, num_classes=2))
    s1, first = step(state, batch)
    s2, second = step(s1, batch)
    _, again = step(state, batch)
    assert float(first["loss"]) != float(second["loss"]), "a new mask each step"
    assert float(first["loss"]) == float(again["loss"]), "the same step, the same mask"
    evaluate = jax.jit(step_lib.make_eval_step(defs, num_classes=2))
    eval_batch = {**batch, "mask": jnp.ones(8, jnp.int32)}
    assert float(evaluate(s1, eval_batch)["loss"]) == float(evaluate(s2, eval_batch)["loss"])
