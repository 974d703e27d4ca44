"""Exceptions whose messages are meant to be shown to a person as they are."""


class ExplainError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class ImageDecodeError(ExplainError, ValueError):
    """The input could not be turned into an image (unreadable, too large, ...)."""


class BundleError(ExplainError, ValueError):
    """A model bundle is missing, malformed or inconsistent with its model."""


class LayerError(ExplainError, ValueError):
    """No usable Grad-CAM layer was found, or the requested one does not fit."""
