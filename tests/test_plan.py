"""`python -m serve_app.plan`: the shipped configs hold, broken variants fail saying why.

No Ray runs here: the plan builds the graph and applies the config's overrides with
Serve's own code, offline. Broken configs are YAML variants of the shipped ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from serve_app.plan.cli import main, nodes_from_ray, parse_node
from serve_app.plan.gpu_rules import model_gpu, no_model_reason
from serve_app.plan.graph import ConfigError
from serve_app.plan.packing import Node, Replica, pack, units
from serve_app.plan.planner import Plan, make_plan
from serve_app.plan.report import render

REPO = Path(__file__).resolve().parents[1]
CPU_CONFIG = REPO / "configs" / "serve.yaml"
GPU_CONFIG = REPO / "configs" / "serve.gpu.yaml"
LAPTOP = [Node("node0", 2)]
GPU_BOX = [Node("node0", 8, 1)]
GPU_MODELS = ("ToothSegmenter", "FindingDetector", "PDSegmenter")


def variant(tmp_path: Path, base: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """`base` with `edit` applied to its application, written to tmp_path."""
    config = yaml.safe_load(base.read_text())
    edit(config["applications"][0])
    path = tmp_path / f"variant-{base.name}"
    path.write_text(yaml.safe_dump(config))
    return path


def override(app: dict[str, Any], name: str) -> dict[str, Any]:
    """The app's `deployments:` entry for `name`, added when missing."""
    entries = app.setdefault("deployments", [])
    for entry in entries:
        if entry["name"] == name:
            return entry
    entries.append({"name": name})
    return entries[-1]


def resources(plan: Plan) -> dict[str, tuple[float, float]]:
    return {d.name: (d.cpus, d.gpus) for d in plan.app.deployments}


def total_cpus(plan: Plan) -> float:
    return sum(units(d.cpus) * d.replicas() for d in plan.app.deployments) / 10_000


# ------------------------------------------------------------------ the shipped configs


def test_cpu_config_fits_two_cores() -> None:
    plan = make_plan(CPU_CONFIG, LAPTOP)
    assert plan.problems == []
    assert resources(plan) == {
        "Ingress": (0.25, 0), "G2P": (0.25, 0), "PhoneRecognizer": (0.25, 0),
        "AssessmentPipeline": (0.05, 0), "ToothSegmenter": (0.25, 0),
        "FindingDetector": (0.25, 0), "DentalPipeline": (0.05, 0), "PDSegmenter": (0.25, 0),
        "PDPipeline": (0.05, 0)}
    # PDSegmenter autoscales to two replicas: packed at its max.
    assert total_cpus(plan) == 1.9
    assert set(plan.packing.placed.values()) == {("node0", ())}


def test_gpu_config_packs_its_cuda_models_onto_one_gpu() -> None:
    plan = make_plan(GPU_CONFIG, GPU_BOX)
    assert plan.problems == []
    for d in plan.app.deployments:
        if d.name in GPU_MODELS:
            assert 0 < d.gpus < 1 and plan.cap(d.name) == d.gpus
            assert plan.packing.placed[(d.name, 0)] == ("node0", (0,))
        else:  # gruut G2P, pocketsphinx, pipelines, Ingress: CPU only
            assert d.gpus == 0 and plan.cap(d.name) is None, d.name
    caps = plan.packing.states[0].caps[0]
    assert sum(cap for _, cap in caps) == 0.625


def test_gpu_config_fits_a_cpu_head_and_one_gpu_worker_as_in_cluster_yaml() -> None:
    plan = make_plan(GPU_CONFIG, [Node("head", 4), Node("worker", 4, 1)])
    assert plan.problems == []
    for name in GPU_MODELS:
        assert plan.packing.placed[(name, 0)] == ("worker", (0,))
    assert plan.packing.placed[("Ingress", 1)] == ("head", ())


def test_every_ray_actor_options_in_the_shipped_configs_restates_num_cpus() -> None:
    # An override's ray_actor_options replaces the code's; a missing num_cpus becomes 1.
    for config in (CPU_CONFIG, GPU_CONFIG):
        app = yaml.safe_load(config.read_text())["applications"][0]
        for entry in app.get("deployments", []):
            if "ray_actor_options" in entry:
                assert "num_cpus" in entry["ray_actor_options"], (config.name, entry["name"])


def test_every_deployment_of_the_graph_has_a_gpu_rule() -> None:
    # serve.yaml serves every model endpoint and a handler: the whole graph.
    app = make_plan(CPU_CONFIG, LAPTOP).app
    for d in app.deployments:
        assert model_gpu(d.name, app.args) or no_model_reason(d.name), d.name


# ------------------------------------------------------------------ the command


def run_plan(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serve_app.plan", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)


def test_command_passes_on_both_shipped_configs_and_fails_on_too_little() -> None:
    ok = run_plan("configs/serve.yaml", "--cpus", "2", "--gpus", "0")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "holds: every replica has a place" in ok.stdout
    ok = run_plan("configs/serve.gpu.yaml", "--node", "cpus=4", "--node", "cpus=4,gpus=1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "node1: CPU 3 of 4 used (1 free); GPU0 0.625 shared, CUDA caps 0.625" in ok.stdout
    bad = run_plan("configs/serve.gpu.yaml", "--cpus", "8")
    assert bad.returncode == 1
    assert "not schedulable: ToothSegmenter replica 1 needs 1 CPU and 0.25 of one GPU" \
        in bad.stdout
    assert "the plan does not hold (3 problem(s) above)" in bad.stderr


def test_planning_does_not_start_ray() -> None:
    # Without the CLI's guard (RAY_ENABLE_AUTO_CONNECT=0), any touch of a DeploymentHandle
    # would start a local Ray instance, which is_initialized() then reports.
    code = ("import sys, ray; from serve_app.plan.cli import main; rc = main(sys.argv[1:]); "
            "print('ray initialized:', ray.is_initialized()); sys.exit(rc)")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_AUTO_CONNECT"}
    done = subprocess.run([sys.executable, "-c", code, "configs/serve.gpu.yaml", "--cpus", "8",
                           "--gpus", "1"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ray initialized: False" in done.stdout


def test_flags() -> None:
    assert parse_node("cpus=4,gpus=1,name=worker", 3) == Node("worker", 4, 1)
    assert parse_node("cpus=2.5", 1) == Node("node1", 2.5, 0)
    with pytest.raises(SystemExit) as exc:
        main(["configs/serve.yaml", "--node", "cores=4"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["configs/serve.yaml", "--cpus", "2", "--node", "cpus=2"])


def test_nodes_of_a_running_cluster_from_ray_nodes() -> None:
    ray_nodes = [  # the shape ray.nodes() returns
        {"NodeID": "b", "Alive": True, "NodeManagerAddress": "10.0.0.2",
         "Resources": {"CPU": 4.0, "GPU": 1.0, "memory": 1e10, "node:10.0.0.2": 1.0}},
        {"NodeID": "c", "Alive": False, "NodeManagerAddress": "10.0.0.3",
         "Resources": {"CPU": 4.0, "GPU": 1.0}},
        {"NodeID": "a", "Alive": True, "NodeManagerAddress": "10.0.0.9",
         "Resources": {"CPU": 4.0, "node:__internal_head__": 1.0}},
    ]
    assert nodes_from_ray(ray_nodes) == [Node("node0", 4, 0, "10.0.0.9, head"),
                                         Node("node1", 4, 1, "10.0.0.2")]


# ------------------------------------------------------------------ not schedulable


def test_too_few_cpus_says_which_deployment_does_not_fit_and_what_is_free() -> None:
    plan = make_plan(CPU_CONFIG, [Node("node0", 1)])
    # Largest first, ties in graph order: four 0.25 replicas take the one CPU.
    assert plan.problems[0] == ("not schedulable: FindingDetector replica 1 needs 0.25 CPU "
                                "and no GPU; free: node0 CPU 0")
    # FindingDetector, two PDSegmenter replicas, 3 pipelines
    assert len(plan.problems) == 6


def test_an_override_replaces_ray_actor_options_so_num_cpus_becomes_one(
        tmp_path: Path) -> None:
    def edit(app: dict[str, Any]) -> None:
        override(app, "G2P")["ray_actor_options"] = {"num_gpus": 0}

    plan = make_plan(variant(tmp_path, CPU_CONFIG, edit), LAPTOP)
    assert resources(plan)["G2P"] == (1, 0)
    assert total_cpus(plan) == 2.65
    assert plan.problems and all(p.startswith("not schedulable") for p in plan.problems)


def test_a_fractional_gpu_request_must_fit_on_one_gpu() -> None:
    replicas = [Replica("A", 0, 0, units(0.75)), Replica("A", 1, 0, units(0.75)),
                Replica("B", 0, 0, units(0.5))]
    packing = pack(replicas, [Node("n", 4, 2)])
    # Half a GPU is free in all, but no one GPU has it.
    assert packing.problems == ["not schedulable: B replica 1 needs 0 CPU and 0.5 of one "
                                "GPU; free: n CPU 4, GPU0 0.25, GPU1 0.25"]


def test_whole_gpus_and_replicas_per_node() -> None:
    replicas = [Replica("part", 0, 0, units(0.5)), Replica("whole", 0, 0, units(1)),
                Replica("spread", 0, units(1), 0, max_per_node=1),
                Replica("spread", 1, units(1), 0, max_per_node=1)]
    packing = pack(replicas, [Node("a", 4, 2), Node("b", 4)])
    assert packing.problems == []
    assert packing.placed == {("whole", 0): ("a", (0,)), ("part", 0): ("a", (1,)),
                              ("spread", 0): ("a", ()), ("spread", 1): ("b", ())}


def test_autoscaling_packs_at_max_unless_asked_for_min(tmp_path: Path) -> None:
    def edit(app: dict[str, Any]) -> None:
        override(app, "G2P")["autoscaling_config"] = {"min_replicas": 1, "max_replicas": 4}

    config = variant(tmp_path, CPU_CONFIG, edit)
    at_max = make_plan(config, LAPTOP)
    assert total_cpus(at_max) == 2.65  # four G2P replicas (and two PDSegmenter)
    assert at_max.problems and all(p.startswith("not schedulable") for p in at_max.problems)
    rows = [line.split() for line in render(at_max).splitlines()]
    assert ["G2P", "1..4", "0.25", "-", "-", "node0", "x4"] in rows
    assert make_plan(config, LAPTOP, autoscaled="min").problems == []


def test_an_override_of_a_deployment_not_in_the_graph_is_refused(tmp_path: Path) -> None:
    config = variant(tmp_path, CPU_CONFIG, lambda app: override(app, "NoSuchModel"))
    with pytest.raises(ConfigError, match="Deployment 'NoSuchModel' does not exist"):
        make_plan(config, LAPTOP)


# ------------------------------------------------------------------ GPU shares and caps


def test_cuda_caps_over_one_gpu_are_refused(tmp_path: Path) -> None:
    def edit(app: dict[str, Any]) -> None:
        app["args"]["dental"]["segmenter_gpu_memory_fraction"] = 0.5
        app["args"]["dental"]["detector_gpu_memory_fraction"] = 0.5

    plan = make_plan(variant(tmp_path, GPU_CONFIG, edit), GPU_BOX)
    assert ("CUDA memory caps on node0 GPU0 add up to 1.125 of the GPU (ToothSegmenter 0.5, "
            "FindingDetector 0.5, PDSegmenter 0.125): more than it holds") in plan.problems
    assert any(p.startswith("ToothSegmenter caps CUDA memory at 0.5 "
                            "(dental.segmenter_gpu_memory_fraction), more than its 0.25 GPU "
                            "share") for p in plan.problems)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda app: override(app, "PDSegmenter").update(ray_actor_options={"num_cpus": 1}),
     "PDSegmenter caps CUDA memory at 0.125 (pd.gpu_memory_fraction) but asks for no GPU "
     "share"),
    (lambda app: app["args"]["dental"].pop("detector_gpu_memory_fraction"),
     "FindingDetector has a 0.25 GPU share but no CUDA memory cap "
     "(dental.detector_gpu_memory_fraction is unset)"),
    (lambda app: app["args"]["pd"].update(gpu_memory_fraction=0.25),
     "PDSegmenter caps CUDA memory at 0.25 (pd.gpu_memory_fraction), more than its 0.125 "
     "GPU share"),
], ids=["cap-without-share", "share-without-cap", "cap-over-share"])
def test_a_gpu_share_and_its_cuda_cap_must_agree(tmp_path: Path, edit: Callable,
                                                 expected: str) -> None:
    plan = make_plan(variant(tmp_path, GPU_CONFIG, edit), GPU_BOX)
    assert len(plan.problems) == 1 and plan.problems[0].startswith(expected), plan.problems


def test_a_cuda_model_without_a_share_must_say_cpu_where_there_are_gpus(
        tmp_path: Path) -> None:
    def edit(app: dict[str, Any]) -> None:
        app["args"]["pd"].pop("gpu_memory_fraction")
        override(app, "PDSegmenter")["ray_actor_options"] = {"num_cpus": 1}

    config = variant(tmp_path, GPU_CONFIG, edit)
    [problem] = make_plan(config, GPU_BOX).problems
    assert problem.startswith("PDSegmenter has no GPU share but pd.device is cuda: Ray leaves "
                              "CUDA_VISIBLE_DEVICES alone")
    no_gpu = make_plan(config, [Node("node0", 8)]).problems  # the dental models need one
    assert not [p for p in no_gpu if p.startswith("PDSegmenter")]  # PD falls back to CPU


def test_the_cpu_config_on_a_gpu_machine_would_put_its_torch_models_on_gpu_0() -> None:
    problems = make_plan(CPU_CONFIG, GPU_BOX).problems
    assert [p.split(" ")[0] for p in problems] == list(GPU_MODELS)
    assert all("device is auto: Ray leaves CUDA_VISIBLE_DEVICES alone" in p for p in problems)


def test_a_gpu_for_the_cpu_only_g2p_is_refused(tmp_path: Path) -> None:
    def edit(app: dict[str, Any]) -> None:  # the G2P settings serve.gpu.yaml used to have
        app["args"]["g2p"].update(device="cuda", gpu_memory_fraction=0.25)
        override(app, "G2P")["ray_actor_options"] = {"num_cpus": 0.25, "num_gpus": 0.25}

    [problem] = make_plan(variant(tmp_path, GPU_CONFIG, edit), GPU_BOX).problems
    assert problem == ("G2P asks for a GPU (num_gpus 0.25, g2p.gpu_memory_fraction 0.25, "
                       "g2p.device cuda) but never runs on CUDA: its backends (gruut, espeak) "
                       "run on the CPU; only transformers uses CUDA; drop them")

    def device_only(app: dict[str, Any]) -> None:
        app["args"]["g2p"]["device"] = "cuda"

    [problem] = make_plan(variant(tmp_path, GPU_CONFIG, device_only), GPU_BOX).problems
    assert problem.startswith("G2P asks for a GPU (g2p.device cuda) but never runs on CUDA")


def test_a_transformers_g2p_may_take_a_gpu_share(tmp_path: Path) -> None:
    def edit(app: dict[str, Any]) -> None:
        app["args"]["g2p"].update(backends=["gruut", "transformers"], device="cuda",
                                  transformers_model_uri="/models/charsiu",
                                  gpu_memory_fraction=0.25)
        override(app, "G2P")["ray_actor_options"] = {"num_cpus": 0.25, "num_gpus": 0.25}

    plan = make_plan(variant(tmp_path, GPU_CONFIG, edit), GPU_BOX)
    assert plan.problems == []
    assert plan.packing.placed[("G2P", 0)] == ("node0", (0,))


@pytest.mark.parametrize(("name", "reason"), [
    ("PhoneRecognizer", "never runs on CUDA: pocketsphinx runs on the CPU only"),
    ("Ingress", "but the HTTP ingress runs no model"),
    ("DentalPipeline", "but a pipeline runs no model"),
])
def test_a_gpu_for_a_deployment_that_never_uses_cuda_is_refused(
        tmp_path: Path, name: str, reason: str) -> None:
    def edit(app: dict[str, Any]) -> None:
        override(app, name)["ray_actor_options"] = {"num_cpus": 0.25, "num_gpus": 0.125}

    [problem] = make_plan(variant(tmp_path, GPU_CONFIG, edit), GPU_BOX).problems
    assert problem.startswith(name) and reason in problem, problem


def test_a_gpu_for_a_handler_is_refused(tmp_path: Path) -> None:
    def edit(app: dict[str, Any]) -> None:
        app["args"]["handlers"] = {"demo": {"handler": "deployments.handlers.demo_worker"}}
        override(app, "handler-demo")["ray_actor_options"] = {"num_cpus": 0.05,
                                                              "num_gpus": 0.25}

    [problem] = make_plan(variant(tmp_path, GPU_CONFIG, edit), GPU_BOX).problems
    assert problem.startswith("handler-demo asks for 0.25 GPU but a RunPod handler has no "
                              "CUDA memory cap setting")
