"""The G2P endpoint through its direct route and as a job."""

from __future__ import annotations

import httpx

from tests.workload import assert_described


def test_direct_route_gives_words_and_the_worker_ipa_string(client: httpx.Client) -> None:
    r = client.post("/ipa", json={"text": "Hello world", "language": "en-us"})
    assert r.status_code == 200
    body = r.json()
    assert body["backend"] == "gruut" and body["language"] == "en-us"
    assert body["words"][0] == {"word": "Hello", "phones": ["h", "ɛ", "l", "oʊ"]}
    assert body["ipa"] == "".join(f"/{p}/" for w in body["words"] for p in w["phones"])
    assert "ˈ" not in body["ipa"]


def test_stress_marks_are_kept_on_request(client: httpx.Client) -> None:
    body = client.post("/ipa", json={"text": "hello", "stress": True}).json()
    assert any("ˈ" in p for p in body["words"][0]["phones"])


def test_espeak_backend_covers_languages_gruut_lacks(client: httpx.Client) -> None:
    body = client.post("/ipa", json={"text": "guten Tag", "language": "de",
                                     "backend": "espeak"}).json()
    assert [w["word"] for w in body["words"]] == ["guten", "Tag"]
    assert body["words"][0]["phones"][0] == "ɡ"
    r = client.post("/ipa", json={"text": "guten Tag", "language": "de"})
    assert r.status_code == 400 and "gruut" in r.json()["error"]


def test_job_output_equals_the_direct_output(client: httpx.Client) -> None:
    direct = client.post("/ipa", json={"text": "speech and text"}).json()
    job = client.post("/v2/ipa-generation/runsync", json={"input": {"text": "speech and text"}})
    assert job.json()["output"] == direct


def test_endpoints_lists_routes(client: httpx.Client) -> None:
    assert_described(client, "ipa-generation", "/ipa")
    assert_described(client, "demo", None)
