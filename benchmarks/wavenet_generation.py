"""WaveNet generation speed: naive (a full forward pass over the receptive field per sample)
against per-layer activation queues (Paine et al. 2016, "Fast WaveNet"), for identical samples.

    uv run python -m benchmarks.wavenet_generation [--samples 2048] [--batch 1] [--stacks 2]
        [--layers 10] [--channels 16] [--repeats 3] [--json out.json]

The net is models/wavenet.py with random weights (speed does not depend on them), by default
the shape experiments/wavenet_vibration.py trains: 2 stacks of dilations 1 ... 512 (receptive
field 2,048 samples), 16 residual and gate channels, 32 skip channels. Both generators are
compiled first (one warm-up call each), then timed interleaved `--repeats` times from the same
key; the samples are checked identical. Reported: seconds per call, samples per second and
the naive/queued ratio. Queued generation costs O(layers) per sample, naive O(receptive field
x layers), so the ratio grows with the receptive field. The naive pass is over
min(receptive field, prime + samples - 1) samples, so it is the full receptive field from
2,048 samples on.

Measured on the 2-core CPU shared with other jobs (load average 25-38), float32, batch 1, one
sample of silence as the prime, identical samples both times:
- `--samples 2048 --repeats 1` (benchmarks/results/wavenet_generation_cpu_2core.json):
  naive 29.02 s, queued 0.244 s (8,400 samples/s): 118.9x.
- `--samples 1024 --repeats 3` (naive window 1,024): naive 34.5 s, queued 0.482 s: 71.6x.
The load changed between the two runs; read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import numpy as np

import models
from models import wavenet


def _timed(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = np.asarray(jax.block_until_ready(fn()))
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--stacks", type=int, default=2)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)

    net = models.create("wavenet", residual_channels=args.channels, gate_channels=args.channels,
                        skip_channels=2 * args.channels, stacks=args.stacks,
                        layers_per_stack=args.layers)
    prime = np.full((args.batch, 1), 128, np.int32)  # one sample of silence
    key = jax.random.key(0)
    runs = {"naive": lambda: wavenet.generate_naive(net, prime, args.samples, key),
            "queued": lambda: wavenet.generate_queued(net, prime, args.samples, key)}
    samples = {name: _timed(run)[1] for name, run in runs.items()}  # compile + warm up
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            seconds, out = _timed(run)
            times[name].append(seconds)
            assert np.array_equal(out, samples[name]), f"{name} is not deterministic"
    identical = bool(np.array_equal(samples["naive"], samples["queued"]))
    median = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "receptive_field": net.receptive_field, "samples": args.samples, "batch": args.batch,
        "stacks": args.stacks, "layers_per_stack": args.layers, "channels": args.channels,
        "device": jax.devices()[0].device_kind, "identical_samples": identical,
        "seconds": median, "samples_per_s": {n: args.batch * args.samples / s
                                             for n, s in median.items()},
        "naive_over_queued": median["naive"] / median["queued"], "all_seconds": times,
    }
    print(f"receptive field {net.receptive_field}, {args.samples} samples x batch {args.batch}: "
          f"naive {median['naive']:.3f} s, queued {median['queued']:.3f} s, "
          f"ratio {result['naive_over_queued']:.1f}x, identical samples: {identical}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
