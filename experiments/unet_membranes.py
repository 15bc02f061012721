"""U-Net (Ronneberger et al. 2015) on the ISBI 2012 EM membranes: the U-Net paper's dataset.

Asks: trained on 16 of the 20 labelled 512x512 sections and evaluated on the other 4, how well
does a (narrowed, CPU-sized) U-Net separate membrane from cell interior? Labels are 0/255
masks read as {0: membrane, 1: cell}; metrics: pixel accuracy and the membrane class's IoU
(`test/iou/0`). Training uses random 128x128 patches with flips and small rotations (the paper
leans on elastic deformations and rotations: the set is tiny); evaluation predicts whole images.

This experiment has no embedded dataset: give the folder on the command line.

Command:  uv run launch.py train --config experiments/unet_membranes.py \
              --config.data.name=seg:../shared/datasets/isbi2012_membranes
Result:   on sections 16-19 at step 400: pixel accuracy 90.98%, membrane IoU (`test/iou/0`)
          0.639, cell IoU 0.893, mIoU 0.766 (0.715 at step 200); width 16, same padding,
          1,940,834 parameters; 587 s on a 2-core CPU shared with other jobs.
          docs/unet_membranes_samples.png shows the four evaluation sections.
"""

from training.config import base_config


def get_config():
    c = base_config()
    c.task.name = "segmentation"
    c.task.loss = "ce"
    c.model.name = "unet"
    c.model.width = 16               # the paper's 64 is ~31M parameters: too slow for 2 CPU cores
    c.model.padding = "same"         # "valid" is the paper's; the task mirrors borders for it
    c.data.name = ""                 # required: --config.data.name=seg:DIR
    c.data.train_split = "train[:80%]"   # sections 0-15
    c.data.eval_split = "train[80%:]"    # sections 16-19
    c.data.patch_size = 128
    c.data.cache = True
    c.data.augment = "flip_lr|flip_ud|rotate(10)"
    c.train.steps = 400
    c.train.batch_size = 8
    c.train.log_every_steps = 50
    c.optimizer.name = "adam"
    c.optimizer.lr = 1e-3
    c.schedule.name = "cosine"
    c.schedule.warmup_steps = 30
    c.eval.every_steps = 200
    c.eval.batch_size = 8
    c.checkpoint.every_steps = 200
    return c
