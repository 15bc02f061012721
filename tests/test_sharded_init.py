"""The train state is created already sharded (training/sharded_init.py): every leaf comes out
of the jitted initialisation where the sharding rules put it, with the values of the eager
construction, the graph definitions unchanged and each device computing only its own shards; a
GAN's two players too; and a checkpoint saved from a state created on one mesh restores into a
state created on another.

Each compiled initialisation costs seconds of XLA time on CPU, so the meshes' creations are made
once (module fixtures) and every test reads them."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import tasks
from experiments.dcgan_digits import get_config as gan_config
from training import checkpoint, config as config_lib, loop, mesh as mesh_lib, optim
from training import sharded_init, sharding

MESHES = {"2 data x 4 fsdp": {"data": 2, "fsdp": 4}, "4 data x 2 model": {"data": 4, "model": 2}}
TX = optax.adam(1e-3)


class DenseHeavy(nnx.Module):
    """A conv, then fc6 > fc7 > head (AlexNet's names, so the tensor-parallel rule applies):
    as in AlexNet and VGG, the dense layers hold nearly all of the state (98% here)."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(3, 16, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(16, rngs=rngs)
        self.fc6 = nnx.Linear(16 * 4 * 4, 512, rngs=rngs)
        self.fc7 = nnx.Linear(512, 256, rngs=rngs)
        self.head = nnx.Linear(256, 10, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.bn(self.conv(x))).reshape(x.shape[0], -1)
        return self.head(nnx.relu(self.fc7(nnx.relu(self.fc6(x)))))


def _task(c, in_channels=3):
    return tasks.create(c, tasks.DataInfo(name="digits", num_classes=10,
                                          in_channels=in_channels))


def _float16_classification():
    c = config_lib.base_config()
    c.train.dtype = "float16"  # so the state carries the loss scale initial_state adds
    return _task(c)


CLASSIFY = _float16_classification()


def _build():
    """The eager construction: what training made, and placed afterwards, before."""
    return loop.initial_state(CLASSIFY, DenseHeavy(nnx.Rngs(0)), TX, seed=0)


def _arrays(state):
    """Host copies of every leaf (a PRNG key as its raw data)."""
    raw = lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key) else x
    return [np.asarray(raw(x)) for x in jax.tree.leaves(jax.device_get(state))]


def _assert_placed_by_the_rules(state, mesh):
    wanted = sharding.state_shardings(state, mesh)
    for (path, leaf), want in zip(jax.tree_util.tree_flatten_with_path(state)[0],
                                  jax.tree.leaves(wanted)):
        assert leaf.sharding == want, f"{jax.tree_util.keystr(path)}: {leaf.sharding}, not {want}"


def _assert_values_equal(created, eager):
    """The eager construction's values. Not always to the bit: in one compiled program XLA
    folds an initialiser's constant factors (normal's sqrt(2), then the scale) into one, which
    moves a value by one unit in its last place (1.2e-7 relative at most); hence 1e-6 relative,
    and no absolute slack."""
    assert jax.tree.structure(created) == jax.tree.structure(eager)
    for a, b in zip(_arrays(created), _arrays(eager)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)


@pytest.fixture(scope="module")
def eager():
    return _build()


@pytest.fixture(scope="module")
def created():
    """{mesh name: (mesh, defs, jitted init, its state)}."""
    out = {}
    for name, sizes in MESHES.items():
        mesh = mesh_lib.make_mesh(sizes)
        defs, init = sharded_init.init_fn(_build, mesh)
        out[name] = mesh, defs, init, init()
    return out


@pytest.mark.parametrize("name", list(MESHES))
def test_the_state_is_created_where_the_rules_put_it(name, created, eager):
    mesh, defs, _, state = created[name]
    eager_defs, eager_state = eager
    _assert_placed_by_the_rules(state, mesh)
    assert (defs.train, defs.eval) == (eager_defs.train, eager_defs.eval)
    assert state.loss_scale is not None  # float16's dynamic loss scale is part of the state
    _assert_values_equal(state, eager_state)
    for a, b in zip(_arrays(state), _arrays(created["2 data x 4 fsdp"][3])):
        np.testing.assert_array_equal(a, b)  # and the mesh changes no bit

    kernel = state.params["fc6"]["kernel"][...]
    rows, cols = kernel.shape
    if "fsdp" in name:
        assert kernel.addressable_shards[0].data.shape == (rows // 4, cols)
    else:
        assert kernel.addressable_shards[0].data.shape == (rows, cols // 2)
        moment = state.opt_state[0].mu["fc6"]["kernel"][...]  # Adam's moment follows its param
        assert moment.sharding == kernel.sharding


@pytest.mark.parametrize("name", list(MESHES))
def test_each_device_computes_only_its_shards(name, created):
    """The compiled initialisation's output per device is the sharded state's bytes, a
    fraction of the whole: nothing is built whole and then split."""
    _, _, init, state = created[name]
    memory = init.lower().compile().memory_analysis()
    if memory is None:
        pytest.skip("this backend reports no memory analysis")
    whole = sum(x.nbytes for x in jax.tree.leaves(state))
    held = max(sharding.bytes_per_device(state).values())
    # XLA pads each small output (the step, Adam's count, the loss scale) to its alignment.
    assert abs(memory.output_size_in_bytes - held) < 1024
    # fsdp=4 splits every large leaf four ways; model=2 halves fc6 and fc7 (98% of the state).
    assert held < whole * (0.3 if "fsdp" in name else 0.55)


def test_a_gans_two_players_are_created_sharded(monkeypatch):
    """A task's own state (tasks/gan.py create_state), through the training loop's creation."""
    monkeypatch.setattr(sharding, "FSDP_MIN_SIZE", 64)  # the tiny players' kernels are split
    c = gan_config()
    c.model.width, c.data.image_size = 4, 8
    task, tx = _task(c, in_channels=1), optim.make_optimizer(c)
    mesh = mesh_lib.make_mesh(MESHES["2 data x 4 fsdp"])
    defs, state = loop.create_state(c, task, SimpleNamespace(train_source=None), tx, mesh)
    eager_defs, eager_state = loop.initial_state(task, loop.build_model(c, task), tx, c.seed)

    _assert_placed_by_the_rules(state, mesh)
    assert (defs.train, defs.eval) == (eager_defs.train, eager_defs.eval)
    _assert_values_equal(state, eager_state)
    for player in ("generator", "discriminator"):
        specs = [x.sharding.spec for x in jax.tree.leaves(state.params[player])]
        assert any("fsdp" in spec for spec in specs), f"no {player} leaf is split"
    assert set(state.opt_state) == {"generator", "discriminator"}


def test_a_checkpoint_restores_into_a_state_created_on_another_mesh(created, tmp_path):
    fsdp, model = (created[name] for name in MESHES)
    saved = fsdp[3]
    # Other weights than the target's own (created from the same seed), so the restore must
    # overwrite every one of them.
    saved = saved.replace(params=jax.jit(lambda p: jax.tree.map(jnp.negative, p))(saved.params))
    mngr = checkpoint.manager(tmp_path, keep=1, best_metric="loss", best_mode="min")
    checkpoint.save(mngr, 1, saved, {}, {}, {"loss": 1.0})
    mngr.wait_until_finished()
    restored, _, _ = checkpoint.restore_latest(mngr, model[3])
    mngr.close()

    _assert_placed_by_the_rules(restored, model[0])
    for a, b in zip(_arrays(restored), _arrays(saved)):
        np.testing.assert_array_equal(a, b)
