"""The dental-pano graph on a real Serve instance: shape, overlays, overlap, S3, errors.
The model deployments' health checks are tested on their plain classes, without Ray."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from deployments.common.errors import InputError
from deployments.common.outbound import OutboundPolicy
from deployments.dental.config import DentalArgs
from deployments.dental.deployment import FindingDetector, ToothSegmenter, build_dental_app
from deployments.dental.report import INSTANCE_OVERLAY, SEMANTIC_OVERLAY
from tests.dental.dental_helpers import S3Server

TIMEOUT_S = 180


@pytest.fixture(scope="module")
def dental(serve_port: int) -> Iterator[Any]:
    from ray import serve

    name = f"dental-test-{uuid.uuid4().hex[:8]}"
    # A batch window long enough that concurrent jobs share a detector batch; the S3
    # server is local.
    args = DentalArgs(batch_wait_timeout_s=0.05, max_batch_size=4,
                      outbound=OutboundPolicy(allow_networks=["127.0.0.1/32"]))
    handle = serve.run(build_dental_app(args), name=name, route_prefix=f"/{name}")
    yield handle
    serve.delete(name)


def run(handle: Any, job: dict[str, Any]) -> dict[str, Any]:
    return handle.run.remote(job).result(timeout_s=TIMEOUT_S)


def decode_jpeg(data: bytes) -> np.ndarray:
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_inline_job_output_shape_overlays_and_overlap(dental: Any,
                                                      radiograph_data_uri: str) -> None:
    out = run(dental, {"id": "job-inline", "input": {"image_url": radiograph_data_uri,
                                                     "debug": True, "min_score": 0.0}})
    rows = csv_rows(out["csv_data"])
    assert rows[0] == ["file_name", "fdi", "finding", "score"] and len(rows) == 257
    assert {r[0] for r in rows[1:]} == {"job-inline"}  # inline data: named after the job
    assert out["num_findings"] == len(out["findings"]) == 256  # min_score 0 lists all
    assert set(out["findings"][0]) == {"fdi", "finding", "score"}

    # No trained weights configured: the output must say so.
    assert out["model_info"]["segmentation"]["untrained"] is True
    assert out["model_info"]["detection"]["untrained"] is True
    assert len(out["warnings"]) == 2 and all("not a diagnosis" in w for w in out["warnings"])

    assert set(out["debug_images"]) == {SEMANTIC_OVERLAY, INSTANCE_OVERLAY}
    for b64 in out["debug_images"].values():
        assert decode_jpeg(base64.b64decode(b64)).shape == (256, 512, 3)

    timings = out["timings_ms"]
    assert timings["branches_overlap"] > 0, timings  # both models ran at the same time
    assert timings["models_wall"] < timings["segmentation"] + timings["detection"], timings


def test_without_debug_no_overlays_and_default_threshold(dental: Any,
                                                         radiograph_data_uri: str) -> None:
    out = run(dental, {"id": "job-plain", "input": {"image_url": radiograph_data_uri}})
    assert out["debug_images"] == {}
    assert all(f["score"] >= 0.5 for f in out["findings"])
    assert out["num_findings"] == len(out["findings"])


def test_concurrent_jobs_share_detector_batches(dental: Any, radiograph_data_uri: str) -> None:
    responses = [dental.run.remote({"id": f"c{i}", "input": {"image_url": radiograph_data_uri}})
                 for i in range(4)]
    outputs = [r.result(timeout_s=TIMEOUT_S) for r in responses]
    assert max(o["detection_batch_size"] for o in outputs) >= 2


def test_s3_in_and_out(dental: Any, s3: S3Server, radiograph_png: bytes) -> None:
    bucket = f"caller-{uuid.uuid4().hex[:8]}"
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="scans/pan-0001.png", Body=radiograph_png)
    out = run(dental, {"id": "job-s3", "s3Config": s3.s3_config(bucket),
                       "input": {"image_url": f"s3://{bucket}/scans/pan-0001.png",
                                 "debug": True}})
    assert "csv_data" not in out
    rows = csv_rows(httpx.get(out["csv_url"]).text)
    assert len(rows) == 257 and rows[1][0] == "pan-0001"
    assert httpx.get(out["input_image_url"]).content == radiograph_png
    assert set(out["debug_images"]) == {SEMANTIC_OVERLAY, INSTANCE_OVERLAY}
    for url in out["debug_images"].values():
        assert decode_jpeg(httpx.get(url).content).shape == (256, 512, 3)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="dental-pano/")
            ["Contents"]}
    assert keys == {"dental-pano/job-s3/" + k for k in
                    ("input.png", "findings.csv", SEMANTIC_OVERLAY, INSTANCE_OVERLAY)}


@pytest.mark.parametrize(("job", "message"), [
    ({"id": "x", "input": {"image_url": "data:image/png;base64," +
                           base64.b64encode(b"not an image at all").decode()}},
     "not a decodable image"),
    ({"id": "x", "input": {"debug": True}}, "image_url"),
    ({"id": "x"}, "'input' object"),
    ({"id": "x", "input": {"image_url": "s3://no-such-bucket-here/x.png"},
      "s3Config": {"accessId": "a"}}, "s3Config is missing"),
])
def test_bad_input_is_an_input_error_and_the_app_carries_on(
        dental: Any, radiograph_data_uri: str, job: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        run(dental, job)
    assert run(dental, {"id": "after", "input": {"image_url": radiograph_data_uri}})["csv_data"]


def test_model_deployments_check_health_with_a_tiny_pass() -> None:
    args = DentalArgs(device="cpu", segmentation_max_side=64)
    for deployment in (ToothSegmenter, FindingDetector):
        replica = deployment.func_or_class(args)  # the plain class: no Ray
        asyncio.run(replica.check_health())
