"""DCGAN on the embedded digits at 32x32: does the paper's recipe learn the ten digits?

Asks: with the paper's networks (4x4 stride-2 transposed convolutions, BatchNorm, ReLU and tanh
in the generator; strided convolutions, LeakyReLU 0.2 and BatchNorm but on the first layer in
the discriminator; z of 100), its Adam (2e-4, beta1 0.5) and the non-saturating loss, how close
do generated digits come to the held-out ones (FID with a LeNet-5's features, trained once on
the same digits and cached), and does the generator cover every class? Width 16 instead of the
paper's 64 (32x32 digits upsampled from 8x8 originals need far less), so it trains on a CPU.
`--config.task.loss=minimax|hinge` and `--config.task.conditional=True` (Mirza and Osindero)
are the variants.

Command:  uv run launch.py train --config experiments/dcgan_digits.py --workdir runs/dcgan
          uv run launch.py sample --workdir runs/dcgan --n 64 --out samples.npz --grid samples.png
Result:   test FID 9.97 and coverage 1.00 (all ten classes) at step 3000, on the 360 held-out
          digits; along the way FID 11.83 (step 500), 11.09 (1000), 10.12 (1500), 10.06 (2000),
          9.31 (2500). For scale, with the same LeNet-5 (eval accuracy 0.975, 1000 steps): real
          train digits against the test digits score 1.22, and 360 random train digits 3.02.
          186,290 parameters (generator 143,841, discriminator 42,449). 1,881 s wall, 2.2
          steps/s, on a 2-core CPU shared with many other jobs (load average ~30): far slower
          than the machine alone. docs/dcgan_digits_samples.png (launch.py sample, seed 0) and
          docs/dcgan_digits_interpolation.png are the step-3000 generator's.
"""

import tasks
from training.config import base_config


def get_config():
    c = base_config()
    tasks.configure(c, "gan")
    c.model.name = "dcgan"
    c.model.width = 16
    c.data.name = "digits"
    c.data.image_size = 32
    c.data.cache = True
    c.train.steps = 3000
    c.train.batch_size = 64
    c.train.log_every_steps = 100
    c.optimizer.name = "adam"
    c.optimizer.lr = 2e-4
    c.optimizer.b1 = 0.5
    c.schedule.name = "constant"
    c.eval.every_steps = 500
    c.checkpoint.every_steps = 500
    return c
