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


def test_a_text_gruut_cannot_read_fails_alone_in_its_batch(client: httpx.Client) -> None:
    """"1e309" (gruut's number spelling raises decimal.InvalidOperation) failed every
    request batched with it; now it alone gets a 400 naming the problem."""
    from concurrent.futures import ThreadPoolExecutor

    texts = ["hello world", "speech and text", "1e309", "good morning", "thank you",
             "one two three"]
    with ThreadPoolExecutor(len(texts)) as pool:
        for _ in range(3):  # concurrent rounds: the G2P batches texts that arrive together
            answers = list(pool.map(lambda t: client.post("/ipa", json={"text": t}), texts))
            for text, r in zip(texts, answers, strict=True):
                if text == "1e309":
                    assert r.status_code == 400, r.text
                    assert "a number too large for the gruut backend" in r.json()["error"]
                else:
                    assert r.status_code == 200, (text, r.text)
                    assert r.json()["words"], text
