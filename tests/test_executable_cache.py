"""The whole compiled train step on disk (training/executable_cache.py): a second caller loads
it without tracing, anything the step depends on changes its entry, and a damaged entry is
replaced, never trusted."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from training import executable_cache


def make_step():
    """A fresh jit each time, as each launch makes its own."""
    return jax.jit(lambda state, batch: (state + batch.sum(), {"sum": batch.sum()}),
                   donate_argnums=0)


def args(n=4):
    return jnp.zeros((n,)), jnp.arange(n * 3, dtype=jnp.float32).reshape(n, 3)


class NoTrace:
    """A jitted step that fails if anyone traces or lowers it."""

    def lower(self, *_):
        raise AssertionError("traced although the executable was cached")


def test_a_second_caller_loads_the_step_without_tracing_it(tmp_path):
    first = executable_cache.CachedStep(make_step(), tmp_path, "run A")
    expected = first(*args())
    assert len(list(tmp_path.glob("*.executable"))) == 1
    second = executable_cache.CachedStep(NoTrace(), tmp_path, "run A")
    got = second(*args())
    jax.tree.map(np.testing.assert_array_equal, got, expected)
    again = second(got[0], args()[1])  # later calls go straight to the executable
    np.testing.assert_array_equal(again[0], expected[0] * 2)


@pytest.mark.parametrize("change", ["context", "shape", "dtype", "source", "host cpu"])
def test_what_the_step_depends_on_names_another_entry(tmp_path, monkeypatch, change):
    executable_cache.CachedStep(make_step(), tmp_path, "run A")(*args())
    context, call = "run A", args()
    if change == "context":  # the config or the dataset
        context = "run B"
    elif change == "shape":
        call = args(8)
    elif change == "dtype":
        call = (call[0], call[1].astype(jnp.bfloat16))
    elif change == "source":
        monkeypatch.setattr(executable_cache, "source_digest", lambda: "edited")
    else:  # XLA's CPU code is for the host's instruction sets: a shared cache must not pass it on
        monkeypatch.setattr(executable_cache, "_cpu_features", lambda: "flags : sse2 avx2")
    executable_cache.CachedStep(make_step(), tmp_path, context)(*call)
    assert len(list(tmp_path.glob("*.executable"))) == 2


def test_the_source_digest_covers_the_packages_a_step_imports():
    names = {str(p.relative_to(executable_cache.PROJECT_ROOT))
             for p in executable_cache.project_sources()}
    assert {"launch.py", "training/loop.py", "models/conv_lowering.py", "tasks/base.py",
            "data/augment/geometric.py"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/", ".venv/")) for n in names)


def test_a_damaged_entry_is_reported_recompiled_and_replaced(tmp_path, capsys):
    expected = executable_cache.CachedStep(make_step(), tmp_path, "run A")(*args())
    (entry,) = tmp_path.glob("*.executable")
    entry.write_bytes(entry.read_bytes()[:1000])  # truncated, as by a full disk
    got = executable_cache.CachedStep(make_step(), tmp_path, "run A")(*args())
    jax.tree.map(np.testing.assert_array_equal, got, expected)
    assert "unreadable" in capsys.readouterr().err
    assert executable_cache.load(entry) is not None  # whole again


def test_a_step_loaded_from_jaxs_cache_is_not_saved(tmp_path):
    """Re-serialized, such an executable lacks its kernels: only fresh compilations are kept."""
    jitted = make_step()

    class FromJaxCache:
        def lower(self, *a):
            executable_cache._count_jax_cache_hits("/jax/compilation_cache/cache_hits")
            return jitted.lower(*a)

    got = executable_cache.CachedStep(FromJaxCache(), tmp_path, "run A")(*args())
    assert float(got[1]["sum"]) == 66.0
    assert not list(tmp_path.glob("*.executable"))


def test_off_or_across_processes_it_is_the_jitted_step_itself(tmp_path, monkeypatch):
    step = make_step()
    assert executable_cache.cached(step, None, "run A") is step
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    assert executable_cache.cached(step, tmp_path, "run A") is step


def test_a_step_sharded_over_some_devices_loads_onto_the_same_devices(tmp_path):
    mesh = jax.make_mesh((4,), ("data",), devices=jax.devices()[4:])
    batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    state = jax.device_put(jnp.zeros((4,)), batch_sharding)
    batch = jax.device_put(args(4)[1], batch_sharding)
    expected = executable_cache.CachedStep(make_step(), tmp_path, "run A")(state, batch)
    state = jax.device_put(jnp.zeros((4,)), batch_sharding)
    got = executable_cache.CachedStep(NoTrace(), tmp_path, "run A")(state, batch)
    jax.tree.map(np.testing.assert_array_equal, got, expected)
    assert got[0].sharding.device_set == set(jax.devices()[4:])


def test_a_call_of_other_shapes_runs_as_jit_would(tmp_path):
    step = executable_cache.CachedStep(make_step(), tmp_path, "run A")
    step(*args(4))
    state, sums = step(*args(8))  # as a final smaller batch would
    assert state.shape == (8,) and float(sums["sum"]) == float(args(8)[1].sum())

