"""A trained run opened for analysis: its network in inference mode, its preprocessing, and
its eval set as arrays. Opening never writes (training/run_dir.py does the restoring)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from flax import nnx

from analysis import taps


@dataclasses.dataclass
class Run:
    workdir: Path
    config: object
    task: object
    info: object           # data/inputs.py:DataInfo (classes, channels)
    model: nnx.Module      # inference mode
    step: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) the network was trained on."""
        d = self.config.data
        side = d.image_size + 2 * d.pad
        return (side, side, self.info.in_channels)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names or tuple(str(k) for k in range(self.info.num_classes))

    def read_image(self, path: Path) -> np.ndarray:
        """A user's image file as the run's own preprocessing gives it to the network."""
        from data import image_files

        image = image_files.read_for_model(Path(path), self.info.in_channels)
        if hasattr(self.task, "predict_input"):
            return np.asarray(self.task.predict_input(image), np.float32)
        return np.asarray(self.task.decode({"image": image})["image"], np.float32)

    def eval_set(self, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of the run's eval split, decoded as in evaluation, in order."""
        from data import inputs, pipeline

        data = inputs.open_data(self.config, train=False)
        ds = pipeline.decoded(data.eval_source, prepare=self.task.decode,
                              cache=False)
        n = len(ds) if limit is None else min(limit, len(ds))
        examples = [ds[i] for i in range(n)]
        return (np.stack([e["image"] for e in examples]).astype(np.float32),
                np.array([int(e["label"]) for e in examples], np.int32))


def open_run(workdir: str | Path, checkpoint: str = "best") -> Run:
    from training import run_dir

    workdir = Path(workdir)
    run = run_dir.open_trained(workdir, checkpoint)
    c, task, info, step = run.config, run.task, run.info, run.step
    model = taps.inference(run.model)
    return Run(workdir, c, task, info, model, step)
