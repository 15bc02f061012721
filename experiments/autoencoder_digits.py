"""A convolutional autoencoder reconstructs the embedded digits through a small code.

Asks: strided convolutions down to a 4x4 code, transposed convolutions back up: how well does
it reconstruct held-out digits (PSNR, SSIM)? With `--config.task.corruption=gaussian` it is the
denoising autoencoder of Vincent et al. 2008 (noisy digit in, clean digit out), and the
baseline metrics then say how noisy the input was.

Command:  uv run launch.py train --config experiments/autoencoder_digits.py
Result:   test PSNR 34.34 dB, SSIM 0.984 at step 1000 (33.14 dB, 0.981 at 500) on the 360
          held-out digits at 32x32; 347,593 parameters, a 4x4x8 code (128 numbers for 1,024
          pixels); 379 s on a 2-core CPU shared with other jobs.
          docs/autoencoder_digits_samples.png shows eight reconstructions.
"""

from training.config import base_config


def get_config():
    c = base_config()
    c.task.name = "autoencoder"
    c.task.channels = "grey"
    c.model.name = "conv_autoencoder"
    c.data.name = "digits"
    c.data.image_size = 32
    c.data.cache = True
    c.train.steps = 1000
    c.train.batch_size = 64
    c.train.log_every_steps = 100
    c.optimizer.name = "adam"
    c.optimizer.lr = 2e-3
    c.schedule.name = "cosine"
    c.eval.every_steps = 500
    c.checkpoint.every_steps = 500
    return c
