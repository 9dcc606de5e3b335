"""The files that run the application on a real cluster, checked as far as this machine can.

cluster.yaml (`ray up`) is validated against Ray's own cluster schema, the way `ray up`
validates it before calling a cloud. k8s/rayservice.yaml must be exactly what
`python -m serve_app.kuberay` prints for configs/serve.gpu.yaml, so the two cannot drift
apart, and its serveConfigV2 must pass Serve's and the application's own validation. The
Dockerfile, cluster.yaml and the manifest must agree with the README's install command and
pyproject.toml on what they install and which Ray they run. No cloud, Kubernetes or Docker
is involved: nothing here starts Ray.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shlex
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from serve_app import kuberay

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster.yaml"
DOCKERFILE = REPO / "Dockerfile"
MANIFEST = REPO / "k8s" / "rayservice.yaml"
GPU_CONFIG = REPO / kuberay.CONFIG
BASE_IMAGE = re.compile(r"rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<py>\d)(?P<minor>\d+)-gpu")
HA_PROXY = "RAY_SERVE_ENABLE_HA_PROXY"


def pip_installs(command: str) -> list[list[str]]:
    """The arguments of each `pip install` in a shell command line."""
    words = shlex.split(command, comments=True)
    runs: list[list[str]] = []
    for i, word in enumerate(words[:-1]):
        if word == "pip" and words[i + 1] == "install":
            args = []
            for arg in words[i + 2:]:
                if arg in ("&&", "||", ";", "|"):
                    break
                args.append(arg)
            runs.append(args)
    return runs


def pins(args: list[str]) -> dict[str, str]:
    return dict(arg.split("==", 1) for arg in args if "==" in arg and not arg.startswith("-"))


def readme_install() -> list[str]:
    """The README's install command (the line its comment calls `# install`)."""
    lines = [line for line in (REPO / "README.md").read_text().splitlines()
             if re.search(r"pip install .*#\s*install\s*$", line)]
    assert len(lines) == 1, lines
    (args,) = pip_installs(lines[0])
    return args


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, comments dropped and continued lines joined."""
    text = "\n".join(line for line in DOCKERFILE.read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def cluster() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER.read_text())


def manifest() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(MANIFEST.read_text()))


def rayservice() -> dict[str, Any]:
    (service,) = [doc for doc in manifest() if doc["kind"] == "RayService"]
    return service


def containers(service: dict[str, Any]) -> list[dict[str, Any]]:
    spec = service["spec"]["rayClusterConfig"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for group in groups for c in group["template"]["spec"]["containers"]]


# -- cluster.yaml ---------------------------------------------------------------------------

def test_cluster_yaml_is_what_ray_up_accepts() -> None:
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = cluster()
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(raw, schema)
    # What `ray up` does with it before it asks the cloud for anything: merge the
    # provider's defaults, then validate the result (with the same schema and more).
    validate_config(prepare_config(copy.deepcopy(raw)))


def test_cluster_yaml_starts_ray_in_haproxy_mode_with_the_dashboard_on_loopback() -> None:
    config = cluster()
    starts = [cmd for key in ("head_start_ray_commands", "worker_start_ray_commands")
              for cmd in config[key] if "ray start" in cmd]
    assert len(starts) == 2, starts
    for cmd in starts:
        words = shlex.split(cmd)
        env = dict(w.split("=", 1) for w in words[:words.index("ray")])
        assert env.get(HA_PROXY) == "1", cmd
    (head,) = [cmd for cmd in starts if "--head" in cmd]
    assert "--dashboard-host=127.0.0.1" in shlex.split(head)
    assert f"-e {HA_PROXY}=1" in config["docker"]["run_options"]


def test_cluster_yaml_installs_the_project_with_the_readmes_pins() -> None:
    (args,) = [a for cmd in cluster()["setup_commands"] for a in pip_installs(cmd)]
    readme = pins(readme_install())
    assert {"torch", "torchvision"} <= set(readme)
    assert {k: pins(args).get(k) for k in ("torch", "torchvision")} == \
        {k: readme[k] for k in ("torch", "torchvision")}
    assert args[args.index("-e") + 1] == ".[postgres]"


# -- Dockerfile -----------------------------------------------------------------------------

def test_dockerfile_builds_from_the_ray_that_the_project_and_cluster_run() -> None:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    froms = [args for word, args in dockerfile_instructions() if word == "FROM"]
    assert froms == ["rayproject/ray:2.60.0-py311-gpu"]
    image = BASE_IMAGE.fullmatch(froms[0])
    assert image, froms[0]
    # The project's own Ray requirement, so pip keeps the image's Ray rather than
    # replacing it, and the image's Python within the project's.
    project = _pyproject()["project"]
    (ray,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "ray"]
    assert ray.specifier.contains(image["ray"]), (ray, image["ray"])
    python = f"{image['py']}.{image['minor']}"
    assert SpecifierSet(project["requires-python"]).contains(python), python
    # `ray up` and KubeRay run the same Ray.
    assert cluster()["docker"]["image"] == froms[0]
    assert rayservice()["spec"]["rayClusterConfig"]["rayVersion"] == image["ray"]


def _pyproject() -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10, which pyproject.toml allows; pytest brings tomli
        import tomli as tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_dockerfile_installs_the_project_with_the_readmes_pins() -> None:
    runs = [a for word, args in dockerfile_instructions() if word == "RUN"
            for a in pip_installs(args)]
    assert len(runs) == 1, runs
    (args,) = runs
    readme = pins(readme_install())
    assert {k: pins(args).get(k) for k in ("torch", "torchvision")} == \
        {k: readme[k] for k in ("torch", "torchvision")}
    assert ".[postgres]" in args


def test_dockerfile_copies_only_what_the_package_build_needs() -> None:
    copied = [shlex.split(args) for word, args in dockerfile_instructions() if word == "COPY"]
    sources = {src for words in copied for src in words[:-1] if not src.startswith("--")}
    assert sources == {"pyproject.toml", "README.md", "serve_app", "deployments", "configs"}
    # pyproject.toml's packages and readme are among them.
    project = _pyproject()
    assert project["project"]["readme"] in sources
    assert {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]
            } <= sources
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".git", ".serve_jobs", "**/__pycache__"} <= set(ignored)


# -- k8s/rayservice.yaml --------------------------------------------------------------------

def test_manifest_is_what_the_generator_prints_for_the_gpu_config() -> None:
    expected = kuberay.render(GPU_CONFIG.read_text())
    assert MANIFEST.read_text() == expected, (
        "k8s/rayservice.yaml is out of date: run `python -m serve_app.kuberay > "
        "k8s/rayservice.yaml` from the repository root")


def test_manifest_serves_the_gpu_configs_applications() -> None:
    service = rayservice()
    assert (service["apiVersion"], service["kind"]) == ("ray.io/v1", "RayService")
    served = yaml.safe_load(service["spec"]["serveConfigV2"])
    expected = yaml.safe_load(GPU_CONFIG.read_text())
    # The one intended difference: the job store's connection comes from libpq's
    # environment (the Secret), not from the config.
    for app in expected["applications"]:
        app["args"]["jobs"]["store_url"] = "postgresql://"
    assert served == expected
    assert served["applications"]

    # What the dashboard checks when KubeRay submits it, and what build_app checks.
    from ray.serve.schema import ServeDeploySchema

    from serve_app.settings import AppArgs

    ServeDeploySchema.model_validate(served)
    for app in served["applications"]:
        AppArgs.model_validate(app["args"])


def test_manifest_runs_haproxy_mode_from_the_image_with_the_store_secret() -> None:
    service = rayservice()
    found = containers(service)
    assert len(found) == 2
    for container in found:
        assert container["image"] == kuberay.IMAGE
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env[HA_PROXY] == "1"
        assert {"secretRef": {"name": kuberay.POSTGRES_SECRET}} in container["envFrom"]
    (worker,) = service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert worker["template"]["spec"]["containers"][0]["resources"]["limits"][
        "nvidia.com/gpu"] == "1"


def test_manifest_keeps_the_dashboard_inside_the_cluster() -> None:
    head = rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP"
    (policy,) = [doc for doc in manifest() if doc["kind"] == "NetworkPolicy"]
    labels = head["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    # Every rule that opens the dashboard's port names who may use it (the operator).
    for rule in policy["spec"]["ingress"]:
        ports = {p["port"] for p in rule.get("ports", [])}
        if kuberay.DASHBOARD_PORT in ports:
            assert rule["from"] == [{"namespaceSelector": {},
                                     "podSelector": {"matchLabels": kuberay.OPERATOR}}]
        elif "from" not in rule:
            assert ports == {kuberay.SERVE_PORT}
        else:
            assert rule["from"] == [{"podSelector": {"matchLabels": kuberay.PART_OF}}]


@pytest.mark.postgres
def test_the_manifests_store_url_reaches_postgres_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`postgresql://` plus the PG* variables a Secret would set opens the real job store
    (the application's own code, on a fresh database of the configured server)."""
    dsn = os.environ.get("RSP_TEST_POSTGRES_DSN")
    if not dsn:
        pytest.skip("needs a PostgreSQL server: set RSP_TEST_POSTGRES_DSN "
                    "(e.g. postgresql://postgres@127.0.0.1:5432/postgres); .ci/run does")
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from serve_app.jobs.stores import open_store

    (app,) = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])["applications"]
    store_url = app["args"]["jobs"]["store_url"]
    name = f"rsp_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        server = conninfo_to_dict(dsn)
        for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"),
                         ("password", "PGPASSWORD")):
            if key in server:
                monkeypatch.setenv(var, str(server[key]))
            else:
                monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("PGDATABASE", name)

        store = open_store(store_url)
        try:
            assert isinstance(asyncio.run(store.counts("ipa-generation")), dict)
        finally:
            asyncio.run(store.close())
        # The schema was made in the database the environment named.
        with psycopg.connect(dsn.rpartition("/")[0] + f"/{name}") as conn:
            assert conn.execute("SELECT to_regclass('jobs')").fetchone()[0] is not None
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
