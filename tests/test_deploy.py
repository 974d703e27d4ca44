"""deploy/: the manifests parse and name what the code defines (the cluster itself is not tested here)."""

import ast
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

from explain.serving import APP_NAME, DEPLOYMENT_NAME  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def _docs(name):
    return {doc["kind"]: doc for doc in yaml.safe_load_all((DEPLOY / name).read_text())}


def _serve_config():
    return yaml.safe_load(_docs("rayservice.yaml")["RayService"]["spec"]["serveConfigV2"])


def test_the_rayservice_names_the_code_s_application_deployment_and_builder():
    config = _serve_config()
    (app,) = config["applications"]
    assert app["name"] == APP_NAME
    module, _, function = app["import_path"].partition(":")
    source = ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(source.read_text())
    assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    (deployment,) = app["deployments"]
    assert deployment["name"] == DEPLOYMENT_NAME
    scaling = deployment["autoscaling_config"]
    assert 1 <= scaling["min_replicas"] <= scaling["max_replicas"]
    assert 0 < scaling["target_ongoing_requests"] <= deployment["max_ongoing_requests"]


def test_serve_accepts_the_config_and_the_builder_its_args():
    pytest.importorskip("ray.serve")
    from ray.serve.schema import ServeDeploySchema

    from explain.serving import ray_deployment as rd

    config = _serve_config()
    ServeDeploySchema.model_validate(config)
    args = config["applications"][0]["args"]
    assert set(args["model_options"]) <= set(rd.MODEL_OPTIONS)
    assert args["max_batch_size"] == rd.MAX_BATCH_SIZE and args["batch_wait_timeout_s"] == rd.BATCH_WAIT_TIMEOUT_S
    app = rd.build_app(args)  # the builder takes exactly these arguments
    assert app is not None


def test_the_fronts_join_the_rayservice_with_session_affinity():
    docs = _docs("fronts.yaml")
    assert docs["Service"]["spec"]["sessionAffinity"] == "ClientIP"
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert container["command"][-1] == "app.py"
    assert args[args.index("--backend") + 1] == "ray"
    address = args[args.index("--ray-address") + 1]
    head = _docs("rayservice.yaml")["RayService"]["metadata"]["name"] + "-head-svc"
    assert address == f"ray://{head}:10001"
    assert docs["Service"]["spec"]["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
