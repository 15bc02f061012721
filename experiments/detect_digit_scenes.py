"""A YOLO v1-style detector finds and names the digits of the embedded digit scenes.

Asks: can one network pass over a 64x64 scene of 1-4 digits (16-24 px, scattered, never seen
in training: test scenes use only the digits test split) put a box around each digit and name
it, with the YOLO v1 recipe (Redmon et al. 2016: an 8x8 grid, 2 boxes per cell, the paper's
sum-squared loss with lambda_coord 5 and lambda_noobj 0.5, random translations of up to 20%)?
Metric: PASCAL VOC mAP at IoU 0.5 (all-point interpolation) over the 500 test scenes.

Command:  uv run launch.py train --config experiments/detect_digit_scenes.py
Result:   test mAP@0.5 0.8952 at step 2000 (0.5534 at 500, 0.8011 at 1000, 0.8899 at 1500);
          AP per digit 0.777 (8) to 0.984 (0): 0 0.984, 1 0.837, 2 0.936, 3 0.822, 4 0.949,
          5 0.875, 6 0.931, 7 0.949, 8 0.777, 9 0.893; seed 0, 183,284 parameters. 1,427 s
          (1.6 steps/s) on a 2-core CPU shared with several other jobs (load average ~30).
          At width 16 (47,108 parameters) the same run reaches 0.6494; with the paper's fully
          connected head (`--config.model.head=fc`, width 16) 0.0657: it learns the boxes but
          not the classes (models/yolo.py). docs/detect_digit_scenes_samples.png shows eight
          test scenes (true boxes beside detections scoring >= 0.2);
          docs/detect_digit_scenes_overlay.png is `launch.py predict` on the first test scene.
"""

import tasks
from training.config import base_config


def get_config():
    c = base_config()
    tasks.configure(c, "detection")
    c.model.name = "yolo_digits"
    c.model.width = 32               # 16 reaches 0.65 mAP in the same steps
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
