"""The training loop: build everything from the config, train, evaluate, checkpoint, record.

`train(config, workdir)` is the whole of `launch.py train`. Everything that can fail on a user's
input (config, dataset, model options, an unrelated workdir) is checked before the run directory
is touched.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import ml_collections
import numpy as np
from flax import nnx

import models
from data import pipeline, sources
from errors import UserError
from training import checkpoint, config as config_lib, device_augment, mesh as mesh_lib, metrics
from training import optim, record
from training import state as state_lib, step as step_lib
from training.progress import ProgressReporter

# Fields that may change between a run and its resumption without changing its maths.
RESUMABLE_CHANGES = {"train.steps", "train.log_every_steps", "data.num_workers", "data.prefetch",
                     "data.data_dir", "data.cache"}


@dataclass
class Data:
    train_source: object
    eval_source: object
    num_classes: int
    in_channels: int


def open_data(c: ml_collections.ConfigDict) -> Data:
    d = c.data
    train_source = sources.open_split(d.name, d.train_split, d.data_dir, skip_bad=d.skip_bad)
    eval_source = sources.open_split(d.name, d.eval_split, d.data_dir, skip_bad=d.skip_bad)
    from data import stats  # normalize(NAME) finds its cached statistics in the run's data dir

    stats.use_data_dir(d.data_dir)
    return Data(train_source, eval_source, sources.num_classes(d.name, d.data_dir),
                in_channels=sources.image_channels(d.name, d.data_dir))


def build_model(c: ml_collections.ConfigDict, data: Data) -> nnx.Module:
    options = config_lib.model_options(c)
    try:
        return models.create(c.model.name, num_classes=data.num_classes,
                             in_channels=data.in_channels, seed=c.seed, **options)
    except models.UnknownModelError as err:
        raise UserError(str(err)) from None
    except (TypeError, ValueError) as err:  # an option the factory lacks, or a bad value
        raise UserError(f"model {c.model.name!r} rejected options {options}: {err}") from None


def host_augment(spec: str):
    if not spec or spec == "none":
        return None
    from data import augment  # imported only when used: it pulls in the op registry

    return augment.host_pipeline(spec)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def check_resumable(workdir: Path, c: ml_collections.ConfigDict) -> bool:
    """True when `workdir` holds a run to resume; raises if it holds something else."""
    if not workdir.exists() or not any(workdir.iterdir()):
        return False
    saved_path = workdir / "config.json"
    if not saved_path.exists():
        raise UserError(f"--workdir {workdir} exists and is not a convjax run directory (no "
                        "config.json); choose a new or empty directory")
    saved, now = _flat(json.loads(saved_path.read_text())), _flat(json.loads(c.to_json()))
    # A run saved before a field existed ran as that field's default does.
    defaults = _flat(json.loads(config_lib.base_config().to_json()))
    saved = {**{k: v for k, v in defaults.items() if k in now}, **saved}
    changed = sorted(k for k in saved.keys() | now.keys()
                     if saved.get(k) != now.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        raise UserError(f"--workdir {workdir} holds a run with a different config ({', '.join(changed)}); "
                        "resume with the same config or choose a new --workdir")
    return (workdir / "checkpoints").exists()


def evaluate(eval_step, state, inputs: Inputs, c, mesh) -> dict[str, float]:
    per_process = c.eval.batch_size // jax.process_count()
    totals = None
    for batch in pipeline.eval_batches(inputs.eval_ds, batch_size=per_process,
                                       num_batches=inputs.eval_batches):
        totals = metrics.add(totals, eval_step(state, mesh_lib.global_batch(batch, mesh)))
    return metrics.reduce(totals, c.eval.prefix)


@dataclass
class Inputs:
    train_iter: object
    eval_ds: object
    eval_batches: int
    class_counts: np.ndarray | None  # this process's train records per class, when known


def build_inputs(c: ml_collections.ConfigDict, data: Data) -> Inputs:
    """This process's train stream and eval set. Class counts are reported when they come
    cheap (a cached set) or are needed (balanced sampling): a full pass otherwise."""
    shard = dict(shard_index=jax.process_index(), shard_count=jax.process_count())
    decode = dict(image_size=c.data.image_size, pad=c.data.pad, cache=c.data.cache, **shard)
    train_ds = pipeline.decoded(data.train_source, **decode)
    counts = None
    if c.data.cache or c.data.balance:
        labels = pipeline.labels_of(train_ds)
        counts = np.bincount(labels, minlength=data.num_classes)
        if c.data.balance:
            train_ds = pipeline.balanced(train_ds, labels, seed=c.seed)
    train_iter = iter(pipeline.train_dataset(
        train_ds, batch_size=c.train.batch_size // jax.process_count(), seed=c.seed,
        augment=host_augment(c.data.augment), num_workers=c.data.num_workers,
        prefetch=c.data.prefetch))
    per_process = c.eval.batch_size // jax.process_count()
    eval_count = pipeline.eval_batch_count(len(data.eval_source), per_process,
                                           jax.process_count())
    return Inputs(train_iter, pipeline.decoded(data.eval_source, **decode), eval_count, counts)


def compile_steps(c: ml_collections.ConfigDict, defs, tx, num_classes: int, mesh):
    """(train step, eval step), jitted over `mesh`."""
    train_step = step_lib.make_train_step(
        defs, tx, num_classes=num_classes, label_smoothing=c.train.label_smoothing,
        aux_loss_weight=c.train.aux_loss_weight,
        device_augment=device_augment.build(c, num_classes))
    eval_step = step_lib.make_eval_step(defs, num_classes=num_classes)
    return (mesh_lib.compile_train_step(train_step, mesh),
            mesh_lib.compile_eval_step(eval_step, mesh))


def _announce(progress, c, state, inputs: Inputs, devices: int, workdir: Path,
              resumed_at: int | None) -> None:
    """The run's opening lines: network, devices, directory; class counts when known."""
    progress.message(f"{c.model.name}: {state_lib.count_params(state.params):,} parameters, "
                     f"{devices} device(s), run directory {workdir}"
                     + (f", resumed at step {resumed_at}" if resumed_at is not None else ""))
    if inputs.class_counts is not None:
        progress.message("train examples per class: " + " ".join(
            f"{k}:{n}" for k, n in enumerate(inputs.class_counts))
            + ("  (sampled balanced)" if c.data.balance else ""))


def train(c: ml_collections.ConfigDict, workdir: Path, *, stop_after: int | None = None,
          show_progress: bool = True) -> dict:
    """Trains (or resumes) the run in `workdir`; returns the summary written there."""
    started = time.perf_counter()
    mesh = mesh_lib.make_mesh()
    config_lib.validate(c, mesh.devices.size)
    data = open_data(c)
    model = build_model(c, data)
    resume = check_resumable(workdir, c)

    tx = optim.make_optimizer(c)
    defs, state = state_lib.create(model, tx, c.seed)
    state = mesh_lib.put_state(state, mesh)
    train_step, eval_step = compile_steps(c, defs, tx, data.num_classes, mesh)
    inputs = build_inputs(c, data)
    train_iter = inputs.train_iter

    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint.manager(workdir / "checkpoints", keep=c.checkpoint.keep,
                              best_metric=c.checkpoint.best_metric,
                              best_mode=c.checkpoint.best_mode)
    resumed_at = None
    if resume and ckpt.latest_step() is not None:
        state, data_state, _ = checkpoint.restore_latest(ckpt, state)
        train_iter.set_state(data_state)
        resumed_at = int(state.step)
    first = int(state.step)
    last = c.train.steps if stop_after is None else min(c.train.steps, stop_after)
    if first >= last:  # nothing to train: leave the run directory as it is
        ckpt.close()
        if show_progress:
            print(f"{workdir} is already at step {first}; nothing to train", file=sys.stderr)
        done = workdir / "summary.json"
        return json.loads(done.read_text()) if done.exists() else {"steps": first}
    is_main = jax.process_index() == 0
    run_record = record.RunRecord(workdir, writer_enabled=is_main)
    run_record.start(c.to_json(indent=2), resumed_at)
    progress = ProgressReporter(c.train.steps, resumed_at or 0, enabled=show_progress and is_main)
    _announce(progress, c, state, inputs, mesh.devices.size, workdir, resumed_at)

    def run_eval(step_number, state):
        values = evaluate(eval_step, state, inputs, c, mesh)
        run_record.log(step_number, values)
        progress.message(f"step {step_number}  " + "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
        return values

    clock = _ThroughputClock(c.train.batch_size)
    totals, train_values, eval_values = None, {}, {}
    for step_number in range(first + 1, last + 1):
        state, sums = train_step(state, mesh_lib.global_batch(next(train_iter), mesh))
        totals = metrics.add(totals, sums)
        if step_number == first + 1:
            clock.compiled(step_number, sums)
        at_end = step_number == last
        if step_number % c.train.log_every_steps == 0 or at_end:
            train_values = metrics.reduce(totals, "train")
            totals = None
            train_values.update(clock.lap(step_number))
            run_record.log(step_number, train_values)
            progress.update(step_number, train_values)
        if step_number % c.eval.every_steps == 0 or at_end:
            with clock.paused():
                eval_values = run_eval(step_number, state)
        if step_number % c.checkpoint.every_steps == 0 or at_end:
            with clock.paused():
                checkpoint.save(ckpt, step_number, state, train_iter.get_state(),
                                json.loads(c.to_json()), eval_values)
    ckpt.wait_until_finished()
    ckpt.close()
    progress.close()

    summary = {
        "model": c.model.name, "dataset": c.data.name, "steps": int(state.step),
        "final_metrics": {k: v for k, v in {**train_values, **eval_values}.items() if "/" in k},
        "params": state_lib.count_params(state.params),
        "params_sha256": record.params_sha256(state.params),
        "wall_time_s": time.perf_counter() - started, **clock.totals(),
        "devices": mesh.devices.size, "resumed_at": resumed_at,
    }
    run_record.finish(summary)
    progress.message(f"done: {summary['steps']} steps in {summary['wall_time_s']:.1f} s; " +
                     "  ".join(f"{k} {v:.4f}" for k, v in eval_values.items()))
    return summary


class _ThroughputClock:
    """Steady-state throughput: the first step (compilation) and eval/checkpoint time excluded.

    Laps end only where the host already waits for the device (metrics fetched), so each lap
    measures finished work rather than dispatched work.
    """

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self._start = time.perf_counter()
        self._mark, self._mark_step = 0.0, None
        self.compile_s, self.train_s, self.steps = 0.0, 0.0, 0

    def compiled(self, step_number: int, first_sums) -> None:
        jax.block_until_ready(first_sums)
        self._mark = time.perf_counter()
        self._mark_step = step_number
        self.compile_s = self._mark - self._start

    def lap(self, step_number: int) -> dict[str, float]:
        now = time.perf_counter()
        steps, elapsed = step_number - self._mark_step, now - self._mark
        self._mark, self._mark_step = now, step_number
        if steps == 0:
            return {}
        self.train_s += elapsed
        self.steps += steps
        return {"steps_per_s": steps / elapsed}

    @contextlib.contextmanager
    def paused(self):
        began = time.perf_counter()
        yield
        self._mark += time.perf_counter() - began

    def totals(self) -> dict[str, float]:
        steps_per_s = self.steps / self.train_s if self.train_s > 0 else 0.0
        return {"compile_s": self.compile_s, "train_time_s": self.train_s,
                "steps_per_s": steps_per_s, "examples_per_s": steps_per_s * self.batch_size}
