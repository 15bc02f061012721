"""The train-step benchmark (benchmarks/train_step.py): its PyTorch twins have exactly the
parameter counts of convjax's networks, and the harness runs end to end and writes the JSON
it documents. No timing is asserted: speed claims live in benchmarks/, as ratios."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flax import nnx

import models
from benchmarks import train_step
from errors import UserError
from training import state as state_lib


def _convjax_params(name: str) -> int:
    model = nnx.eval_shape(lambda: models.create(name))
    return state_lib.count_params(nnx.state(model, nnx.Param))


@pytest.mark.parametrize("name", [
    "lenet5", "resnet20_cifar", "resnet18", "resnet50", "airbench94"])
def test_torch_twin_has_the_same_parameter_count(name):
    pytest.importorskip("torch")
    from benchmarks import torch_twins

    spec = models.spec(name)
    twin = torch_twins.build(name, num_classes=spec.num_classes,
                             in_channels=spec.input_shape[2])
    assert torch_twins.count_params(twin) == _convjax_params(name)


def test_flops_per_step_count_the_network_whatever_the_lowering():
    """LeNet-5's C1 and C3 run as banded matmuls on CPU, which multiply zeros too; the FLOP
    rate the harness reports divides the network's own arithmetic (the issue's "fraction of
    peak"), the same whichever lowering runs."""
    case = train_step.Case("lenet5", 8, (32, 32, 1), "float32", 10)
    counts = {low: train_step.convjax_runner(case, low).extra["flops_per_step"]
              for low in ("auto", "xla")}
    assert counts["auto"] == counts["xla"] > 0


def test_torch_twin_trains_one_step():
    torch = pytest.importorskip("torch")
    from benchmarks import torch_twins

    twin = torch_twins.build("resnet20_cifar", num_classes=10, in_channels=3)
    logits = twin(torch.zeros(2, 3, 32, 32))
    assert tuple(logits.shape) == (2, 10)


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="the whole harness with its PyTorch twin (.ci/run runs it)")
def test_harness_runs_lenet5_end_to_end_and_writes_its_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--models", "lenet5", "--batch", "8", "--steps", "2", "--rounds", "1",
            "--warmup", "1", "--peer", "none", "--lowerings", "xla,auto", "--json", str(out)]
    assert train_step.main(argv) == 0
    result = json.loads(out.read_text())
    for key in ("backend", "device", "host_cpu", "dtype", "rounds", "steps_per_round",
                "peak_flops_per_s", "torch", "peer_note", "models"):
        assert key in result, key
    assert result["host_cpu"]  # ratios compare only on one CPU: the JSON names it
    (entry,) = result["models"]
    assert (entry["model"], entry["batch"], entry["input"]) == ("lenet5", 8, "32x32x1")
    assert entry["params"] == 61_706 and entry["flops_per_step"] > 0
    assert entry["best_peer"] is None and entry["ratio"] == {}
    assert set(entry["runs"]) == {"convjax[xla]", "convjax[auto]"}
    for run in entry["runs"].values():
        for key in ("compile_s", "step_ms", "step_ms_p25", "step_ms_p75", "step_ms_min",
                    "step_ms_max", "round_ms", "examples_per_s", "flops_per_s",
                    "fraction_of_peak", "peak_memory_bytes"):
            assert key in run, key
        assert run["step_ms_min"] <= run["step_ms"] <= run["step_ms_max"]
        assert len(run["round_ms"]) == 1
    assert "convjax[auto]" in capsys.readouterr().out
    assert (tmp_path / "bench.png").stat().st_size > 0  # the table as a picture


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="a PyTorch peer process (.ci/run runs it)")
def test_on_a_cpu_the_peer_runs_its_rounds_in_its_own_process(tmp_path):
    """The parent never loads PyTorch (whose OpenMP team would share libgomp with convjax's
    oneDNN convolutions); the child's rounds still come back, one per round, as the peer's."""
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    argv = ["--models", "lenet5", "--batch", "8", "--steps", "2", "--rounds", "2",
            "--warmup", "1", "--peer-variants", "eager", "--torch-threads", "1",
            "--json", str(out)]
    code = ("import sys; from benchmarks import train_step; "
            f"assert train_step.main({argv!r}) == 0; "
            "assert 'torch' not in sys.modules, 'the parent process loaded torch'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600,
                   cwd=Path(__file__).resolve().parents[1])
    result = json.loads(out.read_text())
    assert result["peer_process"] == "separate" and result["torch"]
    (entry,) = result["models"]
    assert entry["best_peer"] == "torch[eager,t1]" and entry["peer_params"] == 61_706
    assert len(entry["runs"]["torch[eager,t1]"]["round_ms"]) == 2
    assert set(entry["ratio"]) == {"convjax[auto]"}


@pytest.mark.parametrize("argv", [["--models", "no_such_net"], ["--input", "32x32"],
                                  ["--lowerings", "fast"], ["--steps", "0"],
                                  ["--models", "lenet5", "--remat"], ["--devices", "0"],
                                  ["--devices", "1,two"]])
def test_a_bad_argument_is_a_user_error(argv):
    with pytest.raises(UserError):
        train_step.main(argv + ["--peer", "none"])


def test_the_step_on_two_devices_is_the_one_device_step_split():
    """`--devices 2`: the same step data parallel on a mesh of two devices, the batch split
    (the tests' eight CPU devices stand for a CPU made into two); one step from the same
    state gives the same weights as on one device."""
    import jax
    import numpy as np

    case = train_step.Case("lenet5", 8, (32, 32, 1), "float32", 10)
    one, two = (train_step.convjax_runner(case, "auto", devices=n) for n in (1, 2))
    assert (one.name, two.name) == ("convjax[auto]", "convjax[auto,2 devices]")
    one.step()
    two.step()
    kernel = two.state().params["c1"]["kernel"][...]
    assert len(kernel.sharding.device_set) == 2
    for a, b in zip(jax.tree.leaves(one.state().params), jax.tree.leaves(two.state().params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def environment_runners():
    """A peer whose one runner reports its process's malloc variables (for the test below)."""
    seen = {k: os.environ.get(k) for k in ("LD_PRELOAD", "GLIBC_TUNABLES", "OTHER")}
    return [train_step.Runner("env", lambda: None, 0.0, seen)], {}


@pytest.mark.parametrize("malloc, expected", [
    ("same", {"LD_PRELOAD": "/nowhere/libx.so", "GLIBC_TUNABLES": "a=1", "OTHER": "kept"}),
    ("system", {"LD_PRELOAD": None, "GLIBC_TUNABLES": None, "OTHER": "kept"})])
def test_the_peers_process_gets_this_ones_malloc_or_the_systems(monkeypatch, malloc, expected):
    from benchmarks import peer_process

    for key, value in (("LD_PRELOAD", "/nowhere/libx.so"), ("GLIBC_TUNABLES", "a=1"),
                       ("OTHER", "kept")):
        monkeypatch.setenv(key, value)
    with peer_process.PeerProcess(sys.modules[__name__].environment_runners,
                                  malloc=malloc) as peer:
        (runner,) = peer.runners()
    assert runner.extra == expected
    assert os.environ["LD_PRELOAD"] == "/nowhere/libx.so"  # this process's, as it was
