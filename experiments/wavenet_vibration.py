"""A WaveNet models the vibration signals sample by sample: how many bits per sample?

Asks: how well does a WaveNet (models/wavenet.py: 2 stacks of dilations 1 ... 512, a receptive
field of 2,048 samples, gated units, residual and skip connections, 256-way mu-law softmax)
predict each sample of the embedded `vibration` signals (data/vibration.py, peak-normalised,
mu-law coded) from the ones before it, trained with teacher forcing? Metric: test NLL in bits
per sample over the 400 test signals (8 bits = a uniform guess). And how much faster is
generation with per-layer activation queues (Paine et al. 2016) than recomputing the
receptive field for every sample, for identical samples?

Command:  uv run launch.py train --config experiments/wavenet_vibration.py --workdir runs/wavenet
          uv run launch.py generate --workdir runs/wavenet --n 2048 --out generated.npz \
              --plot docs/wavenet_vibration_generated.png --compare
Result:   (measured below)
"""

import tasks
from training.config import base_config


def get_config():
    c = base_config()
    tasks.configure(c, "next_sample")
    c.task.segment = 1024
    c.model.name = "wavenet"
    c.model.residual_channels = 16
    c.model.gate_channels = 16
    c.model.skip_channels = 32
    c.data.name = "vibration"
    c.data.cache = True
    c.train.steps = 400
    c.train.batch_size = 8
    c.train.log_every_steps = 50
    c.optimizer.name = "adam"
    c.optimizer.lr = 3e-3
    c.schedule.name = "cosine"
    c.schedule.warmup_steps = 20
    c.eval.every_steps = 200
    c.eval.batch_size = 40
    c.checkpoint.every_steps = 200
    return c
