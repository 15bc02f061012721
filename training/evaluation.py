"""Evaluating a trained run: its state restored, its eval step compiled over the mesh, one pass
over an eval set. The same computation as the evaluation inside `launch.py train`."""

from __future__ import annotations

from pathlib import Path

from data import inputs as inputs_lib
from training import config as config_lib, loop, mesh as mesh_lib, optim, run_dir


def evaluate_run(workdir: Path, c, which: str, samples: Path | None = None):
    """(metrics, checkpoint step) of the run in `workdir`, with its config `c` (data and eval
    fields possibly overridden), on c's eval set; with `samples`, the task's picture of the
    first eval examples there."""
    mesh = mesh_lib.make_mesh(c.get("mesh", {}) and c.mesh.to_dict())
    config_lib.validate(c, mesh_lib.batch_devices(mesh))
    data = inputs_lib.open_data(c, train=False)
    task = loop.build_task(c, data)
    defs, state, step = run_dir.restore(workdir, c, task, which)
    state = mesh_lib.put_state(state, mesh)
    _, eval_step = loop.compile_steps(task, defs, optim.make_optimizer(c), mesh, state)
    inputs = loop.build_inputs(c, data, task, mesh.devices.size)
    values = loop.evaluate(eval_step, state, inputs, task, c, mesh)
    if samples is not None:
        loop.samples_picture(samples, task, defs, state, inputs)
    return values, step
