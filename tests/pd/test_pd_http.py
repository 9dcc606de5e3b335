"""pd-segmentation end to end through the application's real HTTP ingress.

The app is `serve_app.app.build_app` serving only `pd-segmentation` (fixture `pd_base` in
conftest.py): the direct routes `POST /pd`, `POST /pd/html`, `GET /pd/healthz`, RunPod's
job API under `/v2`, the real `runpod` SDK, `.npy` / CSV files as base64 and from S3
(moto's standalone server), bad signals, and bodies or arrays too large to accept.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import runpod

from deployments.pd.evaluate import HELD_OUT_SEED, match_regions
from deployments.pd.processing import Region
from deployments.pd.synthetic import SyntheticParams, SyntheticSet, generate
from tests.clients import runpod_sdk
from tests.conftest import free_port
from tests.workload import assert_described

ENDPOINT = "pd-segmentation"
JOBS = f"/v2/{ENDPOINT}"
TIMEOUT_S = 180
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
# One noise level for every row: rows of one request share a normalization chunk, and a
# row much quieter than the others would rightly fall under the peak test.
PARAMS = SyntheticParams(noise_std=(100.0, 100.0), pulse_snr=(8.0, 16.0), max_pulses=3)
MB = 1024 * 1024
RUN_LIMIT, RUNSYNC_LIMIT = 10 * MB, 20 * MB  # JobSettings' defaults; /pd takes runsync's


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def client(pd_base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pd_base, timeout=TIMEOUT_S) as c:
        yield c


@pytest.fixture()
def sdk(pd_base: str) -> Iterator[None]:
    with runpod_sdk(pd_base, api_key="x"):  # any key: the app has no api_keys
        yield


def signals_with_pulses(n: int, seed: int) -> SyntheticSet:
    """`n` fresh (held-out seed) 4096-sample signals, each with at least one pulse."""
    data = generate(3 * n, seed=HELD_OUT_SEED + seed, params=PARAMS)
    rows = [i for i, regions in enumerate(data.regions) if regions][:n]
    assert len(rows) == n
    return SyntheticSet(data.signals[rows], data.masks[rows], [data.regions[i] for i in rows])


@pytest.fixture(scope="module")
def data() -> SyntheticSet:
    return signals_with_pulses(3, seed=71)


@pytest.fixture(scope="module")
def direct_report(client: httpx.Client, data: SyntheticSet) -> dict[str, Any]:
    """The JSON report of `data` from `POST /pd`, which the job routes must reproduce."""
    r = client.post("/pd", json={"signals": data.signals.tolist()})
    assert r.status_code == 200, r.text[:500]
    return r.json()


def predicted(result: dict[str, Any]) -> list[Region]:
    return [Region(r["start"], r["end"]) for r in result["regions"]]


def assert_finds_the_pulses(report: dict[str, Any], data: SyntheticSet) -> None:
    n = len(data.signals)
    assert report["total_samples_processed"] == n
    assert report["valid_samples_found"] == n
    assert [r["sample_index"] for r in report["results"]] == list(range(n))
    matched = total = 0
    for result, truth, mask in zip(report["results"], data.regions, data.masks, strict=True):
        regions = predicted(result)
        assert all(r["duration"] == r["end"] - r["start"] > 0 for r in result["regions"])
        assert result["signal_stats"]["num_regions"] == len(regions)
        assert result["signal_stats"]["length"] == data.signals.shape[1]
        assert result["signal_stats"]["pd_samples"] == sum(r.duration for r in regions)
        # every true pulse is overlapped by a found region, and found regions lie on pulses
        for pulse in truth:
            assert any(r.start < pulse.end and pulse.start < r.end for r in regions), (
                pulse, regions)
        on_pulses = sum(int(mask[r.start:r.end].sum()) for r in regions)
        assert on_pulses >= 0.8 * result["signal_stats"]["pd_samples"], (truth, regions)
        matched += len(match_regions(truth, regions))
        total += max(len(truth), len(regions))
    assert matched / total >= 0.8, (matched, total)


def same_regions(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return ([r["regions"] for r in a["results"]] == [r["regions"] for r in b["results"]]
            and a["total_samples_processed"] == b["total_samples_processed"])


def wait_job(client: httpx.Client, job_id: str, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """Poll /status until the job ends."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = client.get(f"{JOBS}/status/{job_id}")
        assert r.status_code == 200, r.text
        if r.json()["status"] in TERMINAL:
            return r.json()
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end within {timeout_s} s: {r.json()}")


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def csv_bytes(array: np.ndarray) -> bytes:
    header = ",".join(f"s{i}" for i in range(array.shape[1]))
    lines = [",".join(repr(float(v)) for v in row) for row in array]
    return "\n".join([header, *lines]).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_still_serving(client: httpx.Client) -> None:
    one = signals_with_pulses(1, seed=83)
    r = client.post("/pd", json={"signals": one.signals[0].tolist()})
    assert r.status_code == 200, r.text[:300]
    assert_finds_the_pulses(r.json(), one)


# ---------------------------------------------------------------- the direct routes


def test_healthz_and_endpoints(client: httpx.Client) -> None:
    r = client.get("/pd/healthz")
    assert r.status_code == 200, r.text
    health = r.json()
    assert health["status"] == "ok" and health["model_loaded"] is True
    assert health["model"]["weights_uri"].endswith("pd_unet1d.pt")
    assert health["model"]["parameters"] > 100_000
    assert list(client.get("/endpoints").json()) == [ENDPOINT]
    assert_described(client, ENDPOINT, "/pd")


def test_direct_route_finds_the_pulses(direct_report: dict[str, Any],
                                       data: SyntheticSet) -> None:
    assert_finds_the_pulses(direct_report, data)


def test_one_signal_as_a_flat_array(client: httpx.Client, data: SyntheticSet) -> None:
    r = client.post("/pd", json={"signals": data.signals[0].tolist()})
    assert r.status_code == 200, r.text[:300]
    # alone, the row is normalized by itself: the same pulses, edges may move
    assert_finds_the_pulses(r.json(), SyntheticSet(data.signals[:1], data.masks[:1],
                                                   data.regions[:1]))


def test_html_page_has_a_plot_per_signal(client: httpx.Client, data: SyntheticSet,
                                         direct_report: dict[str, Any]) -> None:
    import matplotlib.image

    r = client.post("/pd/html", json={"signals": data.signals.tolist()})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert page.count("<img") == len(data.signals)
    pngs = page.split("src='data:image/png;base64,")[1:]
    assert len(pngs) == len(data.signals)
    for png in pngs:
        raw = base64.b64decode(png.split("'", 1)[0])
        assert raw.startswith(b"\x89PNG\r\n\x1a\n")
        height, width, _ = matplotlib.image.imread(io.BytesIO(raw), format="png").shape
        assert height > 100 and width > 300
    for result in direct_report["results"]:
        title = f"Signal {result['sample_index']}: {len(result['regions'])} PD region(s)"
        assert title in page
        for region in result["regions"]:
            assert (f"<td>{region['start']}</td><td>{region['end']}</td>"
                    f"<td>{region['duration']}</td>") in page


# ---------------------------------------------------------------- the job API and the SDK


def test_runsync_gives_the_direct_report(client: httpx.Client, data: SyntheticSet,
                                         direct_report: dict[str, Any]) -> None:
    r = client.post(f"{JOBS}/runsync", json={"input": {"signals": data.signals.tolist()}})
    assert r.status_code == 200, r.text[:300]
    job = r.json()
    assert job["status"] == "COMPLETED", job
    assert same_regions(job["output"], direct_report)
    assert_finds_the_pulses(job["output"], data)


def test_run_then_status_gives_the_direct_report(client: httpx.Client, data: SyntheticSet,
                                                 direct_report: dict[str, Any]) -> None:
    r = client.post(f"{JOBS}/run", json={"input": {"signals": data.signals.tolist()}})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["status"] == "IN_QUEUE"
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "COMPLETED", job
    assert same_regions(job["output"], direct_report)


def test_runpod_sdk_run_sync_and_run(sdk: None, data: SyntheticSet,
                                     direct_report: dict[str, Any]) -> None:
    endpoint = runpod.Endpoint(ENDPOINT)
    output = endpoint.run_sync({"signals": data.signals.tolist()}, timeout=TIMEOUT_S)
    assert same_regions(output, direct_report)
    job = endpoint.run({"signals": data.signals[:2].tolist()})
    output = job.output(timeout=TIMEOUT_S)
    assert job.status() == "COMPLETED"
    assert output["total_samples_processed"] == 2
    assert_finds_the_pulses(output, SyntheticSet(data.signals[:2], data.masks[:2],
                                                 data.regions[:2]))


# ---------------------------------------------------------------- files


FILE_INPUTS = {
    "npy-base64": lambda a: {"file_base64": b64(npy_bytes(a))},
    "npy-float32-data-uri": lambda a: {
        "file_base64": "data:application/octet-stream;base64,"
                       + b64(npy_bytes(a.astype(np.float32)))},
    "csv-base64": lambda a: {"file_base64": b64(csv_bytes(a)), "format": "csv"},
    "csv-sniffed-file-url-data": lambda a: {"file_url": "data:text/csv;base64,"
                                                        + b64(csv_bytes(a))},
}


@pytest.mark.parametrize("kind", list(FILE_INPUTS))
def test_files_as_base64(client: httpx.Client, data: SyntheticSet, kind: str,
                         direct_report: dict[str, Any]) -> None:
    r = client.post("/pd", json=FILE_INPUTS[kind](data.signals))
    assert r.status_code == 200, r.text[:300]
    if "float32" in kind:  # rounded signals: the same pulses, edges may move a sample
        assert_finds_the_pulses(r.json(), data)
    else:
        assert same_regions(r.json(), direct_report)


def test_s3_file_through_the_jobs_s3_config(sdk: None, s3_server: str, data: SyntheticSet,
                                            direct_report: dict[str, Any]) -> None:
    import boto3

    bucket = "pd-signals"
    s3 = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/signals.npy", Body=npy_bytes(data.signals))
    s3.put_object(Bucket=bucket, Key="in/signals.csv", Body=csv_bytes(data.signals))
    # Ray's replicas do not see this process's AWS_ENDPOINT_URL: the job names the server.
    s3_config = {"accessId": "testing", "accessSecret": "testing", "bucketName": bucket,
                 "endpointUrl": s3_server}
    endpoint = runpod.Endpoint(ENDPOINT)
    for key in ("in/signals.npy", "in/signals.csv"):
        output = endpoint.run_sync({"input": {"file_url": f"s3://{bucket}/{key}"},
                                    "s3Config": s3_config}, timeout=TIMEOUT_S)
        assert same_regions(output, direct_report), key

    job = endpoint.run({"input": {"file_url": f"s3://{bucket}/in/absent.npy"},
                        "s3Config": s3_config})
    job.output(timeout=TIMEOUT_S)
    assert job.status() == "FAILED"
    assert f"could not read s3://{bucket}/in/absent.npy" in job._fetch_job()["error"]
    # the s3Config is what is used: pointed at a closed port, the same file is unreadable
    # (the replicas may well reach the server through an inherited AWS_ENDPOINT_URL)
    nowhere = {**s3_config, "endpointUrl": f"http://127.0.0.1:{free_port()}"}
    job = endpoint.run({"input": {"file_url": f"s3://{bucket}/in/signals.npy"},
                        "s3Config": nowhere})
    job.output(timeout=TIMEOUT_S)
    assert job.status() == "FAILED"
    assert job._fetch_job()["error"] == f"could not read s3://{bucket}/in/signals.npy"


# ---------------------------------------------------------------- bad signals


GOOD_ROW = [0.5, -0.25] * 16  # 32 samples


def raw(text: str) -> bytes:
    """A JSON body with tokens no JSON encoder writes (NaN, Infinity)."""
    return text.encode()


# (case, body: a JSON-able object or raw bytes, status, words in the error)
BAD_SIGNALS: list[tuple[str, Any, int, str]] = [
    ("nan-token", raw('{"signals": [[0.5, 1.0, NaN' + ", 0.5" * 29 + "]]}"), 400,
     "signals contain 1 NaN, infinite or null values (first at signal 0, sample 2)"),
    ("infinity-token", raw('{"signals": [' + "0.5, " * 20 + "Infinity, -Infinity]}"), 400,
     "signals contain 2 NaN, infinite or null values (first at signal 0, sample 20)"),
    ("overflowing-number", raw('{"signals": [' + "0.5, " * 20 + "1e999]}"), 400,
     "1 NaN, infinite or null values (first at signal 0, sample 20)"),
    ("null", {"signals": [GOOD_ROW, [*GOOD_ROW[:-1], None]]}, 400,
     "1 NaN, infinite or null values (first at signal 1, sample 31)"),
    ("ragged", {"signals": [GOOD_ROW, GOOD_ROW[:-3]]}, 400,
     "signals must all have the same length: signal 0 has 32 samples, signal 1 has 29"),
    ("3-d", {"signals": [[GOOD_ROW, GOOD_ROW]]}, 400, "got 3-D"),
    ("empty", {"signals": []}, 400, "signals are empty"),
    ("empty-row", {"signals": [[]]}, 400, "signals are empty"),
    ("strings", {"signals": ["a"] * 32}, 400, "signals must contain only numbers"),
    ("a-string", {"signals": "1,2,3"}, 400,
     "signals must be a JSON array of numbers or of arrays of numbers"),
    ("mixed", {"signals": [GOOD_ROW, 1.0]}, 400, "signals mix arrays and numbers"),
    ("too-short", {"signals": [1.0] * 10}, 400, "at least 16 samples, got 10"),
    ("no-source", {}, 400, "give exactly one of signals, file_url or file_base64"),
    ("two-sources", {"signals": GOOD_ROW, "file_url": "s3://b/k"}, 400,
     "(got signals, file_url)"),
    ("unknown-key", {"signals": GOOD_ROW, "sampling_rate": 1e6}, 400,
     "sampling_rate: Extra inputs are not permitted"),
    ("bad-base64", {"file_base64": "@@not base64@@"}, 400, "not valid base64"),
    ("npy-3d", {"file_base64": b64(npy_bytes(np.zeros((2, 2, 32))))}, 400,
     "got 3-D with shape [2, 2, 32]"),
    ("npy-nan", {"file_base64": b64(npy_bytes(np.array([0.5] * 31 + [np.nan])))}, 400,
     "1 NaN, infinite or null values (first at signal 0, sample 31)"),
    ("csv-ragged", {"file_base64": b64(b"1,2,3\n4,5\n"), "format": "csv"}, 400,
     "CSV rows must all have the same number of values"),
    ("csv-words", {"file_base64": b64(b"1," * 20 + b"x\n"), "format": "csv"}, 400,
     "CSV values must be numbers: data row 1, value 21 is not a number"),
    ("file-url-scheme", {"file_url": "ftp://host/x.npy"}, 400,
     "file_url must be an https://, http://, s3:// or data: URL"),
    ("too-many-rows", {"signals": [[0.0] * 16] * 513}, 413,
     "513 signals is more than the limit of 512"),
]


def body_kwargs(body: Any, wrap: bool = False) -> dict[str, Any]:
    """httpx arguments sending `body` (as the job's input when `wrap`)."""
    if isinstance(body, bytes):
        content = b'{"input": ' + body + b"}" if wrap else body
        return {"content": content, "headers": {"content-type": "application/json"}}
    return {"json": {"input": body} if wrap else body}


@pytest.mark.parametrize(("case", "body", "status", "words"), BAD_SIGNALS,
                         ids=[c[0] for c in BAD_SIGNALS])
def test_bad_signals_on_the_direct_route(client: httpx.Client, case: str, body: Any,
                                         status: int, words: str) -> None:
    r = client.post("/pd", **body_kwargs(body))
    assert r.status_code == status, r.text[:300]
    assert r.headers["content-type"] == "application/json"
    assert words in r.json()["error"], r.json()


def test_bad_signals_on_the_html_route(client: httpx.Client) -> None:
    r = client.post("/pd/html", json={"signals": [GOOD_ROW, GOOD_ROW[:-3]]})
    assert r.status_code == 400
    assert "same length" in r.json()["error"]


def test_bad_signals_as_jobs_fail_with_the_reason(client: httpx.Client) -> None:
    ids = {}
    for case, body, _, _ in BAD_SIGNALS:
        r = client.post(f"{JOBS}/run", **body_kwargs(body, wrap=True))
        assert r.status_code == 200, (case, r.text[:300])
        ids[case] = r.json()["id"]
    for case, _, _, words in BAD_SIGNALS:
        job = wait_job(client, ids[case])
        assert job["status"] == "FAILED", (case, job)
        assert words in job["error"], (case, job["error"])
        assert "Traceback" not in job["error"] and "RayTaskError" not in job["error"]


def test_json_encoders_cannot_send_nan() -> None:
    """What arrives: strict encoders (httpx, requests, and so the runpod SDK) refuse NaN
    client-side; only a hand-made body carries the non-standard NaN/Infinity tokens,
    which the server parses and then refuses (the raw-token cases above)."""
    with pytest.raises(ValueError, match="not JSON compliant"):
        httpx.Request("POST", "http://x/pd", json={"signals": [float("nan")]})
    assert json.dumps([float("nan"), float("inf")]) == "[NaN, Infinity]"


# ---------------------------------------------------------------- size limits


@pytest.mark.parametrize(("path", "limit"), [("/pd", RUNSYNC_LIMIT),
                                             (f"{JOBS}/run", RUN_LIMIT),
                                             (f"{JOBS}/runsync", RUNSYNC_LIMIT)])
def test_a_body_over_the_limit_is_refused_unread(client: httpx.Client, path: str,
                                                 limit: int) -> None:
    numbers = b"0.125," * (25 * MB // 6) + b"0.125"  # a 25 MB array of numbers
    inner = b'{"signals": [' + numbers + b"]}"
    body = inner if path == "/pd" else b'{"input": ' + inner + b"}"
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    assert f"exceeds the limit of {limit} bytes" in r.json()["error"]
    del body, inner, numbers
    assert_still_serving(client)


def test_a_chunked_body_over_the_limit_is_refused(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the ingress counts as it reads
        yield b'{"signals": ['
        for _ in range(25):
            yield b"0.125," * (MB // 6)
        yield b"0.125]}"

    r = client.post("/pd", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    assert f"exceeds the limit of {RUNSYNC_LIMIT} bytes" in r.json()["error"]
    assert_still_serving(client)


def fake_npy(shape: tuple[int, ...], data_bytes: int = 1024) -> bytes:
    """An .npy whose header declares `shape` (float64) but holds only `data_bytes`."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * data_bytes


def test_fake_npy_headers_are_what_numpy_reads() -> None:
    from deployments.pd.inputs import npy_header

    assert npy_header(fake_npy((512, 800_000))[:768])[0] == (512, 800_000)
    assert npy_header(fake_npy((900_000,))[:768])[0] == (900_000,)


OVERSIZE_FILES = [
    # a real array over max_samples: refused by its header, before it is decoded
    ("npy-too-long", lambda: {"file_base64": b64(npy_bytes(np.ones((1, 900_000), np.int8)))},
     "signals of 900000 samples are longer than the limit of 800000"),
    # 3.3 GB declared, 1 KB present: decoding it would fail ("not a readable .npy") rather
    # than name the limit, so the 413 shows the header was read first
    ("npy-header-claims-3gb", lambda: {"file_base64": b64(fake_npy((512, 800_000)))},
     "512 x 800000 samples is more than the limit of 4000000 samples per request"),
    ("npy-header-too-long-data-uri",
     lambda: {"file_base64": "data:application/octet-stream;base64,"
                             + b64(fake_npy((900_000,)))},
     "signals of 900000 samples are longer than the limit of 800000"),
]


@pytest.mark.parametrize(("case", "make", "words"), OVERSIZE_FILES,
                         ids=[c[0] for c in OVERSIZE_FILES])
def test_an_oversize_npy_is_refused_by_its_header(client: httpx.Client, case: str, make: Any,
                                                  words: str) -> None:
    body = make()
    r = client.post("/pd", json=body)
    assert r.status_code == 413, r.text[:300]
    assert words in r.json()["error"]
    job = client.post(f"{JOBS}/runsync", json={"input": body}).json()
    assert job["status"] == "FAILED" and words in job["error"], job
    assert_still_serving(client)


# ---------------------------------------------------------------- decoders: declared sizes


def test_an_npy_header_declaring_unicode_strings_is_a_400(client: httpx.Client) -> None:
    """A 100-byte .npy header declaring dtype <U100000 was a 500 (numpy allocated the
    declared 298 GiB array before reading the data)."""
    from bench.input_memory import npy_header_only

    body = {"file_base64": b64(npy_header_only("<U100000", (800_000,), 100))}
    for data in (body, {**body, "format": "npy"}):
        r = client.post("/pd", json=data)
        assert r.status_code == 400, r.text[:300]
        assert ".npy dtype <U100000 is not accepted: signals must be real numbers" in (
            r.json()["error"])
    job = client.post(f"{JOBS}/runsync", json={"input": body}).json()
    assert job["status"] == "FAILED" and "<U100000 is not accepted" in job["error"], job
    assert_still_serving(client)


def test_an_oversize_csv_is_refused_while_it_is_parsed(client: httpx.Client) -> None:
    """A 12 MB one-row CSV (2 million values): refused once the row passes max_samples,
    not after the whole file is split into strings (+1.7 GB for 64 MB before)."""
    data = b"0.125," * 2_000_000 + b"0.125\n"
    r = client.post("/pd", json={"file_base64": b64(data), "format": "csv"})
    assert r.status_code == 413, r.text[:300]
    assert "CSV data row 1 has more than 800000 values" in r.json()["error"]
    assert_still_serving(client)


def test_a_csv_parse_error_does_not_quote_the_content(client: httpx.Client) -> None:
    """A fetched page that is not numbers comes back as where and what, not as text."""
    page = b"1,2,3\n4,5,<title>internal admin secret-token-42</title>\n"
    r = client.post("/pd", json={"file_base64": b64(page)})
    assert r.status_code == 400, r.text[:300]
    error = r.json()["error"]
    assert "data row 2, value 3 is not a number" in error
    assert "secret" not in error and "title" not in error
