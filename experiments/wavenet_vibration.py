"""A WaveNet models the vibration signals sample by sample: how many bits per sample?

Asks: how well does a WaveNet (models/wavenet.py: 2 stacks of dilations 1 ... 512, a receptive
field of 2,048 samples, gated units, residual and skip connections, 256-way mu-law softmax)
predict each sample of the embedded `vibration` signals (data/vibration.py, peak-normalised,
mu-law coded) from the ones before it, trained with teacher forcing? Metric: test NLL in bits
per sample over the 400 test signals (8 bits = a uniform guess). And how much faster is
generation with per-layer activation queues (Paine et al. 2016) than recomputing the
receptive field for every sample, for identical samples?

Command:  uv run launch.py train --config experiments/wavenet_vibration.py --workdir runs/wavenet
          uv run launch.py generate --workdir runs/wavenet --n 1536 --count 2 --prime eval \
              --prime-samples 512 --compare --out generated.npz \
              --plot docs/wavenet_vibration_generated.png
Result:   test NLL 6.818 bits per sample at step 400 (6.844 at 200), 55,152 parameters, seed 0;
          459 s wall on the 2-core CPU shared with several other jobs (load average ~25,
          1.2-1.4 steps/s); rerun from scratch under a heavier load (1,061 s) it gave the same
          6.8184.
          References on the same 400 test signals (data/vibration.py:reference_bits, from
          the generator): a uniform guess 8 bits; the train set's code histogram 7.404 bits; an
          oracle that knows each signal's noise-free waveform, strike times included, and its
          Gaussian noise 6.580 bits, a floor no causal model reaches (the noise is white and
          a strike's arrival is uncertain). The net thus takes 0.59 of the 0.82 bits between
          the histogram and the oracle. docs/wavenet_vibration_samples.png: test signals and
          the net's one-step predictions (it follows the shaft harmonics and rings with each
          strike once it has started).
          Generation (the second command; 2 signals, each 1,536 samples after a 512-sample
          prime from a test signal, so the naive window is the full 2,047): queued 13.8 s,
          naive 56.6 s, compilation included, identical samples;
          docs/wavenet_vibration_generated.png shows them (they carry on the shaft rotation
          with noise around it). benchmarks/wavenet_generation.py times the two after
          compilation, for 2,048 samples with this net's shape: naive 29.0 s, queued 0.244 s,
          118.9x faster, identical samples.
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
