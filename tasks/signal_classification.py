"""Classification of 1-D signals (vibration, audio): softmax cross-entropy on class logits of a
1-D network (models/cnn1d.py), the metrics of image classification (loss, accuracy, top5).

Batch: `signal` (B, T, C) float32, `label` (B,) int32. Records hold `signal` (T, C) (the
embedded `vibration` set, a `signals:DIR` folder); each signal is standardised per channel
(zero mean, unit standard deviation) when `task.standardize`, so a net sees the shape of a
signal rather than its gain. `task.crop` > 0 trains on random windows of that many samples and
evaluates on the centred one (0: whole signals). The image augmentations (`data.augment`,
`train.mix`) do not apply to signals and are refused. `samples.png` draws eval signals with
their true and predicted class.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from data import signal_folder, sources
from errors import UserError
from tasks import base, signal_pictures
from tasks.classification import Classification, cross_entropy


def standardized(x: np.ndarray) -> np.ndarray:
    """Per channel: minus the mean, over the standard deviation (a flat channel stays 0)."""
    x = x - x.mean(axis=0, keepdims=True)
    std = x.std(axis=0, keepdims=True)
    return (x / np.where(std > 0, std, 1.0)).astype(np.float32)


def require_signals(task: base.Task) -> None:
    """A UserError unless the dataset's records hold a `signal`."""
    keys = sources.record_keys(task.info.name, task.c.data.data_dir)
    task.require("signal" in keys, f"task {task.name} needs 1-D signals; dataset "
                 f"{task.info.name!r} has records of {', '.join(keys)} (use "
                 "--config.data.name=vibration or signals:DIR)")


class SignalClassification(Classification):
    name = "signal_classification"
    options = {"standardize": True, "crop": 0}

    @classmethod
    def from_config(cls, c, info: base.DataInfo) -> "SignalClassification":
        return cls(c, info)

    def check(self) -> None:
        super().check()
        require_signals(self)
        d, t = self.c.data, self.c.train
        self.require(not d.augment and not d.device_augment and t.mix == "none",
                     "data.augment, data.device_augment and train.mix are image operations; "
                     "task signal_classification takes none (use task.crop for random windows)")
        self.require(self.c.task.crop >= 0, f"task.crop must be >= 0, got {self.c.task.crop}")

    # --- host -------------------------------------------------------------------------------
    def decode(self, record: dict) -> dict:
        x = np.asarray(record["signal"], np.float32)
        if self.c.task.standardize:
            x = standardized(x)
        return {"signal": x, "label": np.int32(record["label"])}

    def _window(self, example: dict, start: int) -> dict:
        crop = self.c.task.crop
        return {**example, "signal": example["signal"][start:start + crop]}

    def _check_length(self, example: dict) -> None:
        self.require(self.c.task.crop <= len(example["signal"]),
                     f"task.crop={self.c.task.crop} is longer than the signals "
                     f"({len(example['signal'])} samples)")

    def train_example(self, example: dict, rng: np.random.Generator) -> dict:
        if not self.c.task.crop:
            return example
        self._check_length(example)
        start = int(rng.integers(0, len(example["signal"]) - self.c.task.crop, endpoint=True))
        return self._window(example, start)

    def eval_example(self, example: dict, index: int) -> dict:
        if not self.c.task.crop:
            return example
        self._check_length(example)
        return self._window(example, (len(example["signal"]) - self.c.task.crop) // 2)

    # --- device -----------------------------------------------------------------------------
    def device_augment(self):
        return None

    def loss(self, model, batch: dict, key):
        logits = model(batch["signal"])
        per_example = cross_entropy(logits, batch["label"], self.num_classes,
                                    self.label_smoothing)
        return jnp.mean(per_example), {"logits": logits, "per_example": per_example}

    def eval_outputs(self, model, batch: dict):
        logits = model(batch["signal"])
        return {"logits": logits,
                "per_example": cross_entropy(logits, batch["label"], self.num_classes, 0.0)}

    # --- pictures -----------------------------------------------------------------------------
    def samples_figure(self, batch: dict, outputs, path: Path) -> None:
        predicted = np.argmax(np.asarray(outputs["logits"]), axis=-1)
        names = self.info.class_names or tuple(str(k) for k in range(self.num_classes))
        truth = [int(t) for t in batch["label"]]
        titles = [f"true {names[t]}, predicted {names[p]}" for t, p in zip(truth, predicted)]
        signal_pictures.signal_panels(
            list(np.asarray(batch["signal"])), titles, path,
            marked=[t != int(p) for t, p in zip(truth, predicted)],
            title=f"eval signals of {self.info.name}: true and predicted class (red: mistaken)")

    # --- predictions (classification's predictions.csv and logits.npy) ---------------------
    def input_paths(self, path) -> list[Path]:
        return signal_folder.input_paths(path)

    def read_input(self, path: Path) -> np.ndarray:
        return signal_folder.read(path)[0]

    def predict_input(self, signal: np.ndarray) -> np.ndarray:
        """A user's signal as evaluation gives it to the network: standardised, and its centred
        window when the run trained on windows."""
        return self.eval_example(self.decode({"signal": signal, "label": 0}), 0)["signal"]

    def check_input(self, model, signal: np.ndarray, path: Path) -> None:
        self.require(signal.shape[1] == self.info.in_channels,
                     f"{path}: {signal.shape[1]} channel(s), but the run's network takes "
                     f"{self.info.in_channels}; give signals shaped as its training set's")
        self.require(len(signal) >= self.c.task.crop,
                     f"{path}: {len(signal)} samples, shorter than the run's task.crop="
                     f"{self.c.task.crop}; give signals of at least that many samples")
        self.require(self._fits(model, self.c.task.crop or len(signal)),
                     f"{path}: {len(signal)} samples do not fit the run's network; give "
                     "signals as long as its training set's")

    @functools.lru_cache(maxsize=None)  # one trace per length, not per file
    def _fits(self, model, length: int) -> bool:
        """Whether the network takes windows of `length` samples (a flatten head takes one
        length only): asked of a copy of it, abstractly."""
        x = jax.ShapeDtypeStruct((1, length, self.info.in_channels), jnp.float32)
        try:
            jax.eval_shape(lambda x: nnx.merge(*nnx.split(model))(x), x)
        except (TypeError, ValueError):
            return False
        return True
