"""Where the model runs: in this process, or in a Ray Serve deployment behind thin fronts.

A *backend* is anything with the explaining half of :class:`explain.pipeline.Explainer`:

* ``decode(source)`` -> (H, W, 3) uint8 RGB, within the size limits (always runs in the caller:
  user files are parsed at the front, never on a replica);
* ``load(source)`` -> (image, model input);
* ``explain(source, class_name=None, *, method=None, tta=False)`` -> :class:`~explain.pipeline.Explanation`;
* ``explain_batch(sources, class_names=None, *, method=None, tta=False)`` -> list of them;
* ``labels``, ``spec``, ``target``, ``default_method``, ``max_bytes``, ``max_pixels``, ``engine().map_shape``.

:class:`~explain.pipeline.Explainer` is the in-process backend as it is.
:class:`explain.serving.ray_client.RayBackend` is the Ray one; Ray is imported
only there (and by the deployment it starts), so the base app never needs it.
:func:`explain.serving.batching.explain_chunks` feeds many images to either,
in chunks, one error row per bad file.
"""

from __future__ import annotations

from ..errors import ExplainError

BACKENDS = ("local", "ray")
#: The Serve application and deployment names (the manifests in deploy/ use the same).
APP_NAME = "brain-mri-gradcam"
DEPLOYMENT_NAME = "Explainer"


class BackendError(ExplainError, RuntimeError):
    """The model service failed a request (after its one retry) or did not answer in time."""


class BackendUnavailable(ExplainError, RuntimeError):
    """The requested backend cannot start (Ray not installed, no cluster at the address, no resources)."""
