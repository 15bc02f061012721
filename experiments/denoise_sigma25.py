"""DnCNN (Zhang et al. 2017) removes Gaussian noise of sigma 25 from grey images.

Asks: 17 layers of 64 channels with BatchNorm and residual learning, trained for minutes on
40x40 grey patches of the embedded photos, how much PSNR does it gain over the noisy input on
Set14 in grey? (The paper reports 30.43 dB on BSD68 at sigma 25 after training on 400 images;
noise here is not clipped, as the paper's.) Evaluation noise is drawn per image from
(seed, index), so every evaluation sees the same noisy images.

Command:  uv run launch.py train --config experiments/denoise_sigma25.py --workdir runs/dncnn25
          uv run launch.py eval --workdir runs/dncnn25 \
              --config.data.name=images:../shared/datasets/set14 --config.data.eval_split=train
Result:   Set14 in grey at sigma 25: 22.88 dB / SSIM 0.476 against the noisy input's
          20.54 dB / 0.396 (+2.34 dB) at step 600; held-out photos 23.71 against 20.55 dB.
          Far from the paper's ~30 dB: 600 steps of 16 patches (9,600 patches; the paper trains
          on ~1.4M for 50 epochs); train and test PSNR agree (22.6 / 23.7 dB), so it is
          undertrained, not overfitted. 1,242 s on a 2-core CPU shared with other jobs
          (0.5 steps/s: 17 layers of 64 channels at 40x40).
"""

from training.config import base_config


def get_config():
    c = base_config()
    c.task.name = "denoising"
    c.task.sigma = 25.0
    c.task.channels = "grey"
    c.model.name = "dncnn"
    c.data.name = "photos"
    c.data.patch_size = 40
    c.data.cache = True
    c.data.augment = "flip_lr|flip_ud"
    c.train.steps = 600
    c.train.batch_size = 16
    c.train.log_every_steps = 50
    c.optimizer.name = "adam"
    c.optimizer.lr = 1e-3
    c.schedule.name = "cosine"
    c.eval.every_steps = 300
    c.eval.batch_size = 8
    c.checkpoint.every_steps = 300
    return c
