"""The front's side of the Ray backend: decode here, explain on the Serve deployment.

``RayBackend(replicas=N)`` starts a local Ray instance and the Serve
application; ``RayBackend(address=...)`` joins a running cluster and uses the
application already deployed there (deploy/rayservice.yaml), so fronts on
several machines share one set of replicas.

Faults: a request whose replica dies (or is unreachable) is sent once more;
Serve routes it to a live replica and restarts the dead one. Explaining is
idempotent, so the retry cannot double anything. A request that fails again,
or gets no answer within ``timeout_s``, raises :class:`~explain.serving.BackendError`
with a sentence saying so: never a hang.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..io.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from ..pipeline import Front
from ..preprocess import InputSpec
from . import APP_NAME, BackendError, BackendUnavailable

#: Seconds a front waits for one answer (a batch of TTA Score-CAM maps on a loaded replica
#: takes seconds; a dead cluster must not hold a visitor for longer than this).
DEFAULT_TIMEOUT_S = 120.0
#: Seconds to wait for the replicas to load the model and become healthy.
START_TIMEOUT_S = 300.0


def import_ray():
    """``ray`` and ``ray.serve``, or :class:`BackendUnavailable` with the one-line reason."""
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise BackendUnavailable(f"--backend ray needs Ray Serve, which is not installed here ({exc}); "
                                 "install it with `pip install -r requirements-serve.txt`.") from None
    return ray, serve


@dataclass
class _Engine:
    """What the app asks of ``explainer.engine()``: the map's size."""

    map_shape: tuple[int, int]


@dataclass
class _Model:
    name: str


class ServiceBundle:
    """What a front shows about the model, as the replicas describe it (no model file at the front)."""

    path = None

    def __init__(self, info: dict, spec: InputSpec):
        self.labels = list(info["labels"])
        self.spec = spec
        self.metadata = dict(info.get("metadata") or {})
        self.model = _Model(info.get("model_name", "model"))
        self._info = info

    def audit(self) -> dict | None:
        return self._info.get("audit")

    def describe(self) -> str:
        return f"{self._info.get('describe', self.model.name)} (on Ray Serve)"


def replica_failures():
    """Exception types that mean "the replica went away", worth one retry."""
    import ray.exceptions as rx
    from ray.serve import exceptions as sx

    kinds = [rx.RayActorError, sx.ReplicaUnavailableError, sx.DeploymentUnavailableError]
    for name in ("ActorDiedError", "ActorUnavailableError", "NodeDiedError", "WorkerCrashedError",
                 "ObjectLostError", "OwnerDiedError"):
        if hasattr(rx, name):
            kinds.append(getattr(rx, name))
    return tuple(kinds)


class RayBackend(Front):
    """A backend (see :mod:`explain.serving`) whose model runs in a Serve deployment.

    replicas, num_cpus: size of a locally started deployment (ignored when joining).
    address: a Ray cluster to join ("auto", "ray://host:10001", ...); None starts one here.
    model_options: the bundle settings (explain.bundle.add_model_options names) for a local start.
    handle: an existing DeploymentHandle (tests); skips starting anything.
    """

    def __init__(self, *, replicas: int = 1, address: str | None = None, model_options: dict | None = None,
                 num_cpus: float = 1.0, max_batch_size: int | None = None, batch_wait_timeout_s: float | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
                 timeout_s: float = DEFAULT_TIMEOUT_S, handle=None, app_name: str | None = None):
        self.max_bytes, self.max_pixels, self.timeout_s = max_bytes, max_pixels, timeout_s
        self.started_here = False
        self.app_name = app_name or APP_NAME
        #: Requests sent a second time after a replica failure (a counter for tests and benchmarks).
        self.retries = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="ray-backend")
        if handle is None:
            handle = self._start(replicas, address, model_options, num_cpus, max_batch_size,
                                 batch_wait_timeout_s, app_name)
        self.handle = handle
        self._failures = replica_failures()
        info = self._call("info")
        self.info = info
        self.labels = list(info["labels"])
        self.spec = InputSpec(tuple(info["size"]), info["channels"], info["color_mode"], info["preprocessing"])
        self.target = info["target"]
        self.default_method = info["default_method"]
        self._engine = _Engine(tuple(info["map_shape"]))
        self.score_cam_channels = info.get("score_cam_channels")
        self.bundle = ServiceBundle(info, self.spec)

    # -- starting -----------------------------------------------------------------------------
    def _start(self, replicas, address, model_options, num_cpus, max_batch_size, batch_wait_timeout_s, app_name):
        ray, serve = import_ray()
        from .ray_deployment import ExplainerDeployment

        name = app_name or APP_NAME
        try:
            if not ray.is_initialized():
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    # Room for the replicas, no dashboard (a port and a process nobody reads).
                    ray.init(num_cpus=max(1, int(np.ceil(replicas * num_cpus))), include_dashboard=False,
                             log_to_driver=False)
                    self.started_here = True
            if address:
                try:
                    return serve.get_app_handle(name).options(method_name="explain")
                except Exception as exc:  # noqa: BLE001 - Serve raises several kinds for "not there"
                    raise BackendUnavailable(
                        f"no Serve application {name!r} at {address} ({type(exc).__name__}); deploy "
                        "deploy/rayservice.yaml there, or start without --ray-address") from None
            serve.start(proxy_location="Disabled")
            options = {"num_replicas": int(replicas), "ray_actor_options": {"num_cpus": float(num_cpus)}}
            args = {"model_options": dict(model_options or {})}
            if max_batch_size is not None:
                args["max_batch_size"] = int(max_batch_size)
            if batch_wait_timeout_s is not None:
                args["batch_wait_timeout_s"] = float(batch_wait_timeout_s)
            app = ExplainerDeployment.options(**options).bind(**args)
            handle = serve.run(app, name=name, route_prefix=None, blocking=False)
            self._wait_healthy(serve, name)
            return handle.options(method_name="explain")
        except BackendUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to start is reported in one line
            raise BackendUnavailable(f"Ray Serve could not start ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else ''})") from None

    @staticmethod
    def _wait_healthy(serve, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            status = serve.status().applications.get(name)
            state = str(getattr(status, "status", ""))
            if state.endswith("RUNNING"):
                return
            if state.endswith(("DEPLOY_FAILED", "UNHEALTHY")):
                raise BackendUnavailable(f"the Serve application {name!r} failed to start: "
                                         f"{getattr(status, 'message', '')[:300]}")
            if time.monotonic() > deadline:
                raise BackendUnavailable(f"the Serve application {name!r} was not running after "
                                         f"{START_TIMEOUT_S:.0f} s (not enough CPUs for the replicas?)")
            time.sleep(0.2)

    def close(self) -> None:
        """Stop what this backend started (the Serve application and a local Ray instance)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.started_here:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
            self.started_here = False

    # -- calling ------------------------------------------------------------------------------
    def _call(self, method: str, *args, **kwargs):
        """One call with one retry on a replica failure; BackendError on a second failure or a timeout."""
        import ray.exceptions as rx

        handle = self.handle if method == "explain" else self.handle.options(method_name=method)
        for attempt in (1, 2):
            response = None
            try:
                response = handle.remote(*args, **kwargs)
                return response.result(timeout_s=self.timeout_s)
            except self._failures as exc:
                if attempt == 2:
                    raise BackendError(f"The model service failed twice on this request (a replica died: "
                                       f"{type(exc).__name__}); try again in a moment.") from None
                with self._lock:
                    self.retries += 1
            except (TimeoutError, rx.GetTimeoutError):
                if response is not None:
                    response.cancel()  # nobody waits for it any more: free its place on the replica
                raise BackendError(f"The model service did not answer within {self.timeout_s:.0f} s; "
                                   "it may be overloaded or down. Try again later.") from None
            except rx.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, Exception):
                    raise cause from None
                raise BackendError(f"The model service failed: {str(exc).splitlines()[0]}") from None

    def call(self, method: str, *args, **kwargs):
        """Any other deployment method (``info``, ``stats``), with the same fault handling."""
        return self._call(method, *args, **kwargs)

    def engine(self, method: str | None = None) -> _Engine:
        return self._engine

    def _explain_image(self, image: np.ndarray, class_name, method, tta):
        exp = self._call("explain", image, class_name or None, method, bool(tta))
        exp.image = image
        return exp

    def explain(self, source, class_name: str | None = None, *, method: str | None = None, tta: bool = False):
        self.class_index(class_name)
        return self._explain_image(self.decode(source), class_name, method, tta)

    def explain_batch(self, sources, class_names=None, *, method: str | None = None, tta: bool = False):
        """Every image as its own request, all in flight at once: Serve batches them on the replicas
        and spreads them over the replicas; answers come back in order."""
        sources = list(sources)
        names = list(class_names) if class_names is not None else [None] * len(sources)
        for name in names:
            self.class_index(name)
        images = [self.decode(s) for s in sources]
        futures = [self._pool.submit(self._explain_image, image, name, method, tta)
                   for image, name in zip(images, names)]
        return [f.result() for f in futures]


def start_from_args(args) -> RayBackend:
    """The Ray backend the app's command line asks for (``--replicas``, ``--ray-address``, model options)."""
    from .ray_deployment import MODEL_OPTIONS

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    options = {key: getattr(args, key, None) for key in MODEL_OPTIONS}
    return RayBackend(replicas=args.replicas, address=args.ray_address, model_options=options,
                      max_batch_size=getattr(args, "ray_batch", None),
                      max_bytes=int(args.max_upload_mb * 2**20), max_pixels=int(args.max_megapixels * 1e6))
