"""`launch.py generate --workdir RUN --n N --out FILE.npz [--count K] [--prime silence|eval]
[--prime-samples P] [--method queued|naive] [--compare] [--temperature T] [--seed S]
[--plot PNG] [--checkpoint best|latest|STEP]`: new signals from a trained next_sample run
(a WaveNet), sample by sample.

Each of K signals (default 1) continues a prime: one sample of silence (`--prime silence`, the
default), or the first P samples (default 256) of eval signal 0, 1, ..., K-1 (`--prime eval`).
`--method` picks the generator (models/wavenet.py): `queued` (per-layer activation queues, the
default) or `naive` (a full forward pass over the receptive field per sample); with the same
`--seed` both draw the same samples. `--compare` runs the other one too, checks that, and
reports both times.

FILE.npz holds `codes` (K x N int32 mu-law codes), `signals` (K x N float32, decoded, in the
peak-normalised units the run trained on), `prime` (K x P codes), `method`, `seconds` (the
generation's wall time, compilation included) and, with --compare, `seconds_other`.
`--plot` draws the prime and the generated signal of each. A run of another task, a bad
number or an unwritable --out is one line on stderr and exit status 2, before generating.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from errors import UserError, one_line

METHODS = ("queued", "naive")
PRIMES = ("silence", "eval")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    for flag, default in (("workdir", None), ("n", None), ("out", None), ("count", "1"),
                          ("prime", "silence"), ("prime-samples", "256"), ("method", "queued"),
                          ("temperature", "1.0"), ("seed", "0"), ("plot", ""),
                          ("checkpoint", "best")):
        parser.add_argument(f"--{flag}", required=default is None, default=default)
    parser.add_argument("--compare", action="store_true")
    try:
        args, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError as err:
        raise UserError(f"{one_line(err)}; see --help") from None
    if rest:
        raise UserError(f"unknown argument {rest[0]!r}; see --help")
    for name in ("n", "count", "prime_samples", "seed"):
        value = getattr(args, name)
        if not value.isdigit() or (name != "seed" and int(value) < 1):
            raise UserError(f"--{name.replace('_', '-')} must be a positive whole number, "
                            f"got {value!r}")
        setattr(args, name, int(value))
    try:
        args.temperature = float(args.temperature)
    except ValueError:
        args.temperature = 0.0
    if args.temperature <= 0:
        raise UserError(f"--temperature must be a positive number, got {args.temperature!r}")
    if args.method not in METHODS:
        raise UserError(f"--method {args.method!r}: choose one of {', '.join(METHODS)}")
    if args.prime not in PRIMES:
        raise UserError(f"--prime {args.prime!r}: choose one of {', '.join(PRIMES)}")
    return args


def writable(path: str, flag: str, suffix: str) -> Path:
    out = Path(path)
    if out.suffix != suffix:
        raise UserError(f"--{flag} {out} must end in {suffix}")
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"--{flag} {out} cannot be written (a folder, or its folder {parent} "
                        "is missing or read-only); give a file in an existing folder")
    return out


def _primes(args, c, task, info):
    """K x P int32 codes to start from."""
    import numpy as np

    if args.prime == "silence":
        from data import mu_law

        return np.full((args.count, 1), int(mu_law.encode(np.zeros(1), c.task.levels)[0]),
                       np.int32)
    from data import inputs

    source = inputs.open_data(c, train=False).eval_source
    if len(source) < args.count:
        raise UserError(f"--count {args.count}: the eval split has only {len(source)} signals")
    codes = [task.decode(source[i])["codes"] for i in range(args.count)]
    if len(codes[0]) < args.prime_samples:
        raise UserError(f"--prime-samples {args.prime_samples} is longer than the eval signals "
                        f"({len(codes[0])} samples)")
    return np.stack([x[:args.prime_samples] for x in codes]).astype(np.int32)


def _generate(method: str, model, prime, n: int, seed: int, temperature: float):
    import jax
    import numpy as np

    from models import wavenet

    fn = wavenet.generate_queued if method == "queued" else wavenet.generate_naive
    start = time.perf_counter()
    codes = np.asarray(jax.block_until_ready(fn(model, prime, n, jax.random.key(seed),
                                                temperature)))
    return codes, time.perf_counter() - start


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(__doc__.strip())
        return 0
    args = parse(argv)
    out = writable(args.out, "out", ".npz")
    plot = writable(args.plot, "plot", ".png") if args.plot else None
    from training import run_dir

    workdir = Path(args.workdir)
    run = run_dir.open_trained(workdir, args.checkpoint, needs=("next_sample",),
                               command="generate", example="experiments/wavenet_vibration.py")
    c, task, info, step, model = run.config, run.task, run.info, run.step, run.model
    import numpy as np

    from data import mu_law

    prime = _primes(args, c, task, info)
    codes, seconds = _generate(args.method, model, prime, args.n, args.seed, args.temperature)
    record = {"codes": codes, "signals": mu_law.decode(codes, c.task.levels), "prime": prime,
              "method": args.method, "seconds": seconds}
    line = f"{args.method} {seconds:.2f} s"
    if args.compare:
        other = METHODS[1 - METHODS.index(args.method)]
        other_codes, other_seconds = _generate(other, model, prime, args.n, args.seed,
                                               args.temperature)
        same = bool(np.array_equal(codes, other_codes))
        record["seconds_other"] = other_seconds
        line += f", {other} {other_seconds:.2f} s, identical samples: {same}"
    np.savez(out, **record)
    if plot is not None:
        _plot(record, prime, c, info, plot)
    print(f"{args.count} signal(s) of {args.n} samples from {c.model.name} (checkpoint "
          f"{args.checkpoint}, step {step}), {line}: wrote {out}"
          + (f" and {plot}" if plot else ""))
    return 0


def _plot(record: dict, prime, c, info, path: Path) -> None:
    import numpy as np

    from data import mu_law
    from tasks import signal_pictures

    levels = c.task.levels
    p = prime.shape[1]
    joined = [np.concatenate([mu_law.decode(pr, levels), s])
              for pr, s in zip(prime, record["signals"])]
    primes = [np.concatenate([mu_law.decode(pr, levels), np.full(len(s), np.nan)])
              for pr, s in zip(prime, record["signals"])]
    signal_pictures.signal_panels(
        joined, [f"generated signal {i}: {p}-sample prime (orange), then "
                 f"{len(record['signals'][i])} generated samples" for i in range(len(joined))],
        path, overlays=primes, labels=("generated", "prime"), columns=1,
        title=f"{c.model.name} trained on {info.name}: {record['method']} generation, "
              "peak-normalised units")
