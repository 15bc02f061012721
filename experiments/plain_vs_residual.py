"""Plain against residual at the same depth (He et al. 2016, Fig. 6): does a deeper plain net
train worse, and do shortcuts fix it? The CIFAR ResNets of 20 and 56 layers, at half width
(8-16-32 channels), with and without their identity shortcuts (`model.plain=True`), on the 32x32
digits, SGD with momentum and BatchNorm as in the paper, the same steps for all four.

Command:  uv run launch.py sweep --config experiments/plain_vs_residual.py --workdir runs/plain_vs_residual
          uv run launch.py report runs/plain_vs_residual --baseline name=resnet20_cifar,plain=False
Result:   RESULT
"""

from training.config import base_config
from training.sweep import grid


def get_config():
    c = base_config()
    c.model.name = "resnet20_cifar"
    c.model.plain = False
    c.model.width = 0.5
    c.data.name = "digits"
    c.data.image_size = 32
    c.data.cache = True
    c.train.steps = 400
    c.train.batch_size = 64
    c.train.log_every_steps = 25
    c.optimizer.name = "sgd"
    c.optimizer.momentum = 0.9
    c.optimizer.lr = 0.05
    c.optimizer.weight_decay = 1e-4
    c.schedule.name = "cosine"
    c.schedule.warmup_steps = 20
    c.eval.every_steps = 200
    c.checkpoint.every_steps = 400
    return c


def get_sweep():
    return grid({"model.name": ["resnet20_cifar", "resnet56_cifar"], "model.plain": [False, True]})
