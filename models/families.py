"""Imports every model family so that its networks register themselves (`models/__init__.py`
imports this module right after the registry)."""

from models import airbench  # noqa: F401
from models import alexnet  # noqa: F401
from models import autoencoder  # noqa: F401
from models import cnn1d  # noqa: F401
from models import densenet  # noqa: F401
from models import dcgan  # noqa: F401
from models import dncnn  # noqa: F401
from models import fcn  # noqa: F401
from models import googlenet  # noqa: F401
from models import lenet  # noqa: F401
from models import mlp  # noqa: F401
from models import mobilenet  # noqa: F401
from models import resnet  # noqa: F401
from models import superres  # noqa: F401
from models import unet  # noqa: F401
from models import vgg  # noqa: F401
from models import wavenet  # noqa: F401
from models import yolo  # noqa: F401
