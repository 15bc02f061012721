"""Imports every model family so that its networks register themselves."""

from models import alexnet  # noqa: F401
from models import densenet  # noqa: F401
from models import googlenet  # noqa: F401
from models import lenet  # noqa: F401
from models import mobilenet  # noqa: F401
from models import resnet  # noqa: F401
from models import vgg  # noqa: F401
