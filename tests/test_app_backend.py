"""``python app.py --backend ray``: a missing Ray is one clear line and a non-zero exit, never a fallback."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_backend_ray_without_ray_exits_with_one_clear_line(tmp_path):
    # A "ray" package that cannot be imported, ahead of any installed one.
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3",
           "HOME": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False"}
    run = subprocess.run([sys.executable, "app.py", "--backend", "ray", "--replicas", "2", "--port", "1"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: --backend ray needs Ray Serve"), run.stderr
    assert "requirements-serve.txt" in errors[0]
    assert "Running on" not in run.stdout


def test_the_fronts_manifest_uses_the_app_s_own_options():
    from app import parse_args

    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy" / "fronts.yaml").read_text())}
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    args = parse_args(container["args"])
    assert args.backend == "ray" and args.ray_address.startswith("ray://") and args.host == "0.0.0.0"
