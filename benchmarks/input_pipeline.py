"""Is the input pipeline ever the bottleneck? Examples/s of a CIFAR-shaped augmentation pipeline
(random crop with padding 4, flip, cutout 8, normalise; batch 256) on the host (Grain, in-process
and with 2 worker processes) and on the device (the same ops compiled in a jitted function),
beside the train-step throughput of ResNet-20 measured in the same run, on the same machine.

    uv run python -m benchmarks.input_pipeline [--batches 20] [--steps 10]

The verdict is a ratio: pipeline examples/s over train-step examples/s; above 1 the pipeline
keeps up. Synthetic uint8 images stand in for CIFAR-10 (same shape, same work per example).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np
import optax

import models
from data import augment, pipeline
from training import mesh as mesh_lib, state as state_lib, step as step_lib

SPEC = ("random_crop(32, pad=4)|flip_lr|cutout(8)"
        "|normalize(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))")
BATCH = 256


def _records(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"image": rng.integers(0, 256, (32, 32, 3), np.uint8), "label": int(i % 10)}
            for i in range(n)]


def _rate(make_batches, batches: int) -> float:
    """Examples/s over `batches` batches, after one warm-up batch (start-up, compilation)."""
    it = make_batches()
    jax.block_until_ready(next(it))
    start = time.perf_counter()
    for _ in range(batches):
        jax.block_until_ready(next(it))
    return batches * BATCH / (time.perf_counter() - start)


def host_rate(ds, workers: int, batches: int) -> float:
    def make():
        return iter(pipeline.train_dataset(ds, batch_size=BATCH, seed=0,
                                           augment=augment.host_pipeline(SPEC),
                                           num_workers=workers, prefetch=4))
    return _rate(make, batches)


def device_rate(ds, batches: int) -> float:
    run = jax.jit(augment.device_pipeline(SPEC))
    images = np.stack([ds[i]["image"] for i in range(BATCH)])

    def make():
        key = jax.random.key(0)
        while True:
            key, sub = jax.random.split(key)
            yield run(images, sub)
    return _rate(make, batches)


def train_step_rate(steps: int) -> float:
    tx = optax.sgd(0.1, momentum=0.9)
    defs, state = state_lib.create(models.create("resnet20_cifar"), tx, seed=0)
    mesh = mesh_lib.make_mesh()
    step = mesh_lib.compile_train_step(step_lib.make_train_step(defs, tx, num_classes=10), mesh)
    rng = np.random.default_rng(0)
    batch = mesh_lib.global_batch({"image": rng.random((BATCH, 32, 32, 3), np.float32),
                                   "label": rng.integers(0, 10, BATCH).astype(np.int32)}, mesh)
    holder = {"state": mesh_lib.put_state(state, mesh)}

    def make():
        while True:
            holder["state"], sums = step(holder["state"], batch)
            yield sums
    return _rate(make, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    ds = pipeline.decoded(_records(4 * BATCH), image_size=32, cache=True)
    results = {
        "host_0_workers": host_rate(ds, 0, args.batches),
        "host_2_workers": host_rate(ds, 2, args.batches),
        "device": device_rate(ds, args.batches),
        "resnet20_train_step": train_step_rate(args.steps),
    }
    step_rate = results["resnet20_train_step"]
    for name, rate in results.items():
        print(f"{name:<22} {rate:>10,.0f} examples/s   {rate / step_rate:6.2f}x the train step")
    print(json.dumps({"examples_per_s": results, "backend": jax.default_backend(),
                      "devices": len(jax.devices())}))


if __name__ == "__main__":
    main()
