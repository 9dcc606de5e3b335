"""S3 in and out against moto's standalone server (real HTTP, real boto3)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from deployments.common import fetch
from deployments.common.errors import InputError
from deployments.common.fetch import S3Config, fetch_input
from deployments.common.outbound import OutboundPolicy
from deployments.common.uploads import job_prefix
from deployments.dental.detection import load_detection_model
from deployments.dental.report import DentalReport
from tests.dental.dental_helpers import S3Server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"dental-{uuid.uuid4().hex[:8]}"
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def default_chain(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3's default credential chain pointed at the test server, as a deployment sees it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.access_secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


#: the test S3 server listens on loopback
LOCAL = OutboundPolicy(allow_networks=["127.0.0.1/32"])


def test_s3_input_with_the_jobs_s3_config(s3: S3Server, bucket: str,
                                          radiograph_png: bytes) -> None:
    s3.client().put_object(Bucket=bucket, Key="in/pan.png", Body=radiograph_png)
    config = S3Config.from_request(s3.s3_config(bucket))
    assert fetch_input(f"s3://{bucket}/in/pan.png", 1 << 20, LOCAL, s3=config) == radiograph_png
    with pytest.raises(InputError, match="larger than the limit"):
        fetch_input(f"s3://{bucket}/in/pan.png", 100, LOCAL, s3=config)
    with pytest.raises(InputError, match="could not read"):
        fetch_input(f"s3://{bucket}/in/absent.png", 1 << 20, LOCAL, s3=config)


@pytest.mark.usefixtures("default_chain")
def test_s3_input_with_the_default_credential_chain(s3: S3Server, bucket: str,
                                                    radiograph_png: bytes) -> None:
    s3.client().put_object(Bucket=bucket, Key="pan.png", Body=radiograph_png)
    server_may = OutboundPolicy(server_s3_buckets=[bucket])
    assert fetch_input(f"s3://{bucket}/pan.png", 1 << 20, server_may) == radiograph_png


def test_outputs_are_uploaded_and_readable_at_their_urls(s3: S3Server, bucket: str,
                                                         radiograph_png: bytes) -> None:
    config = S3Config.from_request(s3.s3_config(bucket))
    prefix = job_prefix("dental-pano", "job/42")
    assert prefix == "dental-pano/job_42/"
    jpegs = {"semantic-segmentation.jpg": b"\xff\xd8 fake jpeg"}
    report = DentalReport(findings=[], model_info={}, warnings=[], csv_text="file_name,fdi\n",
                          overlays=jpegs)
    urls = report.upload(config, LOCAL, prefix, radiograph_png, "PNG", 600)
    assert urls["num_findings"] == 0 and "csv_data" not in urls
    expected = {
        urls["input_image_url"]: (radiograph_png, "image/png"),
        urls["csv_url"]: (b"file_name,fdi\n", "text/csv"),
        urls["debug_images"]["semantic-segmentation.jpg"]: (jpegs["semantic-segmentation.jpg"],
                                                            "image/jpeg"),
    }
    for url, (body, content_type) in expected.items():
        response = httpx.get(url)  # presigned: no credentials needed
        assert response.status_code == 200, url
        assert response.content == body
        assert response.headers["content-type"] == content_type
    keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {prefix + k for k in ("input.png", "findings.csv", "semantic-segmentation.jpg")}


@pytest.mark.usefixtures("default_chain")
def test_detector_weights_from_an_s3_uri(s3: S3Server, bucket: str, tmp_path: Path,
                                         built_weights: dict[str, Path],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "WEIGHTS_CACHE_DIR", tmp_path / "cache")  # no stale cache hit
    s3.client().upload_file(str(built_weights["detection"]), bucket, "models/yolo-seg.pt")
    model = load_detection_model(f"s3://{bucket}/models/yolo-seg.pt")
    assert model.info["weights"] == f"s3://{bucket}/models/yolo-seg.pt"
    assert model.info["untrained"] is True
    assert list((tmp_path / "cache").rglob("yolo-seg.pt"))
