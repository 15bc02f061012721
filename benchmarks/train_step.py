"""Train-step benchmark: convjax's compiled SGD-momentum step against a PyTorch twin, measured
in the same run, interleaved.

    uv run python -m benchmarks.train_step [--models lenet5,resnet18] [--batch N]
        [--input HxWxC] [--dtype float32|bfloat16] [--peer torch|none] [--steps N]
        [--rounds R] [--lowerings auto|xla|patches[,...]] [--devices 1[,2,...]]
        [--peer-process auto|separate|same] [--peer-malloc same|system] [--json OUT]

Per model (defaults on CPU: lenet5 b128 32x32x1, resnet20_cifar b128 32x32x3, resnet18 b32
64x64x3, resnet50 b16 224x224x3; airbench94, the CIFAR speed run's net, also has a twin: b32
32x32x3 unless `--batch`) it builds convjax's step as the trainer does (base config,
SGD momentum 0.9, `training.state.create`, `training.optim.make_optimizer`, jit with the state
donated) and, with `--peer torch`, the twin of benchmarks/torch_twins.py (equal parameter
count) with `torch.optim.SGD(momentum=0.9)`, eager and `torch.compile`d, NCHW and
channels-last. After a warm-up, `--rounds` rounds each run every variant for `--steps` steps
in turn (so machine noise hits all of them alike), timing each step. On a CPU the twin runs
in a process of its own, driven round by round (benchmarks/peer_process.py says why: the two
libraries' OpenMP teams slowed PyTorch's steps 15-35% in one process); `--peer-process same`
runs it in convjax's. Both run on the malloc of the launch (training/malloc.py: mimalloc
through launch.py), recorded in the JSON; `--peer-malloc system` gives the peer glibc's.

Reported per variant: compile seconds (convjax: lower + compile; torch.compile: the first
steps' time above a steady one), the train-step time in ms (median of the round medians, and
p25/p75/min/max over all steps), examples/s, FLOPs per step (XLA's cost analysis of
convjax's step traced with XLA's convolutions, before optimization: the network's own
arithmetic, whatever the lowering adds; the same count is used for the peer, which does the
same network's work), that FLOP rate as a fraction of the peak of a 2048^3 matmul in the
same dtype timed in this run, and peak device memory where the platform reports one
(`memory_stats()`; n/a on CPU) beside XLA's static memory analysis of the step. `ratio` =
convjax ms / best PyTorch ms. `--lowerings xla,auto` times convjax with XLA's convolution
everywhere ("before") and with the shape-aware lowering of models/conv_lowering.py ("after")
side by side. `--devices 1,2` times convjax's step on one device and data parallel on a
mesh of two (on a CPU: the cores made into two XLA CPU devices, each running its half of the
batch on its own instead of every operation sharing both cores).

JSON (`--json`): {"backend", "device", "host_cpu", "dtype", "rounds", "steps_per_round",
"peak_flops_per_s", "torch": version or null, "peer_note", "peer_process", "malloc",
"peer_malloc", "models":
[{"model", "batch", "input", "params", "peer_params", "flops_per_step", "runs": {variant:
{"compile_s", "step_ms", "step_ms_p25", "step_ms_p75", "step_ms_min", "step_ms_max",
"round_ms", "examples_per_s", "flops_per_s", "fraction_of_peak", "peak_memory_bytes", ...}},
"best_peer", "ratio": {convjax variant: ratio}}]}.
Speed claims live here as ratios against the peer measured in the same run, never in tests.

The table of record, on a quiet machine (nothing else running; PyTorch slows far more than
JAX when the cores are shared, which flatters the ratio):

    uv run launch.py bench --models lenet5,resnet20_cifar,resnet18 --torch-threads 1,2 \
        --steps 10 --rounds 5 --json benchmarks/results/train_step_cpu_2core.json

(through launch.py, hence on mimalloc, PyTorch's process too: training/malloc.py; the latest
runs, `--steps 10 --rounds 5` with PyTorch's 2 threads only, on an AMD EPYC host,
train_step_cpu_2core_amd_epyc_run{1..4}.json (python -m benchmarks.bench_runs draws them side
by side): lenet5 0.76 / 0.73 / 0.65 / 0.75, resnet20_cifar 1.07 / 0.94 / 1.26 / 1.07 (its
round ratios 0.82-1.52 with the host's load; in a quiet run of it alone, 116.7 ms against
122.7 for torch.compile, 0.95, ..._amd_epyc_resnet20_alone.json), resnet18 0.84 / 0.94 /
0.91 / 0.99; before them, on an Intel Xeon host, `--steps 10 --rounds 5` with PyTorch's 2
threads only, after LeNet-5 took XLA's own reductions (models/lenet.py),
train_step_cpu_2core_lenet_xla_reductions.json: lenet5 0.96 (6.50 ms against 6.74 for
PyTorch eager channels-last), resnet20_cifar 1.01 (157.6 against 155.7 for torch.compile
channels-last), resnet18 0.84; before it,
train_step_cpu_2core_mimalloc.json:
lenet5 1.24 (convjax's rounds 12.6, 8.0, 11.0, 6.5, 6.3 ms against PyTorch eager
channels-last's 6.2-6.6: LeNet-5's step is at the machine's noise), resnet20_cifar 1.01 (155.8
ms against 154.0 for torch.compile), resnet18 0.86; again half an hour later
(..._mimalloc_second.json) 1.05 (rounds 9.1, 6.9, 7.1, 9.2, 7.1 against 6.6-7.0) / 1.00
(157.8 against 157.2) / 0.85; with `--peer-malloc system`,
train_step_cpu_2core_mimalloc_peer_system.json, 1.16 / 0.98 / 0.79; before mimalloc, with 2 MiB
pages, train_step_cpu_2core_peer_process.json:
oneDNN's convolutions, PyTorch in its own process, lenet5 0.88, resnet20_cifar 1.12 (182 ms
against 163 for torch.compile channels-last), resnet18 0.84; again minutes later
(..._peer_process_second.json) 0.94 / 1.17 / 0.87; before oneDNN,
train_step_cpu_2core_quiet_rerun.json: lenet5 0.94,
resnet20_cifar 2.63, resnet18 1.03 (convjax 184 ms against 178 for PyTorch eager, 2 threads);
before it, with `--devices 1,2`: benchmarks/results/train_step_cpu_2core_pools_c5.json, ratios
lenet5 0.95, resnet20_cifar 2.51, resnet18 1.23 on one device, 1.17 / 2.41 / 1.60 data
parallel over the cores made two devices, after C5's one-patch reshape; that morning before it,
train_step_cpu_2core_devices.json, 1.14 / 2.61 / 1.09 and 1.24 / 2.42 / 1.76; before those,
train_step_cpu_2core_band_blocks_2d.json, ratios lenet5 1.10,
resnet20_cifar 2.51, resnet18 1.21, with the band in blocks and the lowerings' products 2-D,
against train_step_cpu_2core_before_band_blocks.json that morning on the same host, 1.39 /
2.45 / 1.09 (its ResNets' times moved 20-25% between the two runs, PyTorch's as much);
before that, train_step_cpu_2core_banded_maxpool.json, ratios lenet5 1.29,
resnet20_cifar 2.67, resnet18 1.16, on another host whose PyTorch ran ResNet-20 1.6x faster
than the last one's (that morning, before the banded lowering and max_pool.py: 1.58 / 2.29 /
1.43); the one before, train_step_cpu_2core_huge_pages.json, 1.21 / 1.92 / 1.31; against
1.57 / 2.72 / 1.34 before huge pages), and `--dtype bfloat16` for the
mixed-precision policy (training/precision.py; the PyTorch twin
under torch.autocast). On a GPU: benchmarks/gpu_run.sh.

Measured (benchmarks/results/train_step_cpu_2core.json: two runs of `--models
lenet5,resnet20_cifar,resnet18 --lowerings xla,auto --torch-threads 1,2 --steps 5 --rounds 5`
on the shared 2-core CPU, load average 3-9 from other users; torch 2.13 CPU), convjax ms with
XLA's conv / with the shape-aware lowering / best PyTorch ms (ratio after):
lenet5 b128 86/69/51 and 51/44/23 (1.4-1.9x); resnet20_cifar b128 1107/1162/361 and
1074/1144/398 (2.9-3.2x; both convjax programs are identical here, so their 5-7% gap is the
noise); resnet18 b32 64x64 4294/619/435 and 4540/557/422 (9.9-10.8x before, 1.3-1.4x after).
PyTorch's best was always single-threaded: with 2 intra-op threads on the loaded 2 cores its
steps were 5-15x slower (OpenMP barriers wait for a preempted thread), so `--torch-threads 1,2`
is the fair setting here. torch.compile worked (inductor, C++), its compile seconds shrink
when inductor's on-disk cache is warm.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import models
from benchmarks import peer_process
from errors import UserError, exit_with
from models import conv_lowering, remat
from training import malloc

# name -> (batch, (H, W, C)) of the CPU benchmark
DEFAULTS = {"lenet5": (128, (32, 32, 1)), "resnet20_cifar": (128, (32, 32, 3)),
            "resnet18": (32, (64, 64, 3)), "resnet50": (16, (224, 224, 3))}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
PEAK_N = {"cpu": 2048}  # matmul side per backend; an accelerator needs a larger one to saturate
PEAK_N_ACCELERATOR = 8192


@dataclasses.dataclass
class Case:
    model: str
    batch: int
    input_shape: tuple[int, int, int]
    dtype: str
    num_classes: int


@dataclasses.dataclass
class Runner:
    """One variant: `step()` runs one train step to completion; `setup()` (if any) runs
    before each of its rounds (PyTorch's thread count is process-wide); `timed_round(steps)`,
    where set, runs and times a round elsewhere (the peer's own process) instead."""
    name: str
    step: Callable[[], None] | None
    compile_s: float
    extra: dict = dataclasses.field(default_factory=dict)
    setup: Callable[[], None] | None = None
    state: Callable[[], object] | None = None  # convjax's train state now (for tests)
    timed_round: Callable[[int], list[float]] | None = None
    times: list = dataclasses.field(default_factory=list)
    rounds: list = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# convjax


def trainer_config(case: Case):
    """The trainer's base config, with the benchmark's model, batch and optimizer."""
    from training import config as config_lib

    c = config_lib.base_config()
    c.model.name = case.model
    c.train.batch_size = case.batch
    c.optimizer.name, c.optimizer.lr, c.optimizer.momentum = "sgd", 0.01, 0.9
    c.schedule.name = "constant"
    return c


def make_convjax_step(defs, tx, *, num_classes: int, dtype: str = "float32", mesh=None,
                      options: dict | None = None):
    """convjax's jitted train step, `step(state, batch) -> (state, metric sums)`, state donated
    as training/mesh.py compiles it (one device: no shardings needed; on `mesh`, compiled by
    training/mesh.py itself), computing in `dtype` as `train.dtype` does
    (training/precision.py: float32 parameters, optimizer state and BatchNorm statistics),
    compiled with XLA `options` (default: `conv_lowering.compiler_options()`; the trainer's
    are the network's, `compiler_options_for`).
    The ONE place to follow a change of `training.step.make_train_step`'s signature."""
    from training import mesh as mesh_lib, step as step_lib

    options = conv_lowering.compiler_options() if options is None else options
    step = step_lib.make_train_step(defs, tx, num_classes=num_classes, dtype=dtype)
    if mesh is not None:
        return mesh_lib.compile_train_step(step, mesh, options=options)
    return jax.jit(step, donate_argnums=0, compiler_options=options)


def _cost(compiled) -> dict:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
        cost = cost[0] if cost else {}
    return cost or {}


def _xla_memory(compiled) -> dict:
    try:
        m = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        return {}
    keys = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes")
    return {k: int(getattr(m, k)) for k in keys if m is not None and hasattr(m, k)}


def convjax_runner(case: Case, lowering: str, rematerialise: bool = False,
                   devices: int = 1) -> Runner:
    """The trainer's step for `case`, compiled with the convolutions lowered by `lowering`,
    each block rematerialised with `rematerialise` (`train.remat`, models/remat.py), on the
    first `devices` devices (more than one: data parallel on a mesh, as the trainer runs)."""
    from training import mesh as mesh_lib, optim, precision, state as state_lib

    c = trainer_config(case)
    model = models.create(case.model, num_classes=case.num_classes,
                          in_channels=case.input_shape[2], seed=c.seed)
    if rematerialise and not remat.enable(model):
        raise UserError(f"--remat: {case.model} has no rematerialisable block")
    tx = optim.make_optimizer(c)
    defs, state = state_lib.create(model, tx, c.seed)
    state = state.replace(loss_scale=precision.initial_loss_scale(case.dtype))
    mesh = mesh_lib.make_mesh(devices=jax.devices()[:devices]) if devices > 1 else None
    step = make_convjax_step(defs, tx, num_classes=case.num_classes, dtype=case.dtype,
                             mesh=mesh, options=conv_lowering.compiler_options_for(case.model))
    kx, ky = jax.random.split(jax.random.key(1))
    # float32 images, as the trainer's batches are: the precision policy casts them
    batch = {"image": jax.random.normal(kx, (case.batch, *case.input_shape), jnp.float32),
             "label": jax.random.randint(ky, (case.batch,), 0, case.num_classes)}
    if mesh is not None:
        state = mesh_lib.put_state(state, mesh)
        batch = jax.device_put(batch, mesh_lib.batch_sharded(mesh))
    start = time.perf_counter()
    with conv_lowering.forced(lowering):  # read while tracing
        compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    holder = {"state": state}

    def run() -> None:
        holder["state"], sums = compiled(holder["state"], batch)
        jax.block_until_ready((holder["state"], sums))

    # The network's arithmetic, not the lowering's: traced with XLA's convolutions, unoptimized
    # (the banded lowering multiplies its band's zeros too; fusion recomputes cheap work). A
    # jit of its own: `step` would reuse its trace, made with `lowering`.
    with conv_lowering.forced("xla"):
        network = make_convjax_step(defs, tx, num_classes=case.num_classes, dtype=case.dtype)
        cost = _cost(network.lower(state, batch))
    extra = {"flops_per_step": float(cost.get("flops", 0.0)) or None,
             "xla_memory": _xla_memory(compiled),
             "params": state_lib.count_params(state.params), "lowering": lowering}
    tags = [lowering] + (["remat"] if rematerialise else []) + (
        [f"{devices} devices"] if devices > 1 else [])
    return Runner(f"convjax[{','.join(tags)}]", run, compile_s, extra,
                  state=lambda: holder["state"])


# ---------------------------------------------------------------------------------------------
# PyTorch


def torch_version_or_reason() -> tuple[str | None, str | None]:
    """(PyTorch's version, None) or (None, why the peer is skipped). Not imported here: in
    its own process (benchmarks/peer_process.py) the peer is the only one to load it."""
    missing = ("PyTorch is not installed: the peer is skipped (`uv sync --group bench` "
               "installs it; PyPI's Linux wheel is a CUDA build of several GB)")
    if importlib.util.find_spec("torch") is None:
        return None, missing
    try:
        return importlib.metadata.version("torch"), None
    except importlib.metadata.PackageNotFoundError:  # importable, but not installed as a package
        return None, missing


def torch_runners(case: Case, warmup: int, variants: list[str],
                  threads: list[int]) -> tuple[list[Runner], dict]:
    """The twin's SGD-momentum step in each of `variants` (eager, eager_cl, compile,
    compile_cl; _cl: channels-last) x intra-op `threads`, and notes on any that failed to
    build. Each is a fresh twin (same seed), so each torch.compile compiles for its own
    thread count. In bfloat16 the twin is PyTorch's own mixed precision, as convjax's policy:
    float32 parameters and optimizer, the forward under `torch.autocast`. On the GPU when
    PyTorch sees one (each step then ends with a synchronize)."""
    import torch
    from torch.nn import functional as F

    from benchmarks import torch_twins

    device = "cuda" if torch.cuda.is_available() else "cpu"
    h, w, ch = case.input_shape
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(case.batch, ch, h, w, generator=gen).to(device)
    y = torch.randint(0, case.num_classes, (case.batch,), generator=gen).to(device)
    autocast = lambda: torch.autocast(device, dtype=torch.bfloat16,
                                      enabled=case.dtype == "bfloat16")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    runners, notes = [], {}
    for variant, n_threads in ((v, t) for t in threads for v in variants):
        name = f"torch[{variant},t{n_threads}]"
        setup = lambda n=n_threads: torch.set_num_threads(n)
        setup()
        torch.manual_seed(0)
        model = torch_twins.build(case.model, num_classes=case.num_classes,
                                  in_channels=ch).to(device).train()
        xv = x
        if variant.endswith("_cl"):
            model = model.to(memory_format=torch.channels_last)
            xv = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        forward = torch.compile(model) if variant.startswith("compile") else model

        def run(forward=forward, opt=opt, xv=xv) -> None:
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = F.cross_entropy(forward(xv), y)
            loss.backward()
            opt.step()
            sync()

        try:
            compile_s = _warm_up(run, warmup)
        except Exception as err:  # torch.compile needs a working C++ toolchain, among others
            notes[name] = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"
            print(f"  {name} skipped: {notes[name]}", file=sys.stderr)
            continue
        runners.append(Runner(name, run, compile_s,
                              {"params": torch_twins.count_params(model)}, setup))
    return runners, notes


def _warm_up(run: Callable[[], None], warmup: int) -> float:
    """Runs `warmup` steps; returns their time above `warmup` steady steps (the compile or
    first-call cost), at least 0."""
    start = time.perf_counter()
    for _ in range(warmup):
        run()
    first = time.perf_counter() - start
    steady = min(timed(run) for _ in range(max(1, warmup)))
    return max(0.0, first - warmup * steady)


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# Measuring


def peak_flops_per_s(dtype: str, repeats: int = 5) -> float:
    """FLOP/s of an n^3 matmul in `dtype` (n from PEAK_N; best of `repeats`): the machine's
    practical peak, measured in this run."""
    n = PEAK_N.get(jax.default_backend(), PEAK_N_ACCELERATOR)
    a = jax.random.normal(jax.random.key(0), (n, n), DTYPES[dtype])
    matmul = jax.jit(lambda a, b: a @ b)
    jax.block_until_ready(matmul(a, a))
    best = min(timed(lambda: jax.block_until_ready(matmul(a, a))) for _ in range(repeats))
    return 2 * n ** 3 / best


def interleave(runners: list[Runner], rounds: int, steps: int) -> None:
    """`rounds` rounds; in each, every runner runs `steps` timed steps in turn."""
    for _ in range(rounds):
        for r in runners:
            if r.timed_round:
                times = r.timed_round(steps)
            else:
                if r.setup:
                    r.setup()
                times = [timed(r.step) for _ in range(steps)]
            r.times += times
            r.rounds.append(statistics.median(times))


def host_cpu() -> str:
    """The host CPU's model name (/proc/cpuinfo on Linux, else `platform.processor()`): the
    2-core machines this runs on change from day to day (Intel Xeon, AMD EPYC), and a ratio
    is only comparable with one measured on the same CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _device_peak_memory() -> int | None:
    stats = jax.devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use")


def summarize(r: Runner, case: Case, flops: float | None, peak: float) -> dict:
    """A runner's row: times in ms, throughput, FLOP rate, memory."""
    ms = np.asarray(r.times) * 1e3
    step_ms = statistics.median(r.rounds) * 1e3
    row = {"compile_s": r.compile_s, "step_ms": step_ms,
           "step_ms_p25": float(np.percentile(ms, 25)),
           "step_ms_p75": float(np.percentile(ms, 75)),
           "step_ms_min": float(ms.min()), "step_ms_max": float(ms.max()),
           "round_ms": [t * 1e3 for t in r.rounds],
           "examples_per_s": case.batch / (step_ms / 1e3)}
    rate = flops / (step_ms / 1e3) if flops else None
    row.update(flops_per_s=rate, fraction_of_peak=rate / peak if rate else None,
               peak_memory_bytes=_device_peak_memory() if r.name.startswith("convjax") else None)
    row.update({k: v for k, v in r.extra.items() if k not in ("params", "flops_per_step")})
    return row


def bench_model(case: Case, args, peak: float, torch_ok: bool) -> dict:
    """Builds, warms up and times every variant of one model; returns its JSON entry."""
    print(f"{case.model}: batch {case.batch}, input {_hwc(case.input_shape)}, {case.dtype}",
          flush=True)
    runners = [convjax_runner(case, lowering, rematerialise, devices)
               for rematerialise in ((False, True) if args.remat else (False,))
               for lowering in args.lowerings for devices in args.devices]
    for r in runners:
        _warm_up(r.step, args.warmup)
    with peer_process.peer_runners(args, torch_runners, case, args.warmup, args.peer_variants,
                                   args.torch_threads, enabled=torch_ok) as (peer_list, notes):
        runners += peer_list
        interleave(runners, args.rounds, args.steps)
    flops = runners[0].extra["flops_per_step"]
    runs = {r.name: summarize(r, case, flops, peak) for r in runners}
    peer_names = [r.name for r in runners if r.name.startswith("torch")]
    best = min(peer_names, key=lambda n: runs[n]["step_ms"]) if peer_names else None
    ratio = {r.name: runs[r.name]["step_ms"] / runs[best]["step_ms"]
             for r in runners if best and r.name.startswith("convjax")}
    return {"model": case.model, "batch": case.batch, "input": _hwc(case.input_shape),
            "params": runners[0].extra["params"],
            "peer_params": next((r.extra["params"] for r in runners
                                 if r.name.startswith("torch")), None),
            "flops_per_step": flops, "runs": runs, "peer_failures": notes,
            "best_peer": best, "ratio": ratio}


# ---------------------------------------------------------------------------------------------
# Command line


def _hwc(shape) -> str:
    return "x".join(map(str, shape))


def _parse_hwc(text: str) -> tuple[int, int, int]:
    try:
        h, w, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--input {text!r} is not HxWxC, e.g. 32x32x3") from None
    if min(h, w, c) < 1:
        raise UserError(f"--input {text!r} needs positive sizes")
    return h, w, c


def cases(args) -> list[Case]:
    out = []
    for name in args.models:
        try:
            spec = models.spec(name)
        except models.UnknownModelError as err:
            raise UserError(str(err)) from None
        batch, shape = DEFAULTS.get(spec.name, (32, spec.input_shape))
        out.append(Case(spec.name, args.batch or batch,
                        _parse_hwc(args.input) if args.input else shape, args.dtype,
                        spec.num_classes or 10))
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(DEFAULTS),
                   help="comma-separated registry names (default: %(default)s)")
    p.add_argument("--batch", type=int, default=None, help="batch size for every model")
    p.add_argument("--input", default=None, help="HxWxC input for every model")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    p.add_argument("--peer", choices=("torch", "none"), default="torch")
    peer_process.add_argument(p)
    p.add_argument("--peer-variants", default="eager,eager_cl,compile,compile_cl",
                   help="PyTorch variants: eager, eager_cl, compile, compile_cl")
    p.add_argument("--torch-threads", default=None,
                   help="PyTorch intra-op thread counts to try, e.g. 1,2 (default: torch's)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after compiling")
    p.add_argument("--lowerings", default="auto",
                   help="convjax variants by conv lowering: auto (shape-aware), xla, patches")
    p.add_argument("--remat", action="store_true",
                   help="also time convjax's step with every block rematerialised "
                        "(train.remat), beside its XLA memory")
    p.add_argument("--devices", default="1",
                   help="convjax variants by device count, e.g. 1,2: its step data parallel "
                        "over that many devices, as the trainer runs on a mesh (on a CPU, "
                        "XLA CPU devices, made before the backend starts)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.lowerings = args.lowerings.split(",")
    args.peer_variants = args.peer_variants.split(",")
    args.peer_process = peer_process.where(args.peer_process)
    for name in args.lowerings:
        if name not in conv_lowering.LOWERINGS:
            raise UserError(f"--lowerings: {name!r} is not one of "
                            f"{', '.join(conv_lowering.LOWERINGS)}")
    try:
        args.torch_threads = ([int(t) for t in args.torch_threads.split(",")]
                              if args.torch_threads else [os.cpu_count() or 1])
    except ValueError:
        raise UserError(f"--torch-threads {args.torch_threads!r} is not a list of counts") from None
    try:
        args.devices = [int(n) for n in args.devices.split(",")]
    except ValueError:
        raise UserError(f"--devices {args.devices!r} is not a list of counts") from None
    if min(args.devices) < 1:
        raise UserError("--devices: counts must be positive")
    bad = set(args.peer_variants) - {"eager", "eager_cl", "compile", "compile_cl"}
    if bad:
        raise UserError(f"--peer-variants: unknown {', '.join(sorted(bad))}")
    if min(args.steps, args.rounds) < 1 or args.warmup < 0 or (args.batch or 1) < 1:
        raise UserError("--steps, --rounds and --batch must be positive, --warmup >= 0")
    return args


def ensure_devices(count: int) -> None:
    """At least `count` devices: on a CPU whose backend has not started, XLA CPU devices are
    made (`jax_num_cpu_devices`, each running its share of the batch on its own, where one
    device's operations would share the cores); else a UserError when there are fewer."""
    if count > 1 and jax.config.jax_num_cpu_devices < count:
        try:
            jax.config.update("jax_num_cpu_devices", count)
        except RuntimeError:  # the backend has started (a caller's process): as it is
            pass
    if jax.device_count() < count:
        raise UserError(f"--devices {count}: only {jax.device_count()} "
                        f"{jax.default_backend()} device(s); give at most that many")


def _peer_malloc(args) -> str:
    """The peer's malloc, as the JSON records it."""
    if args.peer_process == "separate" and args.peer_malloc == "system":
        return "glibc (system)"
    return malloc.describe()


def print_table(entry: dict) -> None:
    print(f"  {'variant':<26}{'compile s':>10}{'step ms':>10}{'p25-p75':>16}"
          f"{'ex/s':>9}{'%peak':>7}{'ratio':>7}")
    for name, run in entry["runs"].items():
        frac = run["fraction_of_peak"]
        ratio = entry["ratio"].get(name)
        print(f"  {name:<26}{run['compile_s']:>10.2f}{run['step_ms']:>10.2f}"
              f"{run['step_ms_p25']:>8.2f}-{run['step_ms_p75']:<7.2f}"
              f"{run['examples_per_s']:>9.0f}"
              f"{(f'{100 * frac:.1f}' if frac else 'n/a'):>7}"
              f"{(f'{ratio:.2f}' if ratio else ''):>7}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    todo = cases(args)
    ensure_devices(max(args.devices))
    torch_version, note = (torch_version_or_reason() if args.peer == "torch"
                           else (None, "--peer none"))
    if args.peer == "torch" and torch_version is None:
        print(f"note: {note}", file=sys.stderr)
    peak = peak_flops_per_s(args.dtype)
    device = jax.devices()[0]
    print(f"{jax.default_backend()} ({device.device_kind}; host {host_cpu()}), {args.dtype}; "
          f"matmul peak {peak / 1e9:.1f} GFLOP/s; {args.rounds} rounds x {args.steps} steps; "
          f"malloc {malloc.describe()}" + (f"; torch {torch_version}, malloc {_peer_malloc(args)}"
                                    if torch_version else ""), flush=True)
    entries = []
    for case in todo:
        entries.append(bench_model(case, args, peak, torch_version is not None))
        print_table(entries[-1])
        mem = entries[-1]["runs"][f"convjax[{args.lowerings[0]}]"]["peak_memory_bytes"]
        print(f"  FLOPs/step {entries[-1]['flops_per_step'] or 0:.3g}; peak device memory "
              f"{'n/a' if mem is None else f'{mem / 2**20:.0f} MiB'}", flush=True)
    if args.json:
        result = {"backend": jax.default_backend(), "device": device.device_kind,
                  "host_cpu": host_cpu(), "dtype": args.dtype, "rounds": args.rounds,
                  "steps_per_round": args.steps,
                  "peak_flops_per_s": peak, "torch": torch_version,
                  "peer_note": note, "peer_process": args.peer_process,
                  "malloc": malloc.describe(), "peer_malloc": _peer_malloc(args),
                  "models": entries}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        plot(result, os.path.splitext(args.json)[0] + ".png")
    return 0


def plot(result: dict, out: str) -> None:
    """Per model, each variant's median step time as a bar (p25-p75 whiskers) over the best
    PyTorch variant's (the dashed line; plain ms without a peer), each bar labelled with its
    ms: the table at a glance, written beside the JSON."""
    from matplotlib.figure import Figure  # the Agg canvas, without pyplot's global state

    entries = result["models"]
    fig = Figure(figsize=(4.2 * len(entries), 3.6), dpi=100, layout="constrained")
    for i, entry in enumerate(entries):
        ax = fig.add_subplot(1, len(entries), i + 1)
        runs = entry["runs"]
        base = runs[entry["best_peer"]]["step_ms"] if entry.get("best_peer") else 1.0
        names = list(runs)
        spread = [[runs[n]["step_ms"] - runs[n]["step_ms_p25"] for n in names],
                  [runs[n]["step_ms_p75"] - runs[n]["step_ms"] for n in names]]
        colours = ["tab:blue" if n.startswith("convjax") else "tab:grey" for n in names]
        ax.barh(names, [runs[n]["step_ms"] / base for n in names],
                xerr=[[e / base for e in side] for side in spread], color=colours)
        for y, name in enumerate(names):
            ax.text(runs[name]["step_ms_p75"] / base, y, f" {runs[name]['step_ms']:.1f} ms",
                    va="center", fontsize=8)
        ax.set_xlim(0, 1.3 * max(runs[n]["step_ms_p75"] for n in names) / base)
        ax.axvline(1.0, color="k", lw=0.8, ls="--")
        ax.invert_yaxis()
        ax.set_xlabel("step time / best PyTorch" if entry.get("best_peer") else "step ms")
        ax.set_title(f"{entry['model']} (b{entry['batch']}, {entry['input']})", fontsize=10)
    where = {"separate": "; PyTorch in its own process",
             "same": "; PyTorch in the same process"}.get(result.get("peer_process"), "")
    if "malloc" in result:
        where += f"\nmalloc: convjax {result['malloc'].split(' (')[0]}"
        if result.get("torch"):
            where += f", PyTorch {result['peer_malloc'].split(' (')[0]}"
    host = f" ({result['host_cpu']})" if result.get("host_cpu") else ""
    fig.suptitle(f"train step, {result['backend']}{host} {result['dtype']}, medians of "
                 f"{result['rounds']} rounds x {result['steps_per_round']} steps{where}",
                 fontsize=10)
    fig.savefig(out)


if __name__ == "__main__":
    exit_with(main)
