"""Datasets (TFDS builders and sources), Grain pipelines and augmentation."""
