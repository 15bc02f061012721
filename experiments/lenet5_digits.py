"""LeNet-5 (LeCun et al. 1998) on the embedded digits set: the default experiment.

Asks: does the paper's network, on the paper's input layout (the character inside a 32x32 field
with a blank margin) and with small random warps of the digits, reach >= 98.5% test accuracy
on the 360 held-out digits in seconds on two CPU cores?

The 8x8 digits are resized to 24x24 and padded by 4 to 32x32, as LeCun et al. padded 20x20
MNIST characters so that strokes reach the centre of C5's receptive fields. Without the warps
the net overfits (100% train, 96.7-97.2% test over two seeds); with them it generalises.

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
    c.data.image_size = 24
    c.data.pad = 4               # 24 + 2*4 = the paper's 32x32 input
    c.data.cache = True          # 1,797 tiny images: decode and resize once
    # No flips: a mirrored digit is another symbol. Warps run in the compiled step.
    c.data.device_augment = "affine(degrees=10, translate=0.08, scale=0.1)"
    c.train.steps = 800
    c.train.batch_size = 64
    c.train.log_every_steps = 50
    c.optimizer.name = "adam"
    c.optimizer.lr = 3e-3
    c.schedule.name = "cosine"
    c.schedule.warmup_steps = 30
    c.eval.every_steps = 400
    c.checkpoint.every_steps = 800
    return c
