"""Flax NNX networks of the lecture notes, created by name: `models.create("resnet50")`."""

from models.registry import UnknownModelError, create, names, spec

# After the registry, never from it: each family module imports `models.registry` to register
# its networks, so importing the families here (and only here) fills the table without a cycle.
from models import families  # noqa: E402, F401  (isort: skip)

__all__ = ["UnknownModelError", "create", "names", "spec"]
