"""Fractional GPUs: the GPU config's shares pack model replicas onto one GPU.

Ray is started with one logical GPU (tests/conftest.py), so placement is real Ray
scheduling; the model code, finding no CUDA, falls back to the CPU. The shares and CUDA
caps of the config itself are checked without Ray by tests/test_plan.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

GPU_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "serve.gpu.yaml"


def gpu_deployments() -> tuple[dict, dict]:
    app = yaml.safe_load(GPU_CONFIG.read_text())["applications"][0]
    return app["args"], {d["name"]: d for d in app.get("deployments", [])}


def test_four_quarter_gpu_replicas_pack_onto_one_gpu(serve_port: int) -> None:
    from ray import serve

    from deployments.g2p.config import G2PArgs
    from deployments.g2p.deployment import G2P

    args, deployments = gpu_deployments()
    # The GPU config's share for a dental model, on G2P: the cheapest deployment that
    # reports its CUDA_VISIBLE_DEVICES (G2P itself runs on the CPU in that config).
    share = deployments["ToothSegmenter"]["ray_actor_options"]["num_gpus"]
    assert share == 0.25
    options = {"num_cpus": 0.25, "num_gpus": share}
    app = G2P.options(name="G2PPacked", num_replicas=4, ray_actor_options=options).bind(
        G2PArgs.model_validate(args["g2p"]))
    handle = serve.run(app, name="gpu-packing", route_prefix=None)
    try:
        async def describe_all() -> list[dict]:
            seen: dict[str, dict] = {}
            for _ in range(200):
                info = await handle.describe.remote()
                seen[info["replica"]] = info
                if len(seen) == 4:
                    break
            return list(seen.values())

        infos = asyncio.run(describe_all())
        assert len(infos) == 4, "expected four replicas on the single GPU"
        assert {i["cuda_visible_devices"] for i in infos} == {"0"}
        assert {i["device"] for i in infos} == {"cpu"}  # no CUDA here: CPU fallback
        status = serve.status().applications["gpu-packing"].deployments["G2PPacked"]
        assert status.replica_states.get("RUNNING") == 4
    finally:
        serve.delete("gpu-packing")
