"""The dental-pano pipeline without Ray: stand-in model calls with known outputs, real
decoding, findings, CSV, overlays and S3 uploads (moto's standalone server)."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import time
import uuid
from typing import Any

import httpx
import numpy as np
import pytest

from deployments.common.errors import InputError, TooLarge, Unsupported
from deployments.common.outbound import OutboundPolicy
from deployments.dental.config import DentalArgs
from deployments.dental.pipeline import DentalAnalyzer
from deployments.dental.report import INSTANCE_OVERLAY, SEMANTIC_OVERLAY
from deployments.dental.structures import Detections, Instance, SegmentationResult
from tests.dental.dental_helpers import S3Server

H, W = 256, 512
#: tooth 36 (semantic class 22) fills this box of the stand-in segmentation
TOOTH_36 = (100, 150, 200, 250)  # x0, y0, x1, y1
MODEL_S = 0.05
ARGS = DentalArgs(outbound=OutboundPolicy(allow_networks=["127.0.0.1/32"]))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


class StandIns:
    """The two model calls: a segmentation with tooth 36 in one box, a detection of
    caries on it (score 0.9). Each takes MODEL_S; calls and cancellations are recorded."""

    def __init__(self, fail: str | None = None, delay_s: float = MODEL_S) -> None:
        self.fail, self.delay_s = fail, delay_s
        self.calls: list[str] = []
        self.cancelled: list[str] = []

    async def _work(self, name: str) -> None:
        self.calls.append(name)
        try:
            await asyncio.sleep(self.delay_s if self.fail != name else 0.01)
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        if self.fail == name:
            raise RuntimeError(f"{name} model crashed")

    async def segment(self, image: np.ndarray) -> SegmentationResult:
        started = time.time()
        await self._work("segment")
        height, width = image.shape[:2]
        prob = np.zeros((33, height // 2, width // 2), dtype=np.float16)  # a smaller grid
        prob[0] = 1
        x0, y0, x1, y1 = (v // 2 for v in TOOTH_36)
        prob[0, y0:y1, x0:x1], prob[22, y0:y1, x0:x1] = 0, 1
        return SegmentationResult(prob=prob, image_size=(height, width),
                                  model_info={"weights": "stand-in", "untrained": False},
                                  started_at=started, finished_at=time.time())

    async def detect(self, image: np.ndarray) -> Detections:
        started = time.time()
        await self._work("detect")
        x0, y0, x1, y1 = TOOTH_36
        caries = Instance(score=0.9, class_id=6, class_name="CARIES", box=TOOTH_36,
                          mask=np.ones((y1 - y0, x1 - x0), dtype=bool))
        return Detections(instances=[caries], image_size=image.shape[:2],
                          model_info={"weights": "stand-in", "untrained": True},
                          started_at=started, finished_at=time.time(), batch_size=1)


def analyzer(models: StandIns, **changes: Any) -> DentalAnalyzer:
    return DentalAnalyzer(models.segment, models.detect, ARGS.model_copy(update=changes))


def run(models: StandIns, job: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return asyncio.run(analyzer(models, **changes).run(job))


def test_inline_output_findings_csv_overlays_and_timings(radiograph_png: bytes) -> None:
    models = StandIns()
    out = run(models, {"id": "job-1", "input": {"image_url": data_uri(radiograph_png),
                                                "debug": True}})
    assert sorted(models.calls) == ["detect", "segment"]
    assert {"fdi": "36", "finding": "CARIES", "score": 0.9} in out["findings"]
    assert out["num_findings"] == len(out["findings"])
    assert all(f["score"] >= ARGS.min_score for f in out["findings"])
    rows = list(csv.reader(io.StringIO(out["csv_data"])))
    assert rows[0] == ["file_name", "fdi", "finding", "score"] and len(rows) == 1 + 8 * 32
    assert ["job-1", "36", "CARIES", "0.900000"] in [r[:3] + [f"{float(r[3]):.6f}"]
                                                     for r in rows[1:]]
    # the detector's stand-in says it is untrained: a warning and banner-marked overlays
    assert len(out["warnings"]) == 1 and "detection" in out["warnings"][0]
    assert set(out["debug_images"]) == {SEMANTIC_OVERLAY, INSTANCE_OVERLAY}
    assert all(base64.b64decode(b)[:2] == b"\xff\xd8" for b in out["debug_images"].values())
    assert "csv_url" not in out and out["detection_batch_size"] == 1

    timings = out["timings_ms"]
    assert set(timings) == {"fetch_decode", "segmentation", "detection", "branches_overlap",
                            "models_wall", "postprocess", "total"}
    # the two calls ran at the same time: about one model's time, not two
    assert timings["branches_overlap"] > 0.5 * MODEL_S * 1000, timings
    assert timings["models_wall"] < 1.7 * MODEL_S * 1000, timings
    assert timings["total"] >= timings["models_wall"]


def test_without_debug_no_overlays_and_min_score_from_the_request(radiograph_png: bytes) -> None:
    out = run(StandIns(), {"id": "j", "input": {"image_url": data_uri(radiograph_png),
                                                "min_score": 0.95}})
    assert out["debug_images"] == {}
    assert all(f["score"] >= 0.95 for f in out["findings"])
    assert {"fdi": "36", "finding": "CARIES", "score": 0.9} not in out["findings"]


def test_with_s3_config_the_outputs_are_uploaded(s3: S3Server,
                                                 radiograph_png: bytes) -> None:
    bucket = f"dental-{uuid.uuid4().hex[:8]}"
    s3.client().create_bucket(Bucket=bucket)
    out = run(StandIns(), {"id": "job/7", "s3Config": s3.s3_config(bucket),
                           "input": {"image_url": data_uri(radiograph_png), "debug": True}},
              output_prefix="scans")
    assert "csv_data" not in out
    assert {"fdi": "36", "finding": "CARIES", "score": 0.9} in out["findings"]
    assert httpx.get(out["input_image_url"]).content == radiograph_png
    assert httpx.get(out["csv_url"]).text.startswith("file_name,fdi,finding,score")
    assert set(out["debug_images"]) == {SEMANTIC_OVERLAY, INSTANCE_OVERLAY}
    keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {f"scans/job_7/{k}" for k in ("input.png", "findings.csv",
                                                  SEMANTIC_OVERLAY, INSTANCE_OVERLAY)}
    assert {"total", "postprocess"} <= set(out["timings_ms"])


@pytest.mark.parametrize(("job", "error", "message"), [
    ({"id": "x"}, InputError, "'input' object"),
    ({"id": "x", "input": {"debug": True}}, InputError, "image_url: Field required"),
    ({"id": "x", "input": {"image_url": "x", "min_score": 2}}, InputError, "min_score"),
    ({"id": "x", "input": {"image_url": data_uri(b"not an image at all")}}, Unsupported,
     "not a decodable image"),
    ({"id": "x", "input": {"image_url": "ftp://example.org/pan.png"}}, InputError,
     "unsupported URL scheme"),
    ({"id": "x", "input": {"image_url": "s3://b/x.png"}, "s3Config": {"accessId": "a"}},
     InputError, "s3Config is missing"),
])
def test_bad_input_is_refused_before_any_model_call(job: dict[str, Any], error: type,
                                                    message: str) -> None:
    models = StandIns()
    with pytest.raises(error, match=message):
        run(models, job)
    assert models.calls == []


def test_too_large_inputs(radiograph_png: bytes) -> None:
    job = {"id": "x", "input": {"image_url": data_uri(radiograph_png)}}
    with pytest.raises(TooLarge, match="larger than the limit of 1000 bytes"):
        run(StandIns(), job, max_image_bytes=1000)
    with pytest.raises(TooLarge, match=f"{W}x{H} pixels, more than the limit"):
        run(StandIns(), job, max_image_pixels=W * H - 1)
    assert run(StandIns(), job, max_image_pixels=W * H)["findings"]  # at the limit: accepted


@pytest.mark.parametrize("failing", ["segment", "detect"])
def test_a_failing_model_fails_the_job_and_cancels_the_other(failing: str,
                                                            radiograph_png: bytes) -> None:
    models = StandIns(fail=failing, delay_s=5)
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match=f"{failing} model crashed"):
        run(models, {"id": "x", "input": {"image_url": data_uri(radiograph_png)}})
    assert time.perf_counter() - started < 2  # not waiting for the other's 5 s
    assert models.cancelled == [{"segment": "detect", "detect": "segment"}[failing]]


def test_models_over_their_time_limit_are_cancelled(radiograph_png: bytes) -> None:
    models = StandIns(delay_s=5)
    with pytest.raises(TimeoutError, match="longer than 0.2 s"):
        run(models, {"id": "x", "input": {"image_url": data_uri(radiograph_png)}},
            model_timeout_s=0.2)
    assert sorted(models.cancelled) == ["detect", "segment"]


def test_an_input_error_from_a_model_replica_comes_back_plain(radiograph_png: bytes) -> None:
    class Wrapped(Exception):  # the shape of Ray's task error: the cause as an attribute
        def __init__(self, cause: BaseException) -> None:
            super().__init__("wrapped")
            self.cause = cause

    async def segment(image: np.ndarray) -> SegmentationResult:
        raise Wrapped(TooLarge("the segmenter refuses this size"))

    pipeline = DentalAnalyzer(segment, StandIns().detect, ARGS)
    with pytest.raises(TooLarge, match="refuses this size") as info:
        asyncio.run(pipeline.run({"input": {"image_url": data_uri(radiograph_png)}}))
    assert type(info.value) is TooLarge


def test_a_cancellable_response_is_cancelled_too(radiograph_png: bytes) -> None:
    """Serve's DeploymentResponse keeps running in its replica unless cancelled itself."""
    cancelled = []

    class Response:
        def __init__(self, name: str) -> None:
            self.name = name

        def __await__(self) -> Any:
            return asyncio.sleep(5).__await__()

        def cancel(self) -> None:
            cancelled.append(self.name)

    async def detect(image: np.ndarray) -> Detections:
        raise RuntimeError("detector down")

    pipeline = DentalAnalyzer(lambda image: Response("segment"), detect, ARGS)
    with pytest.raises(RuntimeError, match="detector down"):
        asyncio.run(pipeline.run({"input": {"image_url": data_uri(radiograph_png)}}))
    assert cancelled == ["segment"]
