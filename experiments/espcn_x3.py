"""ESPCN (Shi et al. 2016) at scale 3: 5-3-3, 64/32 filters, tanh, a sub-pixel output layer,
working on the low-resolution Y channel.

Asks: with all its convolutions at low resolution (9x fewer positions than SRCNN's), how does
ESPCN compare with SRCNN (experiments/srcnn_x3.py) and bicubic on Set14 after the same minutes
of training on the embedded photos? Paper: 29.49 dB on Set14 x3 (ImageNet training).

Command:  uv run launch.py train --config experiments/espcn_x3.py --workdir runs/espcn_x3
          uv run launch.py eval --workdir runs/espcn_x3 \
              --config.data.name=images:../shared/datasets/set14 --config.data.eval_split=train
Result:   Set14 x3 (Y, 3-pixel border shaved): ESPCN 27.94 dB / SSIM 0.788 against our bicubic
          27.64 dB / 0.776 (+0.30 dB) at step 2000; on the 5 held-out photos 30.52 against
          30.27 dB. 197 s of training on a 2-core CPU shared with other jobs.
          docs/espcn_x3_set14_samples.png shows Set14 images: bicubic, target, ESPCN.
"""

import ml_collections

from experiments import srcnn_x3


def get_config():
    c = srcnn_x3.get_config()    # the same task, data and optimizer as SRCNN's
    c.model = ml_collections.ConfigDict({"name": "espcn", "scale": 3})
    c.data.patch_size = 51       # 17x17 low-resolution patches, as the paper
    c.train.steps = 2000
    c.eval.every_steps = c.checkpoint.every_steps = 1000
    return c
