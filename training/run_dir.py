"""A finished (or stopped) run directory, opened again: its config, its task and its trained
state from a chosen checkpoint, for the commands that read a run (eval, predict, embed,
retrieve, sample, generate, probe, analyze).

Opening never writes: a missing or unreadable config or checkpoint is a one-line UserError.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

import tasks
from errors import UserError, one_line
from training import checkpoint, config as config_lib, loop, optim, sharded_init


def load_config(workdir: Path) -> ml_collections.ConfigDict:
    """The run's resolved config, on today's defaults (fields added since keep their default)."""
    path = workdir / "config.json"
    if not path.is_file():
        raise UserError(f"--workdir {workdir} is not a convjax run directory (no config.json); "
                        "give the directory a `launch.py train` run wrote")
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path}: {one_line(err)}; the run record is damaged") from None
    c = config_lib.base_config()
    _merge(c, saved)
    return c


def _merge(node: ml_collections.ConfigDict, saved: dict) -> None:
    with node.unlocked():
        for key, value in saved.items():
            if isinstance(value, dict) and isinstance(node.get(key), ml_collections.ConfigDict):
                _merge(node[key], value)
            else:
                node[key] = tuple(value) if isinstance(value, list) else value


def saved_data_info(workdir: Path) -> tasks.DataInfo | None:
    path = workdir / loop.DATA_INFO
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    return tasks.DataInfo(**{**info, "class_names": tuple(info["class_names"])})


def checkpoint_step(mngr, which: str, workdir: Path) -> int:
    """The step of `best`, `latest` or a step number, among the run's checkpoints."""
    steps = sorted(mngr.all_steps())
    if not steps:
        raise UserError(f"{workdir} has no checkpoint; train it first (`launch.py train "
                        f"--workdir {workdir}`)")
    if which == "latest":
        return steps[-1]
    if which == "best":
        best = mngr.best_step()
        return best if best is not None else steps[-1]
    if not which.isdigit() or int(which) not in steps:
        raise UserError(f"--checkpoint {which!r}: choose best, latest or one of the saved steps "
                        f"{', '.join(map(str, steps))}")
    return int(which)


def restore(workdir: Path, c: ml_collections.ConfigDict, task: tasks.Task, which: str):
    """(defs, state, step) of the run's model at checkpoint `which`, on the host.

    The network is built abstractly (`jax.eval_shape`: nothing initialised, the checkpoint has
    the weights; an eager build of ResNet-50 computed 25.6M random parameters first); the
    state's fields no reader of a trained model uses (optimizer state, keys) are zeros, and its
    step is the checkpoint's."""
    tx = optim.make_optimizer(c)
    defs, state = sharded_init.abstract(
        lambda: loop.initial_state(task, loop.build_model(c, task), tx, c.seed))
    directory = workdir / "checkpoints"
    if not directory.is_dir():
        raise UserError(f"{workdir} has no checkpoint; train it first (`launch.py train "
                        f"--workdir {workdir}`)")
    metric, mode = config_lib.best_checkpoint(c, task)
    mngr = checkpoint.manager(directory, keep=c.checkpoint.keep, best_metric=metric,
                              best_mode=mode)
    try:
        step = checkpoint_step(mngr, which, workdir)
        state = checkpoint.restore_model(mngr, step, state)
    except (ValueError, KeyError, FileNotFoundError) as err:
        raise UserError(f"cannot restore checkpoint {which} of {workdir}: {one_line(err)}; the "
                        "checkpoint does not fit this run's model") from None
    finally:
        mngr.close()
    state = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype)
                         if isinstance(x, jax.ShapeDtypeStruct) else x, jax.device_get(state))
    return defs, state.replace(step=np.asarray(step, np.int32)), step


@dataclasses.dataclass
class Trained:
    """A run opened for use: its config, data info, task and state at checkpoint `step`."""
    config: ml_collections.ConfigDict
    info: tasks.DataInfo
    task: tasks.Task
    defs: Any
    state: Any
    step: int

    @functools.cached_property
    def model(self) -> nnx.Module:
        """The network in eval mode, built from the state (tasks of one model)."""
        return nnx.merge(self.defs.eval, self.state.params, self.state.batch_stats,
                         self.state.rest)


def open_trained(workdir: Path, which: str = "best", *, needs: tuple[str, ...] = (),
                 command: str = "", example: str = "") -> Trained:
    """The run in `workdir` at checkpoint `which`. With `needs`, a run of another task is a
    one-line error saying which task `command` needs (and an `example` experiment)."""
    workdir = Path(workdir)
    c = load_config(workdir)
    if needs and c.task.name not in needs:
        raise UserError(f"--workdir {workdir} is a {c.task.name} run; {command} needs a run of "
                        f"task {' or '.join(needs)}" + (f" (e.g. {example})" if example else ""))
    info = saved_data_info(workdir)
    if info is None:  # a run recorded before data_info.json: read its dataset's metadata
        from data import inputs

        info = inputs.open_data(c, train=False).info
    task = tasks.create(c, info)
    defs, state, step = restore(workdir, c, task, which)
    return Trained(c, info, task, defs, state, step)
