"""ESPCN (Shi et al. 2016) at scale 3: 5-3-3, 64/32 filters, tanh, a sub-pixel output layer,
working on the low-resolution Y channel.

Asks: with all its convolutions at low resolution (9x fewer positions than SRCNN's), how does
ESPCN compare with SRCNN (experiments/srcnn_x3.py) and bicubic on Set14 after the same minutes
of training on the embedded photos? Paper: 29.49 dB on Set14 x3 (ImageNet training).

Command:  uv run launch.py train --config experiments/espcn_x3.py --workdir runs/espcn_x3
          uv run launch.py eval --workdir runs/espcn_x3 \
              --config.data.name=images:../shared/datasets/set14 --config.data.eval_split=train
Result:   (filled in below when measured)
"""

from training.config import base_config


def get_config():
    c = base_config()
    c.task.name = "super_resolution"
    c.task.scale = 3
    c.task.channels = "y"
    c.model.name = "espcn"
    c.model.scale = 3
    c.data.name = "photos"
    c.data.patch_size = 51           # 17x17 low-resolution patches, as the paper
    c.data.cache = True
    c.data.augment = "flip_lr"
    c.train.steps = 2000
    c.train.batch_size = 32
    c.train.log_every_steps = 100
    c.optimizer.name = "adam"
    c.optimizer.lr = 1e-3
    c.schedule.name = "cosine"
    c.eval.every_steps = 1000
    c.eval.batch_size = 8
    c.checkpoint.every_steps = 1000
    return c
