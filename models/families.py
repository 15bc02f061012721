"""Imports every model family so that its networks register themselves."""

from models import lenet  # noqa: F401
