"""A 1-D CNN tells bearing faults apart from raw vibration: healthy, inner race, outer race, ball.

Asks: can a WDCNN-style 1-D CNN (models/cnn1d.py: a 32-tap stride-4 first layer, then 3-tap
convolutions with BatchNorm and pooling, 40,392 parameters) classify signals of the embedded
`vibration` set (data/vibration.py: shaft harmonics, fault impulse trains at BPFI, BPFO and
BSF with modulation and noise, speeds 1,700-1,800 rpm) from the raw samples, on 400 test
signals drawn independently of the 2,000 it trains on? It trains on random 1,024-sample
windows of the 2,048-sample signals and is tested on the centred window. Metric: test accuracy.

Command:  uv run launch.py train --config experiments/vibration_1d.py --workdir runs/vibration_1d
Result:   test accuracy 96.00% at step 1500 (94.25% at 500, 95.75% at 1000), test loss 0.123;
          seed 0. 290 s wall on the 2-core CPU shared with several other jobs (load average
          ~25; 8-10 steps/s, 81 s compiling). docs/vibration_1d_samples.png shows eight test
          signals with their predicted class; docs/vibration_classes.png one signal per class
          with its envelope spectrum (drawn by tasks/signal_pictures.py:vibration_classes).
          With the paper's 64-tap stride-16 first layer: on whole signals it overfits, 65.0%
          test against 98.8% on 400 train signals at step 600; with the crop, 76.8% test at
          step 1200 (see models/cnn1d.py).
"""

import tasks
from training.config import base_config


def get_config():
    c = base_config()
    tasks.configure(c, "signal_classification")
    c.model.name = "cnn1d"
    c.data.name = "vibration"
    c.data.cache = True
    c.task.crop = 1024               # random windows: shift invariance, more distinct inputs
    c.train.steps = 1500
    c.train.batch_size = 32
    c.train.log_every_steps = 50
    c.optimizer.name = "adam"
    c.optimizer.lr = 1e-3
    c.schedule.name = "cosine"
    c.schedule.warmup_steps = 30
    c.eval.every_steps = 500
    c.eval.batch_size = 200
    c.checkpoint.every_steps = 500
    return c
