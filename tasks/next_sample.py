"""Autoregressive next-sample modelling of 1-D signals (WaveNet, models/wavenet.py): every
sample predicted from the ones before it, as a `task.levels`-way softmax over mu-law codes.

Batch: `codes` (B, T+1) int32. Each record's `signal` (channel `task.channel`) is divided by its
peak magnitude, so it spans [-1, 1] (data/mu_law.py:peak_normalised), and mu-law encoded.
Training is teacher-forced: the net reads codes 0..T-1 and is scored on codes 1..T, all
positions in one pass. `task.segment` > 0 trains on random windows of segment+1 codes
(0: whole signals); evaluation always scores whole signals.

Metrics: `loss`, the mean negative log-likelihood per predicted sample in nats, and
`bits_per_sample`, the same in bits (loss / ln 2; 8 bits is a uniform guess over 256 codes).
`samples.png` draws eval signals against the net's one-step prediction (the mean of its
predicted distribution, decoded). New signals come from `launch.py generate` (naive or
queued generation, training/generate_cli.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from data import mu_law
from tasks import base, signal_pictures
from tasks.signal_classification import require_signals


class NextSample(base.Task):
    name = "next_sample"
    model_output = "sample_logits"
    default_metric, default_mode = "bits_per_sample", "min"
    options = {"levels": 256, "segment": 0, "channel": 0}

    def check(self) -> None:
        require_signals(self)
        t = self.c.task
        self.require(0 <= t.channel < self.info.in_channels,
                     f"task.channel={t.channel}, but dataset {self.info.name!r} has "
                     f"{self.info.in_channels} channel(s)")
        self.require(t.levels >= 2, f"task.levels must be at least 2, got {t.levels}")
        self.require(t.segment >= 0, f"task.segment must be >= 0, got {t.segment}")

    def metric_names(self) -> list[str]:
        return ["loss", "bits_per_sample"]

    def model_kwargs(self) -> dict:
        return {"in_channels": 1, "num_classes": self.c.task.levels}

    # --- host -------------------------------------------------------------------------------
    def decode(self, record: dict) -> dict:
        x = mu_law.peak_normalised(np.asarray(record["signal"], np.float32)[:, self.c.task.channel])
        return {"codes": mu_law.encode(x, self.c.task.levels)}

    def train_example(self, example: dict, rng: np.random.Generator) -> dict:
        segment = self.c.task.segment
        codes = example["codes"]
        if not segment:
            return example
        self.require(segment < len(codes), f"task.segment={segment} needs signals of more than "
                     f"{segment} samples; these have {len(codes)}")
        start = int(rng.integers(0, len(codes) - segment - 1, endpoint=True))
        return {"codes": codes[start:start + segment + 1]}

    # --- device -----------------------------------------------------------------------------
    def _nll(self, model, codes: jax.Array):
        logits = model(codes[:, :-1])
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, codes[:, 1:])
        return logits, jnp.mean(nll, axis=-1)  # per example: the mean over its predictions

    def loss(self, model, batch: dict, key: jax.Array):
        _, per_example = self._nll(model, batch["codes"])
        return jnp.mean(per_example), {"per_example": per_example}

    def eval_outputs(self, model, batch: dict):
        logits, per_example = self._nll(model, batch["codes"])
        levels = mu_law.decode(jnp.arange(self.c.task.levels), self.c.task.levels, xp=jnp)
        expected = jax.nn.softmax(logits, axis=-1) @ levels  # decoded mean of each prediction
        return {"per_example": per_example, "expected": expected}

    def metric_sums(self, outputs, batch: dict, mask: jax.Array) -> dict:
        mask = mask.astype(jnp.float32)
        nll = jnp.sum(outputs["per_example"] * mask)
        return {"loss": nll, "bits_per_sample": nll / math.log(2), "count": jnp.sum(mask)}

    # --- pictures -----------------------------------------------------------------------------
    def samples_figure(self, batch: dict, outputs, path: Path) -> None:
        if "expected" not in outputs:
            return
        n = min(4, len(batch["codes"]))
        levels = self.c.task.levels
        real = [mu_law.decode(np.asarray(c[1:]), levels)[:512] for c in batch["codes"][:n]]
        guess = [np.asarray(e)[:512] for e in outputs["expected"][:n]]
        signal_pictures.signal_panels(
            real, [f"eval signal {i} (first 512 samples)" for i in range(n)], path,
            overlays=guess, labels=("signal (mu-law decoded)", "one-step prediction (mean)"),
            title=f"next-sample prediction on {self.info.name}: real and predicted")
