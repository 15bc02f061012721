"""LeNet-5 (LeCun et al. 1998) on the embedded digits set: the default experiment.

Asks: does the paper's network, on digits resized from 8x8 to its 32x32 input, train to
>= 98.5% test accuracy in seconds on two CPU cores?

Command:  uv run launch.py train
Result:   (filled in from a measured run)
"""

from training.config import base_config


def get_config():
    c = base_config()
    c.model.name = "lenet5"
    c.model.act = "lecun_tanh"   # the paper's scaled tanh, 1.7159 tanh(2a/3)
    c.model.pool = "avg"         # S2/S4 subsampling (without the paper's trainable coefficients)
    c.data.name = "digits"
    c.data.image_size = 32
    c.data.cache = True          # 1,797 tiny images: decode and resize once
    c.train.steps = 600
    c.train.batch_size = 64
    c.train.log_every_steps = 50
    c.optimizer.name = "adam"
    c.optimizer.lr = 3e-3
    c.schedule.name = "cosine"
    c.schedule.warmup_steps = 30
    c.eval.every_steps = 200
    c.checkpoint.every_steps = 600
    return c
