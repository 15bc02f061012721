"""Plain against residual at the same depth (He et al. 2016, Fig. 6): does a deeper plain net
train worse, and do shortcuts fix it? The CIFAR ResNets of 20 and 56 layers, at half width
(8-16-32 channels), with and without their identity shortcuts (`model.plain=True`), on the 32x32
digits, SGD with momentum and BatchNorm as in the paper, the same steps for all four.

Command:  uv run launch.py sweep --config experiments/plain_vs_residual.py --workdir runs/plain_vs_residual
          uv run launch.py report runs/plain_vs_residual --baseline name=resnet20_cifar,plain=False
Result:   seed 0, 400 steps, test accuracy on the 360 test digits (2-core CPU, shared):
            resnet20_cifar  (67,906 params)   98.89%  test loss 0.043, train loss 0.0065
            plain-20        (67,906 params)   98.06%  test loss 0.050, train loss 0.0067
          (zero-padding shortcuts have no parameters, so the twins count the same). At 20 layers
          both train equally well and the shortcuts buy 0.8 points of test accuracy (3 digits).
          The 56-layer pair, where He et al. see plain nets train worse, was not finished in the
          session that wrote this: resnet56_cifar had 94.72% test accuracy at step 200.
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
