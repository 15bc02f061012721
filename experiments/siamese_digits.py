"""A Siamese (triplet) embedding trained on digits 0-4, tested on digits 5-9 it never saw.

Asks: does a LeNet-5 trunk with a 64-d L2-normalised embedding head, trained with the triplet
loss on batch-hard triplets (Schroff et al. 2015; Hermans et al. 2017) from P x K = 5 x 12
batches of the digits 0-4, recognise the unseen digits 5-9 from one example each (5-way
1-shot, the notes' Siamese one-shot test), and retrieve their own class first (recall@1)?
Evaluation uses every 5-9 digit of both splits (896 images, none seen in training): 1,000
seeded episodes of 5 queries per class, and recall@k of each image against the other 895.

Command:  uv run launch.py train --config experiments/siamese_digits.py --workdir runs/siamese
Result:   (measured below)

Retrieval picture: the test digits 5-9 written as PNG folders (`export_digits`), then
          uv run python -c "from experiments.siamese_digits import export_digits; \\
              export_digits('runs/digits59')"
          uv run launch.py retrieve --workdir runs/siamese --index runs/digits59 \\
              --query runs/digits59/7/0003.png --k 5 --out docs/siamese_digits_retrieval.png
"""

from pathlib import Path

import tasks
from training.config import base_config


def get_config():
    c = base_config()
    tasks.configure(c, "embedding")
    c.task.loss = "triplet"
    c.task.mining = "batch_hard"
    c.task.embedding_dim = 64
    c.model.name = "lenet5"
    c.model.act = "relu"
    c.model.pool = "max"
    c.data.name = "digits"
    c.data.image_size = 24
    c.data.pad = 4               # LeNet-5's 32x32 input, as experiments/lenet5_digits.py
    c.data.cache = True
    c.data.train_classes = (0, 1, 2, 3, 4)
    c.data.eval_classes = (5, 6, 7, 8, 9)
    c.data.eval_split = "train+test"  # classes 5-9 are unseen: all their images are test data
    c.data.classes_per_batch = 5      # P = 5 classes, K = 60 / 5 = 12 images each
    c.data.device_augment = "affine(degrees=10, translate=0.08, scale=0.1)"
    c.train.steps = 1500
    c.train.batch_size = 60
    c.train.log_every_steps = 100
    c.optimizer.name = "adam"
    c.optimizer.lr = 1e-3
    c.schedule.name = "cosine"
    c.schedule.warmup_steps = 50
    c.eval.every_steps = 500
    c.eval.batch_size = 128
    c.checkpoint.every_steps = 500
    return c


def export_digits(out: str, classes=(5, 6, 7, 8, 9), split: str = "test") -> Path:
    """The digits of `classes` in `split` as OUT/CLASS/NNNN.png (8x8 grey), an index folder
    for `launch.py retrieve`."""
    from data import image_files, sources

    root = Path(out)
    source = sources.open_split("digits", split, None)
    counts = {}
    for i in range(len(source)):
        record = source[i]
        label = int(record["label"])
        if label in classes:
            n = counts[label] = counts.get(label, -1) + 1
            (root / str(label)).mkdir(parents=True, exist_ok=True)
            image_files.save_png(record["image"], root / str(label) / f"{n:04d}.png")
    return root
