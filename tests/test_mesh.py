"""Meshes and sharding rules: the maths of a BatchNorm residual net does not depend on the mesh
(1 device, 8 data, 2 data x 4 fsdp, 4 data x 2 model), FSDP splits the state, the tensor-parallel
rule splits fc6/fc7, and a checkpoint saved on one mesh restores on another."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from errors import UserError
from training import checkpoint, mesh as mesh_lib, sharding, state as state_lib
from training import step as step_lib


class TinyResidualBN(nnx.Module):
    """conv-BN-relu, a residual conv-BN block, pool, then fc6 > fc7 > head (AlexNet's names,
    so the tensor-parallel rule applies)."""

    def __init__(self, rngs: nnx.Rngs):
        # No conv bias before a BatchNorm: its gradient is rounding noise, which Adam amplifies.
        self.stem = nnx.Conv(1, 16, (3, 3), use_bias=False, rngs=rngs)
        self.bn1 = nnx.BatchNorm(16, rngs=rngs)
        self.conv = nnx.Conv(16, 16, (3, 3), use_bias=False, rngs=rngs)
        self.bn2 = nnx.BatchNorm(16, rngs=rngs)
        self.fc6 = nnx.Linear(16 * 4 * 4, 64, rngs=rngs)
        self.fc7 = nnx.Linear(64, 64, rngs=rngs)
        self.head = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.bn1(self.stem(x)))
        x = nnx.relu(x + self.bn2(self.conv(x)))
        x = nnx.avg_pool(x, (2, 2), (2, 2)).reshape(x.shape[0], -1)
        return self.head(nnx.relu(self.fc7(nnx.relu(self.fc6(x)))))


def _batches(n_steps=20, batch=16):
    rng = np.random.default_rng(0)
    return [{"image": rng.random((batch, 8, 8, 1), np.float32),
             "label": rng.integers(0, 10, batch)} for _ in range(n_steps)]


def _train(mesh, batches):
    # SGD, not Adam: Adam divides near-zero gradients by their own size, which turns the
    # reduction-order rounding of different meshes into full-size steps.
    tx = optax.sgd(0.05, momentum=0.9)
    defs, state = state_lib.create(TinyResidualBN(nnx.Rngs(0)), tx, seed=0)
    state = mesh_lib.put_state(state, mesh)
    step = mesh_lib.compile_train_step(step_lib.make_train_step(defs, tx, num_classes=10), mesh,
                                       state)
    losses = []
    for batch in batches:
        state, sums = step(state, mesh_lib.global_batch(batch, mesh))
        losses.append(float(sums["loss"] / sums["count"]))
    return state, losses


@pytest.fixture(scope="module")
def one_device_run():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sharding, "FSDP_MIN_SIZE", 64)
        return _train(mesh_lib.make_mesh(devices=jax.devices()[:1]), _batches())


@pytest.mark.parametrize("sizes", [{"data": 8}, {"data": 2, "fsdp": 4}, {"data": 4, "model": 2}])
def test_twenty_steps_are_the_same_on_every_mesh(one_device_run, sizes, monkeypatch):
    monkeypatch.setattr(sharding, "FSDP_MIN_SIZE", 64)  # so the tiny net's layers are split
    mesh = mesh_lib.make_mesh(sizes)
    state, losses = _train(mesh, _batches())
    reference_state, reference_losses = one_device_run
    np.testing.assert_allclose(losses, reference_losses, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(jax.device_get(state)),
                    jax.tree.leaves(jax.device_get(reference_state))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    kernel = state.params["fc6"]["kernel"].value
    if sizes.get("fsdp"):
        assert kernel.sharding.spec == P("fsdp", None)
        assert kernel.addressable_shards[0].data.shape == (64, 64)
    if sizes.get("model"):
        assert kernel.sharding.spec == P(None, "model")
        trace = state.opt_state[0].trace["fc6"]["kernel"].value  # momentum follows its param
        assert trace.sharding.spec == P(None, "model")


def test_rules_fit_each_mesh():
    mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 4})
    assert sharding.spec_for(".params['c']['kernel'].value", (3, 3, 64, 128), mesh) == \
        P(None, None, None, "fsdp")
    assert sharding.spec_for(".params['c']['bias'].value", (128,), mesh) == \
        P()                                  # small: replicated
    assert sharding.spec_for(".params['c']['kernel'].value", (3, 3, 7, 4099), mesh) == \
        P()                                  # nothing divides by 4
    model = mesh_lib.make_mesh({"data": 4, "model": 2})
    assert sharding.spec_for(".params['fc6']['kernel'].value", (9216, 4096), model) == \
        P(None, "model")


def test_fsdp_holds_an_eighth_of_the_state_per_device():
    big = {"w": jnp.ones((256, 1024)), "b": jnp.ones((1024,))}
    data = sharding.bytes_per_device(mesh_lib.put_state(big, mesh_lib.make_mesh()))
    fsdp = sharding.bytes_per_device(mesh_lib.put_state(big, mesh_lib.make_mesh({"data": 1,
                                                                                 "fsdp": 8})))
    assert max(data.values()) == 256 * 1024 * 4 + 1024 * 4
    assert max(fsdp.values()) == 256 * 1024 * 4 // 8 + 1024 * 4


def test_a_checkpoint_saved_on_one_mesh_restores_on_another(tmp_path):
    tx = optax.adam(1e-2)
    _, state = state_lib.create(TinyResidualBN(nnx.Rngs(0)), tx, seed=0)
    mesh_a = mesh_lib.make_mesh({"data": 2, "fsdp": 4})
    mesh_b = mesh_lib.make_mesh({"data": 4, "model": 2})
    mngr = checkpoint.manager(tmp_path, keep=1, best_metric="loss", best_mode="min")
    checkpoint.save(mngr, 1, mesh_lib.put_state(state, mesh_a), {}, {}, {"loss": 1.0})
    mngr.wait_until_finished()
    restored, _, _ = checkpoint.restore_latest(mngr, mesh_lib.put_state(state, mesh_b))
    kernel = restored.params["fc6"]["kernel"].value
    assert kernel.sharding.mesh.shape == mesh_b.shape
    np.testing.assert_array_equal(jax.device_get(kernel),
                                  jax.device_get(state.params["fc6"]["kernel"].value))


@pytest.mark.parametrize("sizes, message", [({"data": 3}, "does not fit"),
                                            ({"data": -1, "fsdp": -1}, "does not fit"),
                                            ({"data": 2, "fsdp": 2}, "uses 4 of the 8")])
def test_a_mesh_that_does_not_fit_is_one_line(sizes, message):
    with pytest.raises(UserError, match=message):
        mesh_lib.make_mesh(sizes)


def test_best_checkpoint_is_ranked_among_evaluated_ones(tmp_path):
    mngr = checkpoint.manager(tmp_path, keep=1, best_metric="test/accuracy", best_mode="max")
    for step, metrics in [(1, {"test/accuracy": 0.1}), (2, {"test/accuracy": 0.9}), (3, None),
                          (4, {"test/accuracy": 0.5}), (5, None)]:
        checkpoint.save(mngr, step, {"w": jnp.full(3, step)}, {}, {}, metrics)
    mngr.wait_until_finished()
    assert mngr.best_step() == 2 and mngr.all_steps() == [2, 5]
