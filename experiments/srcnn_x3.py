"""SRCNN (Dong et al. 2014) at scale 3: 9-1-5, 64/32 filters, on the bicubic-upsampled Y channel.

Asks: trained for minutes on the embedded photos (random 33x33 Y patches, as the paper's
sub-images), how far above bicubic interpolation does SRCNN get on Set14? The paper reports
27.54 dB bicubic and 29.00 dB SRCNN there (Y channel, MATLAB bicubic, 3-pixel border shaved,
trained for days on 91 images). Our low-resolution images come from PIL's antialiased bicubic,
not MATLAB's imresize (data/degrade.py measures the difference), so our bicubic baseline is
computed the same way beside our result, and the gain over it is the comparable number.

Command:  uv run launch.py train --config experiments/srcnn_x3.py --workdir runs/srcnn_x3
          uv run launch.py eval --workdir runs/srcnn_x3 \
              --config.data.name=images:../shared/datasets/set14 --config.data.eval_split=train
Result:   Set14 x3 (Y, 3-pixel border shaved): SRCNN 28.21 dB / SSIM 0.801 against our bicubic
          27.64 dB / 0.776 (+0.57 dB; the paper's gain is +1.46 dB after far longer training)
          at step 5000; held-out photos 30.83 against 30.27 dB. 702 s on a 2-core CPU shared
          with other jobs. He initialisation: with the paper's N(0, 0.001^2) the same recipe at
          2,000 steps was still below bicubic (27.58 against 27.64 dB; 30.22 against 30.27 dB
          on the photos), as SRCNN is known to learn slowly from that start.
"""

from training.config import base_config


def get_config():
    c = base_config()
    c.task.name = "super_resolution"
    c.task.scale = 3
    c.task.channels = "y"
    c.model.name = "srcnn"
    c.model.init = "he"              # the paper's N(0, 0.001^2) learns far slower (docstring)
    c.data.name = "photos"
    c.data.patch_size = 33
    c.data.cache = True
    c.data.augment = "flip_lr"
    c.train.steps = 5000
    c.train.batch_size = 32
    c.train.log_every_steps = 100
    c.optimizer.name = "adam"
    c.optimizer.lr = 1e-3
    c.schedule.name = "cosine"
    c.eval.every_steps = 2500
    c.eval.batch_size = 8
    c.checkpoint.every_steps = 2500
    return c
