"""Flax NNX networks of the lecture notes, created by name: `models.create("resnet50")`."""

from models.registry import UnknownModelError, create, names, spec

__all__ = ["UnknownModelError", "create", "names", "spec"]
