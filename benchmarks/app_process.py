"""The app in a child process, for the benchmarks and the tests: a free port, the child's
environment, start a server command and wait until it answers HTTP, stop it, sample its RSS.

Only the standard library at import time (psutil is imported when RSS is read).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Terminate a child process, killing it if it does not exit within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def child_env(temp: Path | None = None) -> dict:
    """Environment for an app child process: quiet, unbuffered, no analytics, no login."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1",
               GRADIO_ANALYTICS_ENABLED="False")  # no network calls from an offline run
    env.pop("BRAIN_MRI_AUTH", None)  # the benchmark and test clients do not log in
    if temp is not None:
        env["GRADIO_TEMP_DIR"] = str(temp)  # uploads and outputs of thousands of requests, removed after
    return env


def rss_bytes(pid: int) -> float:
    """Resident memory of process ``pid``, bytes."""
    import psutil

    return float(psutil.Process(pid).memory_info().rss)


class AppProcess:
    """A command that serves the app on ``port``, as a child process; stopped on exit.

    Its output goes to ``log_path``; ``started`` is the ``time.perf_counter()``
    of the start, ``url`` the address it serves.
    """

    def __init__(self, command: list[str], port: int, log_path: Path, env: dict | None = None,
                 cwd: Path = ROOT, stop_timeout: float = 20):
        self.command, self.port, self.log_path = command, port, log_path
        self.env = child_env() if env is None else env
        self.cwd, self.stop_timeout = cwd, stop_timeout
        self.url = f"http://127.0.0.1:{port}/"

    def __enter__(self):
        self.log = open(self.log_path, "w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc):
        stop_process(self.proc, self.stop_timeout)
        self.log.close()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_http(self, timeout: float) -> float:
        """Seconds from process start until the web server answers."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2):
                    return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"app did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def rss(self) -> float:
        """Resident memory of the app process, bytes."""
        return rss_bytes(self.proc.pid)


class AppServer(AppProcess):
    """``python app.py --model BUNDLE --port P`` as a child process, stopped on exit.

    Log in ``work/app.log``, Gradio's files in ``work/gradio``.
    """

    def __init__(self, bundle_dir: Path, work: Path):
        port = free_port()
        super().__init__([sys.executable, "app.py", "--model", str(bundle_dir), "--port", str(port)],
                         port, work / "app.log", child_env(work / "gradio"), stop_timeout=15)
        self.work, self.bundle_dir = work, bundle_dir


class RssSampler(threading.Thread):
    """Samples the RSS (bytes) of process ``pid`` every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[float] = []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.samples.append(rss_bytes(self.pid))
            self._halt.wait(self.interval)

    def stop(self) -> list[float]:
        self._halt.set()
        self.join()
        return self.samples
