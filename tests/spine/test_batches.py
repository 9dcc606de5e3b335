"""RunPod's Batch Jobs API against the running application, over real HTTP: every route,
every state, the limits and bad input."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from serve_app.jobs.settings import JobSettings
from tests.clients import Receiver
from tests.spine.conftest import wait_for

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SUMMARY = {"id", "endpointId", "status", "requestTotal", "requestInProgress",
           "requestCompleted", "requestFailed", "createdAt"}


def ended(client: httpx.Client, url: str, timeout_s: float = 60) -> dict:
    return wait_for(client, url, lambda b: b.get("endedAt") is not None, timeout_s)


def test_a_batch_from_draft_to_its_end(client: httpx.Client, receiver: Receiver) -> None:
    r = client.post(f"/v2/demo/batch?name=nightly&webhook={receiver.url('/ok/spine-batch')}",
                    json=[{"input": {"echo": "a"}}, {"input": {"echo": "b"}}])
    assert r.status_code == 200 and set(r.json()) == {"id", "status"}
    batch_id = r.json()["id"]
    assert r.json()["status"] == "DRAFT"
    url = f"/v2/demo/batch/{batch_id}"
    added = client.post(f"{url}/requests", json={"requests": [{"input": {"echo": "c"}},
                                                              {"input": {"fail": "x"}}]})
    assert added.status_code == 200 and added.json()["requestTotal"] == 4
    page = client.get(f"{url}/requests").json()
    assert page["total"] == 4 and {p["status"] for p in page["requests"]} == {"DRAFT"}
    removed = client.delete(f"{url}/requests/{page['requests'][2]['id']}")
    assert removed.status_code == 200 and removed.json()["requestTotal"] == 3
    body = client.get(url).json()
    assert SUMMARY <= set(body) and body["endpointId"] == "demo" and body["name"] == "nightly"
    assert (body["status"], body["requestTotal"], body["requestInProgress"]) == ("DRAFT", 3, 0)
    assert isinstance(body["createdAt"], int) and body["createdAt"] > 1.7e12  # epoch ms
    renamed = client.put(url, json={"name": "weekly"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "weekly"
    assert client.get("/v2/demo/batch").json()[0]["id"] == batch_id  # newest first

    final = client.post(f"{url}/finalize")
    assert final.status_code == 200 and final.json()["status"] == "FINALIZED"
    done = ended(client, url)
    assert done["status"] == "FINALIZED"  # a failed request does not fail the batch
    assert (done["requestCompleted"], done["requestFailed"], done["requestInProgress"]) == \
        (2, 1, 0)
    page = client.get(f"{url}/requests?offset=0&limit=2").json()
    assert (page["total"], page["offset"], page["limit"], page["hasMore"]) == (3, 0, 2, True)
    first, second = page["requests"]
    assert first["status"] == "COMPLETED" and first["output"]["echo"] == "a"
    assert "error" not in first and ISO.match(first["startedAt"])
    assert ISO.match(first["completedAt"])
    last = client.get(f"{url}/requests?offset=2&limit=2").json()
    assert last["hasMore"] is False and last["requests"][0]["status"] == "FAILED"
    assert last["requests"][0]["error"] == "x" and "output" not in last["requests"][0]
    # Each request is an ordinary job, with its id from when it was added.
    assert client.get(f"/v2/demo/status/{first['id']}").json()["status"] == "COMPLETED"
    wait_for(client, "/v2/demo/health", lambda _: receiver.received("/ok/spine-batch"))
    (payload,) = receiver.received("/ok/spine-batch")
    assert payload["id"] == batch_id and payload["requestCompleted"] == 2


def test_cancel_ends_queued_requests_at_once_and_then_the_batch(client: httpx.Client) -> None:
    # demo runs 8 at once, this many of them batch requests (the default batch_share)
    slots = JobSettings().batch_slots(8)
    batch_id = client.post("/v2/demo/batch", json=[{"input": {"delay_s": 1.5}}] * 6).json()["id"]
    url = f"/v2/demo/batch/{batch_id}"
    client.post(f"{url}/finalize")
    wait_for(client, f"{url}/requests", lambda b: sum(
        r["status"] == "IN_PROGRESS" for r in b["requests"]) == slots)
    cancelled = client.post(f"{url}/cancel").json()
    assert cancelled["status"] == "FINALIZED" and cancelled["requestInProgress"] == slots
    assert cancelled["requestFailed"] == 6 - slots and cancelled["cancelledAt"] is not None
    done = ended(client, url)
    assert done["status"] == "CANCELLED"
    assert (done["requestCompleted"], done["requestFailed"]) == (slots, 6 - slots)


def test_an_empty_batch_and_a_cancelled_draft(client: httpx.Client) -> None:
    empty = client.post("/v2/demo/batch", json=[]).json()["id"]
    assert client.get(f"/v2/demo/batch/{empty}").json()["requestTotal"] == 0
    client.post(f"/v2/demo/batch/{empty}/finalize")
    assert ended(client, f"/v2/demo/batch/{empty}")["status"] == "FINALIZED"
    draft = client.post("/v2/demo/batch", json=[{"input": {}}]).json()["id"]
    cancelled = client.post(f"/v2/demo/batch/{draft}/cancel").json()
    assert cancelled["status"] == "CANCELLED" and cancelled["endedAt"] is not None


def _error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert all(w in message for w in words), message


@pytest.mark.parametrize(("body", "words"), [
    ({"input": {}}, ("JSON array",)),
    ("not json", ("not valid JSON",)),
    (None, ("JSON array",)),
    ([{"input": {}}, {"inputs": {}}], ("[1]", "input")),
    ([{"input": "text"}], ("[0]", "input")),
    ([{"input": {}, "webhook": "http://127.0.0.1/x"}], ("[0]", "webhook")),
    ([{"input": {}}] * 5_001, ("5001", "5000")),
])
def test_a_bad_create_body_is_400(client: httpx.Client, body: object,
                                  words: tuple[str, ...]) -> None:
    content = b"" if body is None else (body.encode() if isinstance(body, str)
                                        else json.dumps(body).encode())
    _error(client.post("/v2/demo/batch", content=content,
                       headers={"content-type": "application/json"}), 400, *words)


def test_bad_requests_to_batches_are_4xx_with_an_error(client: httpx.Client) -> None:
    batch_id = client.post("/v2/demo/batch", json=[{"input": {}}] * 4_999).json()["id"]
    url = f"/v2/demo/batch/{batch_id}"
    _error(client.post(f"{url}/requests", json={"requests": [{"input": {}}] * 2}), 400, "5001")
    _error(client.post(f"{url}/requests", json=[{"input": {}}]), 400, "requests")
    _error(client.post(f"{url}/requests", json={"requests": {"input": {}}}), 400, "JSON array")
    _error(client.delete(f"{url}/requests/{batch_id}-999999"), 404, "no request")
    _error(client.put(url, json={"colour": "red"}), 400, "colour")
    _error(client.put(url, json={"webhook": "not a url"}), 400, "webhook")
    # Webhooks go where the outbound policy allows, as /run's (only 127.0.0.1 here).
    _error(client.put(url, json={"webhook": "http://10.1.2.3/hook"}), 400, "webhook")
    _error(client.post("/v2/demo/batch?webhook=http://10.1.2.3/hook", json=[]), 400, "webhook")
    _error(client.get(f"{url}/requests?offset=-1"), 400, "offset")
    _error(client.get(f"{url}/requests?limit=0"), 400, "limit")
    _error(client.get(f"{url}/requests?limit=abc"), 400, "limit")
    big = b'{"requests": [' + b'{"input": {"x": "' + b"y" * (11 * 2**20) + b'"}}]}'
    _error(client.post(f"{url}/requests", content=big,
                       headers={"content-type": "application/json"}), 413, "limit")
    assert client.post(f"{url}/requests", json={"requests": [{"input": {}}]}).status_code == 200
    client.post(f"{url}/finalize")
    for response in (client.post(f"{url}/requests", json={"requests": [{"input": {}}]}),
                     client.delete(f"{url}/requests/{batch_id}-000001"),
                     client.post(f"{url}/finalize")):
        _error(response, 409, "FINALIZED", "DRAFT")
    client.post(f"{url}/cancel")
    for method, path in (("GET", ""), ("PUT", ""), ("POST", "/requests"), ("GET", "/requests"),
                         ("DELETE", "/requests/x"), ("POST", "/finalize"), ("POST", "/cancel")):
        body = {"requests": []} if path == "/requests" and method == "POST" else {}
        _error(client.request(method, f"/v2/demo/batch/batch-unknown{path}", json=body), 404,
               "batch-unknown")
    _error(client.post("/v2/no-such-endpoint/batch", json=[]), 404, "no-such-endpoint")


def test_more_than_ten_active_batches_is_429(client: httpx.Client) -> None:
    ids = [client.post("/v2/astream/batch", json=[]).json()["id"] for _ in range(10)]
    _error(client.post("/v2/astream/batch", json=[]), 429, "10")
    client.post(f"/v2/astream/batch/{ids[0]}/cancel")  # an ended batch is not active
    ids.append(client.post("/v2/astream/batch", json=[]).json()["id"])
    for batch_id in ids:
        client.post(f"/v2/astream/batch/{batch_id}/cancel")
    listed = client.get("/v2/astream/batch").json()
    assert {b["id"] for b in listed} >= set(ids)
    assert all(b["status"] == "CANCELLED" for b in listed if b["id"] in ids)


def test_another_keys_batch_is_unknown(secured_url: str) -> None:
    from tests.spine.conftest import ADMIN_KEY, API_KEY, OTHER_KEY

    def as_key(key: str) -> httpx.Client:
        return httpx.Client(base_url=secured_url, timeout=60,
                            headers={"authorization": f"Bearer {key}"})

    with as_key(API_KEY) as mine, as_key(OTHER_KEY) as theirs, as_key(ADMIN_KEY) as admin:
        assert httpx.post(f"{secured_url}/v2/demo/batch", json=[]).status_code == 401
        batch_id = mine.post("/v2/demo/batch", json=[{"input": {}}]).json()["id"]
        for method, path in (("GET", ""), ("POST", "/finalize"), ("POST", "/cancel"),
                             ("GET", "/requests")):
            _error(theirs.request(method, f"/v2/demo/batch/{batch_id}{path}"), 404, batch_id)
        assert batch_id not in {b["id"] for b in theirs.get("/v2/demo/batch").json()}
        assert admin.get(f"/v2/demo/batch/{batch_id}").status_code == 200
        assert mine.post(f"/v2/demo/batch/{batch_id}/cancel").json()["status"] == "CANCELLED"
