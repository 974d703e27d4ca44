"""CAM methods, one file each. A method only says how a map is made from the
activations and gradients of the shared compiled pass (see :mod:`explain.methods.base`)."""

from .base import CamMethod
from .gradcam import GradCAM

METHODS: dict[str, type[CamMethod]] = {
    GradCAM.name: GradCAM,
}


def get_method(name: str) -> CamMethod:
    """Instantiate a method by its name (e.g. ``"gradcam"``)."""
    try:
        return METHODS[name.lower()]()
    except KeyError:
        raise ValueError(f"Unknown CAM method {name!r}; available: {', '.join(METHODS)}") from None


__all__ = ["CamMethod", "GradCAM", "METHODS", "get_method"]
