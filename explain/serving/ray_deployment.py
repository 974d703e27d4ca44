"""The model as a Ray Serve deployment: N replicas, each one :class:`~explain.pipeline.Explainer`,
requests grouped by ``@serve.batch`` into one compiled call.

Started by :class:`explain.serving.ray_client.RayBackend` (``python app.py --backend ray``)
or, on a cluster, by Serve itself from ``deploy/rayservice.yaml`` through
:func:`build_app` (``import_path: explain.serving.ray_deployment:build_app``).

A request is one decoded image (H, W, 3) uint8, the class to explain, the
method and the TTA flag; the answer is the whole
:class:`~explain.pipeline.Explanation` (every field the pipeline fills, so
fields added to it travel too) less its ``image``, which the front already has.
"""

from __future__ import annotations

import asyncio
import os
from argparse import Namespace

import numpy as np
from ray import serve

from . import DEPLOYMENT_NAME

#: Batching defaults (measured, docs/serving.md): up to 16 images per compiled call,
#: and a request waits at most 10 ms for others to join its batch.
MAX_BATCH_SIZE = 16
BATCH_WAIT_TIMEOUT_S = 0.01
#: Requests one replica holds at once (queued for its batches); beyond that the
#: router sends them elsewhere or they wait at the caller.
MAX_ONGOING_REQUESTS = 32
#: Score-CAM channels on a replica (as in the app: uncapped it is minutes per image).
SCORE_CAM_CHANNELS = 128
#: The keys of explain.bundle.add_model_options, the model settings a replica accepts.
MODEL_OPTIONS = ("model", "labels", "preprocessing", "color_mode", "layer", "input_size")


def _limit_threads(cpus: float) -> None:
    """Keep TensorFlow's thread pools to the CPUs Ray gave this replica (it sizes them to the machine)."""
    import tensorflow as tf

    n = max(1, int(cpus))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:
        pass  # already initialised in this process: keep what it has


@serve.deployment(name=DEPLOYMENT_NAME, ray_actor_options={"num_cpus": 1},
                  max_ongoing_requests=MAX_ONGOING_REQUESTS, health_check_period_s=5)
class ExplainerDeployment:
    """One replica: loads the bundle, traces the engine, answers batched requests."""

    def __init__(self, model_options: dict | None = None, max_batch_size: int = MAX_BATCH_SIZE,
                 batch_wait_timeout_s: float = BATCH_WAIT_TIMEOUT_S, method: str | None = None):
        import ray

        from ..quiet import import_tensorflow

        import_tensorflow()
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
        _limit_threads(cpus)
        from ..bundle import load_from_args
        from ..pipeline import DEFAULT_METHOD, Explainer

        options = {key: None for key in MODEL_OPTIONS}
        options.update(model_options or {})
        self.bundle = load_from_args(Namespace(**options))
        self.explainer = Explainer(self.bundle, method or DEFAULT_METHOD, score_cam_channels=SCORE_CAM_CHANNELS,
                                   max_pixels=2**62, max_bytes=2**62)  # the front enforces the limits
        self.explain_batched.set_max_batch_size(int(max_batch_size))
        self.explain_batched.set_batch_wait_timeout_s(float(batch_wait_timeout_s))
        self.batches: list[int] = []

    def info(self) -> dict:
        """What a front needs to describe the model without loading it."""
        spec = self.explainer.spec
        return {"labels": list(self.explainer.labels), "size": list(spec.size), "channels": spec.channels,
                "color_mode": spec.color_mode, "preprocessing": spec.preprocessing,
                "target": str(self.explainer.target), "map_shape": list(self.explainer.engine().map_shape),
                "default_method": self.explainer.default_method, "model_name": self.bundle.model.name,
                "describe": self.bundle.describe(),
                "metadata": self.bundle.metadata, "audit": self.bundle.audit(),
                "score_cam_channels": self.explainer.score_cam_channels, "pid": os.getpid()}

    def stats(self) -> dict:
        """This replica's process id and the size of every batch it ran so far (tests, benchmarks)."""
        return {"pid": os.getpid(), "batches": list(self.batches)}

    async def explain(self, image: np.ndarray, class_name: str | None = None, method: str | None = None,
                      tta: bool = False):
        result = await self.explain_batched((image, class_name, method, bool(tta)))
        if isinstance(result, Exception):
            raise result
        return result

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_TIMEOUT_S)
    async def explain_batched(self, requests: list[tuple]) -> list:
        # The model call blocks: run it off the event loop so health checks and new
        # requests are still taken while a batch computes.
        return await asyncio.to_thread(self._run, requests)

    def _run(self, requests: list[tuple]) -> list:
        """One compiled call per (method, TTA) group; an item that fails alone gets its own exception."""
        from ..errors import ExplainError

        self.batches.append(len(requests))
        out: list = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, (_, _, method, tta) in enumerate(requests):
            groups.setdefault((method, tta), []).append(i)
        for (method, tta), idx in groups.items():
            try:
                done = self.explainer.explain_batch([requests[i][0] for i in idx], [requests[i][1] for i in idx],
                                                    method=method, tta=tta)
            except (ExplainError, ValueError):
                done = []
                for i in idx:
                    try:
                        done.append(self.explainer.explain(requests[i][0], requests[i][1], method=method, tta=tta))
                    except (ExplainError, ValueError) as exc:
                        done.append(exc)
            for i, exp in zip(idx, done):
                if not isinstance(exp, Exception):
                    exp.image = None  # the front has it; no need to send it back
                out[i] = exp
        return out


def build_app(args: dict | None = None):
    """Serve application builder (``serve run explain.serving.ray_deployment:build_app``, RayService).

    ``args``: ``model_options`` (dict, see :data:`MODEL_OPTIONS`), ``max_batch_size``,
    ``batch_wait_timeout_s``, ``method``; ``num_replicas`` and ``num_cpus`` set
    the deployment's size when no autoscaling config overrides it.
    """
    args = dict(args or {})
    replicas = args.pop("num_replicas", None)
    cpus = args.pop("num_cpus", None)
    deployment = ExplainerDeployment
    if replicas is not None or cpus is not None:
        deployment = deployment.options(
            **({"num_replicas": int(replicas)} if replicas is not None else {}),
            **({"ray_actor_options": {"num_cpus": float(cpus)}} if cpus is not None else {}))
    return deployment.bind(**args)
