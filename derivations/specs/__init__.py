"""The built-in rules; importing this package registers them."""

from . import adam, sgd, adagrad, adadelta, rmsprop, nadam  # noqa: F401
