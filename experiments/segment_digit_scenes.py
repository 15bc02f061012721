"""A small FCN segments the embedded digit scenes: which pixels are ink of which digit?

Asks: can a fully convolutional net with the FCN paper's skip fusion (Long et al. 2015; 8s-style
skips from 1/4 and 1/2 resolution, bilinear-initialised learned upsampling) label every pixel
of a 64x64 scene of 1-4 digits as background or one of the ten digit classes, on digits it has
never seen (test scenes use only the digits test split)? Metric: mean IoU over the 11 classes
from one confusion matrix summed over the 500 test scenes.

Command:  uv run launch.py train --config experiments/segment_digit_scenes.py
Result:   test mIoU 0.8949, pixel accuracy 99.24% at step 1500 (0.8254 at 500, 0.8905 at 1000);
          per-class IoU background 0.993, digits 0.849 (8) to 0.913 (7); seed 0, 169,937
          parameters. 1,250 s on a 2-core CPU shared with two other jobs (about 1.2 steps/s).
          docs/segment_digit_scenes_samples.png shows eight test scenes.
"""

from training.config import base_config


def get_config():
    c = base_config()
    c.task.name = "segmentation"
    c.task.loss = "ce"
    c.model.name = "fcn_small"
    c.data.name = "digit_scenes"
    c.data.cache = True
    c.data.augment = ""              # no flips: a mirrored digit is another symbol
    c.train.steps = 1500
    c.train.batch_size = 32
    c.train.log_every_steps = 100
    c.optimizer.name = "adam"
    c.optimizer.lr = 3e-3
    c.schedule.name = "cosine"
    c.schedule.warmup_steps = 50
    c.eval.every_steps = 500
    c.eval.batch_size = 128
    c.checkpoint.every_steps = 500
    return c
