"""The Ray Serve backend: one local Ray instance (2 CPUs, no dashboard) with 2 replicas for the module.

Every answer is compared with the in-process answer for the same image:
concurrent clients get exactly their own (no crosstalk), batched answers equal
single ones, and killing a replica in the middle of the load loses none
(the front retries once, Serve restarts the replica). All traffic stays in
this machine's Ray instance; every wait is bounded.
"""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("ray.serve")

from explain.bundle import default_bundle_path, load_bundle
from explain.errors import ImageDecodeError
from explain.io.decode import decode_image
from explain.pipeline import Explainer
from explain.serving import BackendError, BackendUnavailable
from explain.serving.batching import explain_chunks
from explain.serving.ray_client import RayBackend

BUNDLE = default_bundle_path()
EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.jpg"))
pytestmark = pytest.mark.skipif(not (BUNDLE / "bundle.json").is_file() or len(EXAMPLES) < 4,
                                reason="needs the default bundle and the shipped examples")
#: Bounds on every wait of this module (seconds): far above what a healthy run needs.
ANSWER_S, RECOVER_S = 120, 240


@pytest.fixture(scope="module")
def images():
    """16 different slices: the shipped examples and their mirror images."""
    decoded = [decode_image(p) for p in EXAMPLES]
    return decoded + [np.ascontiguousarray(im[:, ::-1]) for im in decoded]


@pytest.fixture(scope="module")
def offline(images):
    explainer = Explainer(load_bundle(BUNDLE))
    return [explainer.explain(im) for im in images]


@pytest.fixture(scope="module")
def backend():
    import ray

    started_ray = not ray.is_initialized()
    b = RayBackend(replicas=2, num_cpus=1, timeout_s=ANSWER_S)
    yield b
    b.close()
    if started_ray and ray.is_initialized():
        ray.shutdown()


def _same(got, want):
    assert got.predicted == want.predicted and got.explained == want.explained and got.empty == want.empty
    np.testing.assert_allclose(list(got.probabilities.values()), list(want.probabilities.values()), atol=1e-5)
    np.testing.assert_allclose(got.cam, want.cam, atol=1e-4)
    assert got.heatmap.shape == want.image.shape[:2]
    # The trust fields travel with the answer (computed on the replica, as in-process).
    assert got.input_check.get("in_distribution") == want.input_check.get("in_distribution")
    assert set(got.input_check) == set(want.input_check) and set(got.region_check) == set(want.region_check)
    np.testing.assert_array_equal(got.image, want.image)


def _replica_stats(backend, tries=40) -> dict:
    """{pid: batch sizes} of the replicas the router reaches in ``tries`` calls."""
    seen = {}
    for _ in range(tries):
        s = backend.call("stats")
        seen[s["pid"]] = s["batches"]
    return seen


def test_the_front_knows_the_model_without_loading_it(backend):
    assert backend.labels == ["glioma", "meningioma", "notumor", "pituitary"]
    assert backend.spec.size == (128, 128) and backend.engine().map_shape[0] > 0
    assert len(_replica_stats(backend)) == 2


def test_concurrent_clients_get_exactly_their_own_answers(backend, images, offline):
    order = [k % len(images) for k in range(3 * len(images))]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda k: (k, backend.explain(images[k])), order, timeout=ANSWER_S))
    for k, exp in answers:
        _same(exp, offline[k])
    # The requests were batched on the replicas (so this also checks batched == single).
    assert max(max(b, default=0) for b in _replica_stats(backend).values()) > 1


def test_explain_batch_and_chunks_equal_single_answers(backend, images, offline):
    for exp, want in zip(backend.explain_batch(images[:10]), offline[:10]):
        _same(exp, want)
    got = list(explain_chunks(backend, images, chunk=6))
    assert [k for k, _, _ in got] == list(range(len(images)))
    for (k, exp, error) in got:
        assert error is None
        _same(exp, offline[k])


def test_a_second_front_joins_the_running_application(backend, images, offline):
    # As `python app.py --backend ray --ray-address ADDRESS` does (here the address is this
    # process's own Ray instance): no new deployment, the same replicas.
    joined = RayBackend(address="auto", timeout_s=ANSWER_S)
    assert not joined.started_here and joined.labels == backend.labels
    _same(joined.explain(images[3]), offline[3])
    with pytest.raises(BackendUnavailable, match="no Serve application 'elsewhere'"):
        RayBackend(address="auto", app_name="elsewhere")


def test_bad_input_is_refused_at_the_front(backend):
    with pytest.raises(ImageDecodeError):
        backend.explain(b"not an image")
    with pytest.raises(ValueError, match="dragon"):
        backend.explain(EXAMPLES[0], "dragon")
    rows = list(explain_chunks(backend, [EXAMPLES[0], b"not an image"], chunk=4))
    assert rows[0][1] is not None and rows[1][1] is None and rows[1][2]


def test_a_killed_replica_loses_no_request(backend, images, offline):
    pids = sorted(_replica_stats(backend))
    assert len(pids) == 2
    order = [k % len(images) for k in range(64)]
    done = []

    def ask(k):
        exp = backend.explain(images[k])
        done.append(k)
        return k, exp

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(ask, k) for k in order]
        deadline = time.monotonic() + ANSWER_S
        while len(done) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(pids[0], signal.SIGKILL)  # mid-load: requests are queued and running on it
        answers = [f.result(timeout=ANSWER_S) for f in futures]
    assert len(answers) == len(order)
    assert backend.retries > 0  # the kill did hit requests in flight, and their retries answered
    for k, exp in answers:
        _same(exp, offline[k])
    # Serve replaces the dead replica: two replicas answer again, neither of them the dead one.
    deadline = time.monotonic() + RECOVER_S
    now = set()
    while time.monotonic() < deadline:
        now = set(_replica_stats(backend, tries=20))
        if len(now) == 2 and pids[0] not in now:
            break
        time.sleep(0.5)
    assert len(now) == 2 and pids[0] not in now, now


# -- the client's fault handling, on a stand-in handle (no replica needed) -------------------------
class _Handle:
    """Stands in for a DeploymentHandle: answers from ``script`` (an exception is raised)."""

    def __init__(self, script):
        self.script, self.calls = list(script), 0

    def options(self, **_):
        return self

    def remote(self, *args, **kwargs):
        return self

    def cancel(self):
        self.cancelled = True

    def result(self, timeout_s=None):
        self.calls += 1
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


INFO = {"labels": ["a", "b"], "size": [8, 8], "channels": 1, "color_mode": "grayscale",
        "preprocessing": "rescale", "target": "conv", "map_shape": [2, 2], "default_method": "gradcam"}


def test_one_retry_on_a_dead_replica_then_a_clear_error():
    import ray.exceptions as rx

    handle = _Handle([INFO, rx.ActorDiedError(), "answer"])
    assert RayBackend(handle=handle).call("stats") == "answer" and handle.calls == 3
    handle = _Handle([INFO, rx.ActorDiedError(), rx.ActorDiedError(), "never"])
    with pytest.raises(BackendError, match="failed twice"):
        RayBackend(handle=handle).call("stats")
    assert handle.calls == 3


def test_no_answer_in_time_is_a_clear_error_not_a_hang():
    import ray.exceptions as rx

    handle = _Handle([INFO, rx.GetTimeoutError("slow")])
    with pytest.raises(BackendError, match="did not answer within 7 s"):
        RayBackend(handle=handle, timeout_s=7).call("stats")
    assert handle.cancelled
