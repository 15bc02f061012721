"""The Task seam (DESIGN.md §9): what is learned, apart from how it is trained.

A task says what a batch holds, how an example is prepared on the host, what the loss is, which
metrics it reports and how they are reduced, what the end-of-run picture shows and what
`launch.py predict` writes. The loop, checkpoints, sharding, sweeps and reports know a task only
through this interface. One-player tasks inherit the generic train and eval steps
(training/step.py); a task with several players (a GAN) overrides `create_state` and
`make_steps` and owns its step and state.

Host side (Grain, NumPy):  decode(record) -> example
                           train_example(example, rng) -> example   (augment, patch, degrade)
                           eval_example(example, index) -> example  (deterministic per index)
Device side (jitted):      loss(model, batch, key) -> (loss, outputs)
                           eval_outputs(model, batch) -> outputs
                           metric_sums(outputs, batch, mask) -> {name: summed array}
Host, once per eval:       finalize(totals) -> {name: float}

A metric of the whole eval set that is no sum (detection's mAP, retrieval's recall@k) asks for
per-example rows with `gather(outputs, batch)`: the eval step returns them (with the batch's
`mask`) under GATHERED beside the sums, the host keeps every batch's rows, and `finalize` reads
them, padding removed, with `gathered(totals)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from data.inputs import DataInfo  # tasks.DataInfo: what a task knows of its data
from errors import UserError


class Task:
    """The interface, with the defaults a one-player task inherits."""

    name: str = ""
    model_output: str = ""            # models.ModelSpec.output the task needs
    default_metric: str = "loss"      # the best-checkpoint metric, without the prefix
    default_mode: str = "min"
    options: dict = {}                # the task's own config fields beyond training/config.py's
                                      # shared ones, with defaults (tasks.configure adds them)

    def __init__(self, c: ml_collections.ConfigDict, info: DataInfo):
        self.c, self.info = c, info

    @classmethod
    def from_config(cls, c: ml_collections.ConfigDict, info: DataInfo) -> "Task":
        return cls(c, info)

    # --- before anything is built -----------------------------------------------------------
    def check(self) -> None:
        """Raises UserError when the config or the data does not fit the task."""

    def metric_names(self) -> list[str]:
        """Every eval metric the task reports, without the prefix (`accuracy`, `iou/3`)."""
        raise NotImplementedError

    def model_kwargs(self) -> dict:
        """What models.create gets beside the config's model options."""
        kwargs = {"in_channels": self.model_channels()}
        if self.info.num_classes is not None:
            kwargs["num_classes"] = self.info.num_classes
        return kwargs

    def model_channels(self) -> int:
        return self.info.in_channels

    def check_model(self, model_name: str, model: Any) -> None:
        """The built model fits the task (its output kind is checked before it is built)."""

    # --- host side ----------------------------------------------------------------------------
    def decode(self, record: dict) -> dict:
        raise NotImplementedError

    def train_example(self, example: dict, rng: np.random.Generator) -> dict:
        return example

    def prepares_train_examples(self) -> bool:
        """False when `train_example` returns every example as it is: an in-memory train set
        is then batched by one NumPy gather (data/pipeline.py `memory_batches`)."""
        return type(self).train_example is not Task.train_example

    def eval_example(self, example: dict, index: int) -> dict:
        return example

    def eval_sizes_vary(self) -> bool:
        """True when eval examples differ in size (whole images): batched by shape."""
        return False

    # --- device side ----------------------------------------------------------------------------
    def device_augment(self) -> Callable[[dict, jax.Array], dict] | None:
        """A jittable `(batch, key) -> batch` run in the train step before the loss, or None."""
        return None

    def loss(self, model, batch: dict, key: jax.Array):
        raise NotImplementedError

    def eval_outputs(self, model, batch: dict):
        raise NotImplementedError

    def metric_sums(self, outputs, batch: dict, mask: jax.Array) -> dict:
        raise NotImplementedError

    def gather(self, outputs, batch: dict) -> dict | None:
        """Per-example arrays (leading axis: the batch) a whole-set metric needs, computed in the
        eval step and kept on the host for `finalize`; None (the default) gathers nothing."""
        return None

    def finalize(self, totals: dict) -> dict[str, float]:
        """{name: value} from the sums of a whole pass (and its `gathered(totals)` rows)."""
        return means(totals)

    # --- steps and state (a several-player task overrides these) -------------------------------
    def create_state(self, model, tx, seed: int):
        """(defs, state) of the task's own making, or None for training/state.py's one model."""
        return None

    def make_steps(self, defs, tx):
        """(train_step, eval_step) of the task's own making, pure and not yet compiled, or None
        for training/step.py's generic ones (one model, one optimizer)."""
        return None

    # --- pictures and predictions -------------------------------------------------------------
    def samples_figure(self, batch: dict, outputs, path: Path) -> None:
        """`samples.png`: input, target and prediction for a few eval examples."""

    def eval_pictures(self, defs, state, directory: Path, step: int) -> None:
        """Pictures drawn into the run directory at every evaluation (a GAN's sample grid)."""

    def final_pictures(self, defs, state, directory: Path) -> None:
        """Pictures drawn once at the end of a run, beside `samples.png` (a GAN's latent
        interpolation)."""

    def input_paths(self, path: str | Path) -> list[Path]:
        """The files `launch.py predict --input PATH` names: an image or a folder of images."""
        from data import image_files

        return image_files.input_paths(path)

    def read_input(self, path: Path) -> np.ndarray:
        """One input file as `check_input` and `predict` take it: uint8 HWC, grey or colour as
        the run's network was trained on."""
        from data import image_files

        return image_files.read_for_model(path, self.info.in_channels)

    def check_input(self, model, image: np.ndarray, path: Path) -> None:
        """Raises UserError when `image` (from `read_input`) cannot go through the network."""

    def predict(self, model, paths: list[Path], out: Path) -> list[Path]:
        """Writes the task's predictions for the images at `paths` into the existing folder
        `out`, with `model` (eval mode); returns the files written."""
        raise UserError(f"task {self.name!r} has no predict")

    # --- helpers for subclasses -----------------------------------------------------------------
    def require(self, ok: bool, message: str) -> None:
        if not ok:
            raise UserError(message)


GATHERED = "gathered"  # the key of a pass's gathered rows in an eval step's output and totals
HEALTH = "_health"     # the key of a train step's sums that holds its `step_health` scalars


def step_health(loss: jax.Array, grads) -> dict:
    """What the loop watches (training/health.py) in every train step, the generic one and a
    task's own: is the loss finite, which gradient leaf (in `jax.tree.leaves` order, that of
    the state's params) is the first non-finite one (-1 for none), and the global norm."""
    finite = jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)])
    return {"loss_finite": jnp.isfinite(loss),
            "bad_leaf": jnp.where(jnp.all(finite), -1, jnp.argmin(finite)),
            "grad_norm": optax.tree.norm(grads)}


def gathered(totals: dict) -> dict[str, np.ndarray]:
    """The rows `Task.gather` returned over a whole pass, concatenated on the host, with the
    padded examples' rows removed."""
    batches = jax.device_get(totals[GATHERED])
    rows = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    real = rows.pop("mask").astype(bool)
    return {k: v[real] for k, v in rows.items()}


def means(totals: dict) -> dict[str, float]:
    """Means from (sum, count) pairs: every key but `count` divided by `count`, once, on the
    host (Scenic's rule: neither padding nor the device count biases a mean)."""
    host = {k: np.asarray(v, np.float64) for k, v in jax.device_get(totals).items()
            if k not in (GATHERED, HEALTH)}
    count = host.pop("count")
    return {k: float(v / count) for k, v in host.items()}
