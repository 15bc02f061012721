"""The training loop: build everything from the config, train, evaluate, checkpoint, record.

`train(config, workdir)` is the whole of `launch.py train`. Everything that can fail on a user's
input (config, dataset, model options, an unrelated workdir) is checked before the run directory
is touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import sys
import time
from pathlib import Path

import jax
import ml_collections
import psutil
from flax import nnx

import models
import tasks
from data import inputs as inputs_lib
from errors import UserError
from models import conv_lowering, remat
from models.ghost_batch_norm import use_ghost_batch_norm
from tasks.base import HEALTH
from training import checkpoint, config as config_lib, mesh as mesh_lib, metrics, optim, plots
from training import callbacks, compile_cache, data_init, distributed, executable_cache
from training import precision, record, sharded_init, state as state_lib, step as step_lib
from training import transfer
from training.faults import RunLock, StopRequest, check_workdir
from training.health import HealthWatch
from training.progress import ProgressReporter, fmt

# Fields that may change between a run and its resumption without changing its maths.
RESUMABLE_CHANGES = {"train.steps", "train.log_every_steps", "data.num_workers", "data.prefetch",
                     "data.data_dir", "data.cache", "checkpoint.every_steps",
                     "checkpoint.every_minutes"}


DATA_INFO = "data_info.json"  # what predict needs of the dataset, without the dataset


def build_task(c: ml_collections.ConfigDict, data: inputs_lib.Data) -> tasks.Task:
    """The config's task, checked against the config and the data; UserError if it does not fit."""
    task = tasks.create(c, data.info)
    task.check()
    config_lib.best_checkpoint(c, task)
    if task.eval_sizes_vary() and jax.process_count() > 1:
        raise UserError(f"task {task.name} evaluates whole images of different sizes, which runs "
                        "on one process; train with --distributed, then `launch.py eval` on one")
    return task


def build_model(c: ml_collections.ConfigDict, task: tasks.Task) -> nnx.Module:
    """The config's network, after checking that its output is what the task learns from."""
    try:
        spec = models.spec(c.model.name)
    except models.UnknownModelError as err:
        raise UserError(str(err)) from None
    if spec.output != task.model_output:
        raise UserError(f"model {c.model.name!r} outputs {spec.output} but task {task.name} needs "
                        f"{task.model_output}; choose a {task.model_output} network "
                        "(`launch.py models` lists each network's output)")
    options = config_lib.model_options(c)
    try:
        model = models.create(c.model.name, seed=c.seed, **task.model_kwargs(), **options)
    except (TypeError, ValueError) as err:  # an option the factory lacks, or a bad value
        raise UserError(f"model {c.model.name!r} rejected options {options}: {err}") from None
    task.check_model(c.model.name, model)
    group = c.train.bn_group_size  # ghost BatchNorm: statistics per group of examples
    if group and not use_ghost_batch_norm(model, group):
        raise UserError(f"train.bn_group_size={group} but {c.model.name} has no BatchNorm layer; "
                        "use 0, or a network with BatchNorm (e.g. --config.model.norm=batch)")
    if c.train.get("remat") and not remat.enable(model):
        raise UserError(f"train.remat is on but {c.model.name} has no rematerialisable block "
                        "(ResNets, DenseNets and GoogLeNet have); turn it off")
    return model


def initial_state(task: tasks.Task, model: nnx.Module, tx, seed: int):
    """(defs, state) at step 0 of a built `model`: the task's own (several players), else the
    one model's. Training does not call it eagerly but through `create_state`."""
    own = task.create_state(model, tx, seed)
    if own:
        return own
    defs, state = state_lib.create(model, tx, seed)
    return defs, state.replace(loss_scale=precision.initial_loss_scale(task.c.train.dtype))


def create_state(c: ml_collections.ConfigDict, task: tasks.Task, data: inputs_lib.Data, tx,
                 mesh):
    """(defs, state) at step 0, created already sharded over `mesh` (training/sharded_init.py):
    the network is built, fitted to the data and split inside the jitted initialisation, so it
    is never whole on one device."""
    images = functools.cache(lambda: data_init.fit_images(data.train_source, task.decode))

    def build():
        model = build_model(c, task)
        if data.train_source is not None:
            data_init.fit_with(model, images)  # airbench's whitening, from the data
        return initial_state(task, model, tx, c.seed)

    return sharded_init.create(build, mesh)


def cached_step(step, kind: str, c: ml_collections.ConfigDict, data: inputs_lib.Data):
    """`step` (jitted), loaded whole on a second launch of the same run, untraced
    (training/executable_cache.py), under a key of its kind, the config and the dataset."""
    return executable_cache.cached(step, compile_cache.executables_dir(),
                                   f"{kind}\n{c.to_json()}\n{data.info!r}")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def check_resumable(workdir: Path, c: ml_collections.ConfigDict) -> bool:
    """True when `workdir` holds a run to resume; raises if it holds something else."""
    if not workdir.exists():
        return False
    # A run stopped before it wrote its config leaves only its lock and an empty checkpoints/.
    entries = {p.name for p in workdir.iterdir()} - {RunLock.FILE}
    if not entries or (entries == {"checkpoints"} and not any((workdir / "checkpoints").iterdir())):
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


def evaluate(eval_step, state, inputs: inputs_lib.Inputs, task: tasks.Task, c,
             mesh) -> dict[str, float]:
    totals = metrics.total([eval_step(state, mesh_lib.global_batch(batch, mesh))
                            for batch in inputs.eval_batches()])
    return {f"{c.eval.prefix}/{k}": v for k, v in task.finalize(totals).items()}


def build_inputs(c: ml_collections.ConfigDict, data: inputs_lib.Data, task: tasks.Task,
                 devices: int) -> inputs_lib.Inputs:
    train_example = task.train_example if task.prepares_train_examples() else None
    return inputs_lib.build_inputs(c, data, decode=task.decode, train_example=train_example,
                                   eval_example=task.eval_example, multiple=devices,
                                   eval_sizes_vary=task.eval_sizes_vary())


def compile_steps(task: tasks.Task, defs, tx, mesh, state=None):
    """(train step, eval step), jitted over `mesh` with `state` placed by the sharding rules:
    the task's own, or the generic ones."""
    steps = task.make_steps(defs, tx) or (
        step_lib.make_task_train_step(defs, tx, task, skip_nonfinite=task.c.train.skip_nonfinite),
        step_lib.make_task_eval_step(defs, task))
    options = conv_lowering.compiler_options_for(task.c.model.name)  # the network's own
    return (mesh_lib.compile_train_step(steps[0], mesh, state, options),
            mesh_lib.compile_eval_step(steps[1], mesh, state, options))


def _announce(progress, c, state, data: inputs_lib.Data, inputs: inputs_lib.Inputs,
              mesh, workdir: Path, resumed_at: int | None) -> None:
    """The run's opening lines: task, network, devices and mesh, directory; a GPU JAX does not
    use; how labels were read and class counts, when known."""
    progress.message(f"{c.task.name}, {c.model.name}: {state_lib.count_params(state.params):,} "
                     f"parameters, {distributed.devices_line()}, mesh {dict(mesh.shape)}, "
                     f"run directory {workdir}"
                     + (f", resumed at step {resumed_at}" if resumed_at is not None else ""))
    if (warning := distributed.gpu_unused_warning()) is not None:
        progress.message(warning)
    if data.info.description:
        progress.message(data.info.description)
    if inputs.class_counts is not None:
        progress.message("train examples per class: " + " ".join(
            f"{k}:{n}" for k, n in enumerate(inputs.class_counts))
            + ("  (sampled balanced)" if c.data.balance else ""))


@dataclasses.dataclass
class Built:
    """What a run trains with, before anything is written: data, task, state at step 0 (or the
    transfer source's weights), the compiled steps and the input streams."""
    data: inputs_lib.Data
    task: tasks.Task
    defs: object
    state: object
    train_step: object
    eval_step: object
    inputs: inputs_lib.Inputs
    val_inputs: inputs_lib.Inputs | None


def build_run(c: ml_collections.ConfigDict, mesh) -> Built:
    """Everything `train` needs from the config, checked and built, nothing yet written."""
    distributed.prepare_data_once(c)
    data = inputs_lib.open_data(c)
    data, val_source = callbacks.carve_validation(c, data)  # data.val_split
    task = build_task(c, data)
    tx = optim.make_optimizer(c)
    defs, state = create_state(c, task, data, tx, mesh)
    defs, state = transfer.prepare(c, defs, state)  # init_from, new_head, frozen layers
    if c.model.get("init_from"):  # the source's weights arrive on the host: placed by the rules
        state = mesh_lib.put_state(state, mesh)
    train_step, eval_step = compile_steps(task, defs, tx, mesh, state)
    train_step, eval_step = cached_step(train_step, "train", c, data), cached_step(
        eval_step, "eval", c, data)
    inputs = build_inputs(c, data, task, mesh.devices.size)
    val_inputs = None if val_source is None else build_inputs(
        c, dataclasses.replace(data, train_source=None, eval_source=val_source), task,
        mesh.devices.size)
    return Built(data, task, defs, state, train_step, eval_step, inputs, val_inputs)


def train(c: ml_collections.ConfigDict, workdir: Path, *, stop_after: int | None = None,
          show_progress: bool = True) -> dict:
    """Trains (or resumes) the run in `workdir`; returns the summary written there."""
    started = time.perf_counter()
    mesh = mesh_lib.make_mesh(c.mesh.to_dict())
    config_lib.validate(c, mesh_lib.batch_devices(mesh))
    transfer.adopt_source_options(c)  # model.init_from: the source run's network
    check_workdir(workdir)
    resume = check_resumable(workdir, c)
    # An existing directory is locked before anything is built, so a second launch on a run in
    # progress is refused at once; a new one is locked when it is created, below.
    lock = RunLock(workdir).acquire() if workdir.is_dir() else None
    built = build_run(c, mesh)
    data, task, defs, state, inputs = built.data, built.task, built.defs, built.state, built.inputs
    train_step, eval_step, val_inputs = built.train_step, built.eval_step, built.val_inputs
    train_iter = inputs.train_iter

    workdir.mkdir(parents=True, exist_ok=True)
    lock = lock or RunLock(workdir).acquire()  # released at the end; by the kernel at death
    best_metric, best_mode = config_lib.best_checkpoint(c, task)
    stopper = callbacks.early_stopping(c, best_metric, best_mode)
    ckpt = checkpoint.manager(workdir / "checkpoints", keep=c.checkpoint.keep,
                              best_metric=best_metric, best_mode=best_mode)
    resumed_at = None
    if resume and ckpt.latest_step() is not None:
        state, data_state, _ = checkpoint.restore_latest(ckpt, state)
        train_iter.set_state(callbacks.unpack(data_state, stopper))
        resumed_at = int(state.step)
    first = int(state.step)
    last = c.train.steps if stop_after is None else min(c.train.steps, stop_after)
    last = first if stopper.stopped else last  # it had stopped early before this resume
    # A run stopped after its last checkpoint but before its summary was written is finished
    # now (evaluated and recorded, no step trained); any other run with nothing to train is
    # left as it is.
    unrecorded = (last == c.train.steps or stopper.stopped) and not (
        workdir / "summary.json").exists()
    if first >= last and not unrecorded:
        ckpt.close()
        lock.release()
        return _already_trained(workdir, first, show_progress)
    is_main = jax.process_index() == 0
    run_record = record.RunRecord(workdir, writer_enabled=is_main)
    run_record.start(c.to_json(indent=2), resumed_at)
    run_record.write_json(DATA_INFO, dataclasses.asdict(task.info))
    progress = ProgressReporter(c.train.steps, resumed_at or 0, enabled=show_progress and is_main)
    _announce(progress, c, state, data, inputs, mesh, workdir, resumed_at)

    def eval_all(state):
        values = evaluate(eval_step, state, inputs, task, c, mesh)
        if val_inputs is not None:
            values.update(callbacks.as_validation(
                evaluate(eval_step, state, val_inputs, task, c, mesh), c.eval.prefix))
        return values

    def run_eval(step_number, state):
        values = eval_all(state)
        if is_main:
            task.eval_pictures(defs, state, workdir, step_number)
        run_record.log(step_number, values)
        progress.message(f"step {step_number}  {fmt(values)}")
        return values

    clock = _ThroughputClock(c.train.batch_size)
    watch = HealthWatch(state.params, skip_nonfinite=c.train.skip_nonfinite
                        or getattr(state, "loss_scale", None) is not None)  # float16 overflows
    schedule = optim.make_schedule(c)
    saved_at = time.monotonic()
    pending, train_values, eval_values = [], {}, {}  # steps' metric sums since the last log
    with StopRequest() as stop, _close_on_error(ckpt, lock):
        for step_number in range(first + 1, last + 1):
            state, sums = train_step(state, mesh_lib.global_batch(next(train_iter), mesh))
            if HEALTH in sums:
                watch.add(step_number, sums.pop(HEALTH))
            pending.append(sums)
            if step_number == first + 1:
                clock.compiled(step_number, sums)
                if is_main:  # for pictures_of_run; not before: tracing needs the GIL
                    plots.import_in_background()
            stopping = stop.signal_name is not None
            at_end = step_number == last
            log_now = step_number % c.train.log_every_steps == 0 or at_end or stopping
            eval_now = (step_number % c.eval.every_steps == 0 or at_end) and not stopping
            save_now = (step_number % c.checkpoint.every_steps == 0 or at_end or stopping
                        or _minutes_since(saved_at) >= (c.checkpoint.every_minutes or float("inf")))
            if log_now or eval_now or save_now:
                health = watch.check()  # before anything is evaluated or saved from bad weights
            if log_now:
                totals, pending = metrics.total(pending), []
                train_values = {f"train/{k}": v for k, v in task.finalize(totals).items()}
                train_values.update(clock.lap(step_number), **health,
                                    **{"train/lr": float(schedule(step_number - 1))})
                train_values.update(callbacks.lr_scale(state.opt_state))
                run_record.log(step_number, train_values)
                progress.update(step_number, train_values)
            if eval_now:
                with clock.paused():
                    eval_values = run_eval(step_number, state)
                # Keep-best: a new best (or the stop) is checkpointed now.
                save_now = stopper.update(step_number, eval_values) or stopper.stopped or save_now
            if save_now:
                with clock.paused():
                    # Only evaluated checkpoints carry metrics, so only they compete for best.
                    data_state = callbacks.pack(train_iter.get_state(), stopper)
                    checkpoint.save(ckpt, step_number, state, data_state,
                                    json.loads(c.to_json()),
                                    stopper.ranked(eval_values if eval_now else None, step_number))
                saved_at = time.monotonic()
            if stopping or stopper.stopped:
                break
    ckpt.wait_until_finished()
    if stopper.stopped and c.early_stopping.restore_best:
        state = checkpoint.restore_state(ckpt, stopper.best_step, state)
        eval_values = eval_all(state)
    if first >= last and not eval_values:  # the unrecorded run: no step, so no eval yet
        eval_values = eval_all(state)
    ckpt.close()
    if stop.signal_name is not None:
        progress.close()
        lock.release()
        print(f"{stop.signal_name}: stopped after step {step_number} with a checkpoint there; "
              f"resume with the same command (--workdir {workdir})", file=sys.stderr)
        return {"steps": step_number, "stopped_by": stop.signal_name}
    progress.close()

    summary = {
        "model": c.model.name, "dataset": c.data.name, "steps": int(state.step),
        "final_metrics": {k: v for k, v in {**train_values, **eval_values}.items() if "/" in k},
        "params": state_lib.count_params(state.params),
        "params_sha256": record.params_sha256(state.params),
        "wall_time_s": time.perf_counter() - started, **clock.totals(),
        "devices": mesh.devices.size, "resumed_at": resumed_at,
        **stopper.summary(),  # early stopping: where it stopped, the best step restored
    }
    if is_main:
        pictures_of_run(workdir, task, defs, state, inputs)
    run_record.finish(summary)
    lock.release()
    progress.message(f"done: {summary['steps']} steps in {summary['wall_time_s']:.1f} s; "
                     f"{fmt(eval_values)}")
    return summary


def _already_trained(workdir: Path, step: int, show_progress: bool) -> dict:
    if show_progress:
        print(f"{workdir} is already at step {step}; nothing to train", file=sys.stderr)
    done = workdir / "summary.json"
    return json.loads(done.read_text()) if done.exists() else {"steps": step}


def _minutes_since(t: float) -> float:
    return (time.monotonic() - t) / 60


@contextlib.contextmanager
def _close_on_error(ckpt, lock: RunLock):
    """On an exception in the loop (a non-finite step), let the checkpoints already being
    written finish, so the last good one is complete, and free the run directory."""
    try:
        yield
    except BaseException:
        ckpt.wait_until_finished()
        ckpt.close()
        lock.release()
        raise


def pictures_of_run(workdir: Path, task: tasks.Task, defs, state, inputs) -> None:
    """`curves.png` from the metrics logged so far and `samples.png` of the first eval batch."""
    plots.curves(workdir / "metrics.jsonl", workdir / "curves.png")
    samples_picture(workdir / "samples.png", task, defs, state, inputs)
    task.final_pictures(defs, state, workdir)


def samples_picture(path: Path, task: tasks.Task, defs, state, inputs) -> None:
    batch = next(iter(inputs.eval_batches()))
    real = min(8, int(batch["mask"].sum()))  # padding sits at the end of a batch
    keep = {k: v[:real] for k, v in batch.items()}
    outputs = step_lib.make_outputs_fn(defs, task)(jax.device_get(state), keep)
    task.samples_figure(keep, jax.device_get(outputs), path)


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
        self.startup_s = None

    def compiled(self, step_number: int, first_sums) -> None:
        jax.block_until_ready(first_sums)
        self._mark = time.perf_counter()
        self._mark_step = step_number
        self.compile_s = self._mark - self._start
        self.startup_s = _seconds_since_process_start()

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
        return {"startup_s": self.startup_s, "compile_s": self.compile_s,
                "train_time_s": self.train_s,
                "steps_per_s": steps_per_s, "examples_per_s": steps_per_s * self.batch_size}


def _seconds_since_process_start() -> float | None:
    """From the command's start (imports included) to now: a launch's start-up, the figure a
    warm compilation cache shortens; None where the platform does not say.

    On Linux from the kernel's own clocks: the process's start in clock ticks since boot
    (/proc/self/stat) against CLOCK_BOOTTIME, good to 10 ms. psutil's create_time adds the
    boot time, which /proc/stat gives in whole seconds, so its figure was up to 1 s long."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, after pid and name
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, AttributeError, ValueError, IndexError):
        pass
    try:
        return time.time() - psutil.Process().create_time()
    except psutil.Error:
        return None
