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

from experiments import srcnn_x3


def get_config():
    c = srcnn_x3.get_config()    # the same task, data, schedule and budget as SRCNN's
    c.model.name = "espcn"
    c.model.scale = 3
    c.data.patch_size = 51       # 17x17 low-resolution patches, as the paper
    return c
