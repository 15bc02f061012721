"""Tasks: what is learned (DESIGN.md §9). `config.task.name` picks one from TASKS, the one
table both the trainer and the config's validation read.

    task = tasks.create(config, info)   # info: tasks.DataInfo of the dataset

A task's own options beyond the shared `task.*` fields of training/config.py are its class's
`options` ({field: default}); an experiment file calls `tasks.configure(c, NAME)`, which names
the task and adds those fields, so the command line can override them (`--config.task.margin=0.5`).
"""

from __future__ import annotations

import importlib

from errors import UserError
from tasks.base import DataInfo, Task

# name -> "module:Class" of a Task subclass. Imported on use, so a run loads only its own task.
TASKS = {
    "classification": "tasks.classification:Classification",
    "segmentation": "tasks.segmentation:Segmentation",
    "super_resolution": "tasks.reconstruction:SuperResolution",
    "denoising": "tasks.reconstruction:Denoising",
    "autoencoder": "tasks.reconstruction:Autoencoder",
    "signal_classification": "tasks.signal_classification:SignalClassification",
    "next_sample": "tasks.next_sample:NextSample",
    "embedding": "tasks.embedding:Embedding",
    "gan": "tasks.gan:GAN",
    "detection": "tasks.detection:Detection",
}


def task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise UserError(f"unknown task.name {name!r}; choose one of {', '.join(TASKS)}")
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def configure(c, name: str) -> None:
    """Sets `c.task.name` and adds the task's own option fields (defaults) that `c.task` lacks."""
    c.task.name = name
    for field, default in task_class(name).options.items():
        if field not in c.task:
            c.task[field] = default


def create(c, info: DataInfo) -> Task:
    return task_class(c.task.name).from_config(c, info)


def headline_metrics(c) -> tuple[str, ...]:
    """What a report shows of a run: the task's own metric and loss on the eval set, and the
    train loss."""
    own = c.checkpoint.best_metric or f"{c.eval.prefix}/{task_class(c.task.name).default_metric}"
    return tuple(dict.fromkeys((own, f"{c.eval.prefix}/loss", "train/loss")))


__all__ = ["DataInfo", "TASKS", "Task", "configure", "create", "headline_metrics", "task_class"]
