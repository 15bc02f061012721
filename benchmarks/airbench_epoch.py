"""Epoch-time benchmark of the CIFAR speed run: convjax's compiled airbench94 step against its
PyTorch twin (benchmarks/airbench_twin.py), interleaved epoch by epoch (on a CPU the twin in a
process of its own: benchmarks/peer_process.py).

    uv run python -m benchmarks.airbench_epoch [--examples N] [--batch B] [--rounds R]
        [--torch-threads 1,2] [--peer torch|none] [--peer-process auto|separate|same]
        [--json OUT]

Both sides train the recipe's step of experiments/airbench_cifar.py (label smoothing 0.2,
Nesterov SGD momentum 0.85, its lr and weight decay) on random CIFAR-shaped data held on the
device: per epoch a permutation is drawn on the device, each step gathers its batch from the
on-device array and applies a random horizontal flip and a random translation of up to 2
pixels there. convjax: `training.step.make_train_step` with the device-augmentation hook, the
gather inside the jitted step, state donated, the epoch's steps dispatched asynchronously and
waited for at the end. PyTorch: eager, channels-last, the same gather and augmentation in
torch ops (CUDA synchronised at the end of the epoch when on a GPU). After one warm-up epoch
each, `--rounds` rounds run one epoch of every variant in turn. float32 only.

Reported (and in JSON): per variant the median epoch seconds over the rounds, every round's
seconds, ms per step and examples/s; the trainable parameter counts of both (equal: the test
checks it); `ratio` = convjax epoch time / best PyTorch epoch time.

Latest (benchmarks/results/airbench_epoch_cpu_2core_peer_process.json): `--examples 1024
--batch 256 --rounds 3 --torch-threads 1,2` on the quiet 2-core CPU, oneDNN's convolutions
(models/onednn_conv.py), the twin in its own process: convjax 3.35 s an epoch (rounds
3.26/3.35/3.94), PyTorch eager channels-last 3.22 s with 2 threads, 5.75 s with 1: ratio 1.04.

Earlier (benchmarks/results/airbench_epoch_cpu_2core.json): `--examples 1024 --batch 256
--rounds 3 --torch-threads 1,2` on the 2-core CPU shared with other jobs (load average 5-9),
torch 2.13 CPU, so only the ratio means anything (PyTorch's 2-thread runs suffer most from the
sharing). Median epoch seconds (4 steps of 256): convjax 14.86 (rounds 14.65/16.93/14.86),
PyTorch eager channels-last 1 thread 7.41 (6.05/8.36/7.41), 2 threads 11.09: ratio 2.01. The
run before the max pools became a reshape + max: convjax 18.37, PyTorch 8.07 (1 thread): ratio
2.28. (The pools are models/max_pool.py's since, 1.09x faster again per step: models/airbench.py
`pool`.) Probed at batch 128 (4 steps each, same load, noisy):
exact GELU (erf, as the recipe's and the twin's) costs about a quarter of convjax's step
against the tanh approximation (min 1.95 s against 1.48 s); XLA's conv everywhere or patches
everywhere were within the noise of the shape-aware default. On a GPU, run it with its
defaults (50,000 examples, batch 1024): not measured here (no GPU).

With XLA's own convolutions instead of YNNPACK's (models/conv_lowering.py:
`compiler_options`; benchmarks/results/airbench_epoch_cpu_2core_eigen_convs.json), the same
arguments on a quiet host: convjax 4.90 s, PyTorch eager channels-last 6.32 s (1 thread), 3.50
s (2 threads): ratio 1.40. The option alone, convjax only, one process each (`--peer none`):
10.11 s with YNNPACK's convolutions, 4.14 s without.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import jax
import numpy as np

import models
from benchmarks import peer_process, train_step
from errors import UserError, exit_with
from models import conv_lowering

AUGMENT = "flip_lr|random_crop(32, pad=2)"
SHAPE = (32, 32, 3)
NUM_CLASSES = 10


def recipe_config(batch: int):
    from experiments import airbench_cifar

    c = airbench_cifar.get_config()
    c.train.batch_size = batch
    # The PyTorch twin's optimizer has no lookahead: both sides time the same update.
    c.optimizer.lookahead_every = 0
    return c


# ---------------------------------------------------------------------------------------------
# convjax


def convjax_epoch(c, images: jax.Array, labels: jax.Array):
    """`(run_epoch, params)`: run_epoch() trains one epoch on the on-device arrays and waits."""
    from data.augment import hook as augment_hook
    from training import optim, state as state_lib, step as step_lib

    model = models.create("airbench94", num_classes=NUM_CLASSES, seed=c.seed)
    model.fit_to_data(np.asarray(images[:1000]))
    tx = optim.make_optimizer(c)
    defs, state = state_lib.create(model, tx, c.seed)
    hook = augment_hook.build(AUGMENT, "none", 0.0, NUM_CLASSES, c.train.label_smoothing)
    step = step_lib.make_train_step(defs, tx, num_classes=NUM_CLASSES,
                                    label_smoothing=c.train.label_smoothing, device_augment=hook)

    def gathered_step(state, index):  # the batch gathered from the on-device set
        return step(state, {"image": images[index], "label": labels[index]})

    train = jax.jit(gathered_step, donate_argnums=0,  # compiled as the trainer's steps are
                    compiler_options=conv_lowering.compiler_options())
    batch, steps = c.train.batch_size, images.shape[0] // c.train.batch_size
    holder = {"state": state, "key": jax.random.key(2)}

    def run_epoch() -> None:
        holder["key"], key = jax.random.split(holder["key"])
        order = jax.random.permutation(key, images.shape[0])
        for i in range(steps):
            holder["state"], _ = train(holder["state"], order[i * batch:(i + 1) * batch])
        jax.block_until_ready(holder["state"])

    return run_epoch, state_lib.count_params(state.params)


# ---------------------------------------------------------------------------------------------
# PyTorch


def torch_epoch(c, images: np.ndarray, labels: np.ndarray, threads: int | None):
    """`(run_epoch, params, setup)` of the twin, eager and channels-last."""
    import torch
    from torch.nn import functional as F

    from benchmarks import airbench_twin

    device = "cuda" if torch.cuda.is_available() else "cpu"
    setup = (lambda: torch.set_num_threads(threads)) if threads else (lambda: None)
    setup()
    torch.manual_seed(0)
    model = airbench_twin.Airbench().to(device).to(memory_format=torch.channels_last).train()
    o = c.optimizer
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=o.lr,
                          momentum=o.momentum, nesterov=True, weight_decay=o.weight_decay)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    y = torch.from_numpy(labels).long().to(device)
    n, batch = x.shape[0], c.train.batch_size
    side, pad = x.shape[2], 2
    grid = torch.arange(side, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def augment(xb: torch.Tensor) -> torch.Tensor:
        b = xb.shape[0]
        flip = torch.rand(b, device=device) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        padded = F.pad(xb, (pad, pad, pad, pad))
        dy, dx = (torch.randint(0, 2 * pad + 1, (2, b), device=device))
        rows = (dy[:, None] + grid)[:, None, :, None]           # (B, 1, H, 1)
        cols = (dx[:, None] + grid)[:, None, None, :]           # (B, 1, 1, W)
        chans = torch.arange(xb.shape[1], device=device)[None, :, None, None]
        out = padded[torch.arange(b, device=device)[:, None, None, None], chans, rows, cols]
        return out.contiguous(memory_format=torch.channels_last)

    def run_epoch() -> None:
        order = torch.randperm(n, device=device)
        for i in range(n // batch):
            index = order[i * batch:(i + 1) * batch]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(augment(x[index])), y[index],
                                   label_smoothing=c.train.label_smoothing)
            loss.backward()
            opt.step()
        sync()

    return run_epoch, airbench_twin.count_params(model), setup


def torch_runners(c, images: np.ndarray, labels: np.ndarray, thread_counts: list[int] | None):
    """The twin's epoch per intra-op thread count, each warmed up by one epoch, as
    benchmarks/train_step.py's `Runner`s (one step = one epoch), and no notes."""
    import torch

    from benchmarks.train_step import Runner, timed

    runners = []
    for threads in thread_counts or [None]:
        name = f"torch[eager_cl,t{threads or torch.get_num_threads()}]"
        run, params, setup = torch_epoch(c, images, labels, threads)
        runners.append(Runner(name, run, timed(run), {"params": params}, setup))
    return runners, {}


# ---------------------------------------------------------------------------------------------
# Measuring


def measure(args) -> dict:
    if args.examples < args.batch:
        raise UserError(f"--examples {args.examples} is fewer than one --batch {args.batch}")
    c = recipe_config(args.batch)
    rng = np.random.default_rng(0)
    host_images = rng.random((args.examples, *SHAPE), dtype=np.float32)
    host_labels = rng.integers(0, NUM_CLASSES, args.examples).astype(np.int32)
    images, labels = jax.device_put(host_images), jax.device_put(host_labels)

    run, params = convjax_epoch(c, images, labels)
    runners = [train_step.Runner("convjax", run, train_step.timed(run))]  # compiles
    torch_version, note = (train_step.torch_version_or_reason() if args.peer == "torch"
                           else (None, "--peer none"))
    if args.peer == "torch" and torch_version is None:
        print(f"note: {note}", file=sys.stderr)
    with peer_process.peer_runners(args, torch_runners, c, host_images, host_labels,
                                   args.torch_threads,
                                   enabled=torch_version is not None) as (peer_list, _):
        runners += peer_list
        train_step.interleave(runners, args.rounds, steps=1)  # a round: one epoch each
    steps = args.examples // args.batch
    runs = {}
    for r in runners:
        epoch_s = statistics.median(r.rounds)
        runs[r.name] = {"epoch_s": epoch_s, "round_s": r.rounds,
                        "step_ms": epoch_s / steps * 1e3,
                        "examples_per_s": steps * args.batch / epoch_s,
                        "first_epoch_s": r.compile_s}
    peers = [n for n in runs if n.startswith("torch")]
    best = min(peers, key=lambda n: runs[n]["epoch_s"]) if peers else None
    return {"backend": jax.default_backend(), "device": str(jax.devices()[0]),
            "torch": torch_version, "peer_process": args.peer_process,
            "examples": args.examples, "batch": args.batch,
            "steps_per_epoch": steps, "rounds": args.rounds, "params": params,
            "peer_params": next((r.extra["params"] for r in runners[1:]), None),
            "runs": runs, "best_peer": best,
            "ratio": runs["convjax"]["epoch_s"] / runs[best]["epoch_s"] if best else None}


def parse_args(argv: list[str]) -> argparse.Namespace:
    on_cpu = jax.default_backend() == "cpu"
    p = argparse.ArgumentParser(prog="airbench_epoch", description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=1024 if on_cpu else 50_000,
                   help="examples per epoch (default: 1024 on CPU, 50,000 otherwise)")
    p.add_argument("--batch", type=int, default=256 if on_cpu else 1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--peer", choices=("torch", "none"), default="torch")
    peer_process.add_argument(p)
    p.add_argument("--torch-threads", default=None,
                   help="PyTorch intra-op thread counts to try, e.g. 1,2 (default: torch's)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    try:
        args.torch_threads = ([int(t) for t in args.torch_threads.split(",")]
                              if args.torch_threads else None)
    except ValueError:
        raise UserError(f"--torch-threads {args.torch_threads!r} is not a list like 1,2") from None
    args.peer_process = peer_process.where(args.peer_process)
    if min(args.examples, args.batch, args.rounds) < 1:
        raise UserError("--examples, --batch and --rounds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = measure(args)
    for name, r in result["runs"].items():
        print(f"{name:24s} epoch {r['epoch_s']:8.3f} s  {r['step_ms']:9.1f} ms/step  "
              f"{r['examples_per_s']:8.1f} ex/s")
    if result["ratio"] is not None:
        print(f"ratio convjax / {result['best_peer']}: {result['ratio']:.2f} "
              f"(params {result['params']:,} vs {result['peer_params']:,})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    exit_with(main)
