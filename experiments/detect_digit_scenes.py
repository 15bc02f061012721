"""A YOLO v1-style detector finds and names the digits of the embedded digit scenes.

Asks: can one network pass over a 64x64 scene of 1-4 digits (16-24 px, scattered, never seen
in training: test scenes use only the digits test split) put a box around each digit and name
it, with the YOLO v1 recipe (Redmon et al. 2016: an 8x8 grid, 2 boxes per cell, the paper's
sum-squared loss with lambda_coord 5 and lambda_noobj 0.5, random translations of up to 20%)?
Metric: PASCAL VOC mAP at IoU 0.5 (all-point interpolation) over the 500 test scenes.

Command:  uv run launch.py train --config experiments/detect_digit_scenes.py
Result:   (measured below)
"""

import tasks
from training.config import base_config


def get_config():
    c = base_config()
    tasks.configure(c, "detection")
    c.model.name = "yolo_digits"
    c.data.name = "digit_scenes"
    c.data.image_size = 64
    c.data.cache = True
    c.data.augment = ""              # the task translates scenes itself, boxes moved along
    c.train.steps = 2000
    c.train.batch_size = 32
    c.train.log_every_steps = 100
    c.optimizer.name = "adam"
    c.optimizer.lr = 1e-3
    c.schedule.name = "cosine"
    c.schedule.warmup_steps = 100
    c.eval.every_steps = 500
    c.eval.batch_size = 100
    c.checkpoint.every_steps = 500
    return c
