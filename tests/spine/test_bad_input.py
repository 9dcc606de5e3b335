"""Bad requests get a 4xx with a JSON `error` naming the problem, never a 500, and the
server keeps serving."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests.spine.conftest import API_KEY

CASES = [
    # (method, path, kwargs, status, words the error must contain)
    ("POST", "/v2/demo/run", {"content": b"{not json"}, 400, "not valid JSON"),
    ("POST", "/v2/demo/run", {"content": b""}, 400, "'input'"),
    ("POST", "/v2/demo/run", {"json": {"inputs": {}}}, 400, "no 'input'"),
    ("POST", "/v2/demo/run", {"json": {"input": [1, 2]}}, 400, "'input' must be a JSON object"),
    ("POST", "/v2/demo/run", {"json": {"input": "text"}}, 400, "'input' must be a JSON object"),
    ("POST", "/v2/demo/run", {"json": [1]}, 400, "JSON object"),
    ("POST", "/v2/demo/run", {"json": {"input": {}, "policy": {"executionTimeout": "soon"}}},
     400, "policy.executionTimeout"),
    ("POST", "/v2/demo/run", {"json": {"input": {}, "policy": {"executionTimeout": 100}}},
     400, "executionTimeout must be between 5000"),
    ("POST", "/v2/demo/run", {"json": {"input": {}, "policy": {"ttl": 10**12}}},
     400, "ttl must be between"),
    ("POST", "/v2/demo/run", {"json": {"input": {}, "policy": {"bogus": 1}}}, 400, "bogus"),
    ("POST", "/v2/demo/run", {"json": {"input": {}, "webhook": "not a url"}}, 400, "webhook"),
    ("POST", "/v2/demo/run", {"json": {"input": {}, "s3Config": {"accessId": 1}}}, 400,
     "s3Config"),
    ("POST", "/v2/nope/run", {"json": {"input": {}}}, 404, "unknown endpoint 'nope'"),
    ("GET", "/v2/nope/health", {}, 404, "unknown endpoint"),
    ("GET", "/v2/demo/status/no-such-job", {}, 404, "no job 'no-such-job'"),
    ("POST", "/v2/demo/cancel/no-such-job", {}, 404, "no job"),
    ("POST", "/v2/demo/retry/no-such-job", {}, 404, "no job"),
    ("GET", "/v2/demo/stream/no-such-job", {}, 404, "no job"),
    ("GET", "/v2/demo/status/x?ttl=-5", {}, 400, "ttl"),
    ("POST", "/v2/demo/run", {"content": b'{"input": {"x": "' + b"a" * (10 * 2**20) + b'"}}'},
     413, "exceeds the limit of 10485760"),
    ("POST", "/v2/demo/runsync", {"content": b'{"input": {"x": "' + b"a" * (21 * 2**20) + b'"}}'},
     413, "exceeds the limit of 20971520"),
    ("POST", "/ipa", {"content": b"[]"}, 400, "JSON object"),
    ("POST", "/ipa", {"json": {"text": 5}}, 400, "text"),
    ("POST", "/ipa", {"json": {"language": "en-us"}}, 400, "text"),
    ("POST", "/ipa", {"json": {"text": "hi", "language": "xx-yy"}}, 400, "language 'xx-yy'"),
    ("POST", "/ipa", {"json": {"text": "hi", "backend": "magic"}}, 400, "unknown backend 'magic'"),
    ("POST", "/ipa", {"json": {"text": "   "}}, 400, "text is empty"),
    ("POST", "/ipa", {"json": {"text": "a" * 2001}}, 413, "limit is 2000"),
    ("POST", "/no-such-route", {"json": {}}, 404, "no route /no-such-route"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "words"), CASES,
                         ids=[f"{c[0]} {c[1][:40]} {c[3]}" for c in CASES])
def test_bad_request_gets_a_clear_json_error(client: httpx.Client, method: str, path: str,
                                             kwargs: dict, status: int, words: str) -> None:
    r = client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_the_server_keeps_serving_after_bad_requests(client: httpx.Client) -> None:
    for method, path, kwargs, _, _ in CASES[:8]:
        client.request(method, path, **kwargs)
    assert client.post("/ipa", json={"text": "still here"}).status_code == 200
    assert client.get("/v2/demo/health").status_code == 200


def test_bad_input_submitted_as_a_job_fails_with_the_message(client: httpx.Client) -> None:
    r = client.post("/v2/ipa-generation/runsync", json={"input": {"text": "hi", "language": "zz"}})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "FAILED"
    assert "language 'zz' is not supported" in body["error"]
    body = client.post("/v2/ipa-generation/runsync", json={"input": {"txt": "hi"}}).json()
    assert body["status"] == "FAILED" and "text" in body["error"]


@pytest.mark.parametrize("header", [None, "Bearer wrong", "wrong", "Bearer"])
def test_bad_or_missing_api_key_is_401(secured_url: str, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    r = httpx.post(f"{secured_url}/v2/demo/run", json={"input": {}}, headers=headers)
    assert r.status_code == 401 and "API key" in r.json()["error"], r.text
    r = httpx.get(f"{secured_url}/v2/demo/health", headers=headers)
    assert r.status_code == 401


@pytest.mark.parametrize("header", [f"Bearer {API_KEY}", API_KEY, f"bearer {API_KEY}"])
def test_bearer_and_bare_keys_are_accepted(secured_url: str, header: str) -> None:
    r = httpx.post(f"{secured_url}/v2/demo/runsync", json={"input": {"echo": 1}},
                   headers={"Authorization": header}, timeout=60)
    assert r.status_code == 200 and r.json()["output"]["echo"] == 1


def test_open_server_needs_no_key(client: httpx.Client) -> None:
    assert client.get("/v2/demo/health").status_code == 200


@pytest.mark.parametrize(("job_input", "words"), [
    ({"steps": 10**9}, "steps must be a number from 1 to 100"),
    ({"delay_s": 1e9}, "delay_s must be a number from 0 to 30"),
    ({"steps": "many"}, "steps must be"),
])
def test_the_demo_worker_bounds_the_work_it_is_asked_for(client: httpx.Client,
                                                         job_input: dict, words: str) -> None:
    body = client.post("/v2/demo/runsync", json={"input": job_input}).json()
    assert body["status"] == "FAILED" and words in body["error"], body


def test_the_demo_worker_writes_no_file_a_caller_names(client: httpx.Client,
                                                       tmp_path: Path) -> None:
    victim = tmp_path / "jobs.sqlite3"
    victim.write_text("precious")
    body = client.post("/v2/demo/runsync", json={"input": {"marker": str(victim)}}).json()
    assert body["status"] == "COMPLETED" and victim.read_text() == "precious"


def test_the_shipped_config_serves_no_demo_handler() -> None:
    (app,) = yaml.safe_load(Path("configs/serve.yaml").read_text())["applications"]
    assert not app["args"].get("handlers")
