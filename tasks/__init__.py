"""Tasks: what is learned (DESIGN.md §9). `config.task.name` picks one from TASKS, the one
table both the trainer and the config's validation read.

    task = tasks.create(config, info)   # info: tasks.DataInfo of the dataset
"""

from __future__ import annotations

import importlib

from errors import UserError
from tasks.base import DataInfo, Task

# name -> "module:factory"; a factory is (config, DataInfo) -> Task. Imported on use, so a run
# loads only its own task.
TASKS = {
    "classification": "tasks.classification:Classification.from_config",
    "segmentation": "tasks.segmentation:Segmentation",
    "super_resolution": "tasks.reconstruction:SuperResolution",
    "denoising": "tasks.reconstruction:Denoising",
    "autoencoder": "tasks.reconstruction:Autoencoder",
}


def create(c, info: DataInfo) -> Task:
    name = c.task.name
    if name not in TASKS:
        raise UserError(f"unknown task.name {name!r}; choose one of {', '.join(TASKS)}")
    module, _, attr = TASKS[name].partition(":")
    factory = importlib.import_module(module)
    for part in attr.split("."):
        factory = getattr(factory, part)
    return factory(c, info)


__all__ = ["DataInfo", "TASKS", "Task", "create"]
