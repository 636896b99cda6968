"""The built-in rules; importing this package registers them."""

from . import adam  # noqa: F401
