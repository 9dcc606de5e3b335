"""The HTTP API under schemathesis (a small budget; bench/fuzz_api.py sends 10,000+), and
the hostile bodies that used to end in a 500 with a traceback in the log: each is a 400
that says what is wrong."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.security.fuzzing import (
    Tally,
    Target,
    fuzz,
    health,
    ingress_rss,
    start_apps,
    stop_apps,
)

#: generated requests per operation, pinned path and mode: about 700 requests in all
EXAMPLES = 2
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(serve_port: int) -> str:
    return f"http://127.0.0.1:{serve_port}"


@pytest.fixture(scope="module")
def targets(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Target]]:
    started = start_apps(tmp_path_factory.mktemp("fuzz"))
    yield started
    stop_apps(started)


def test_fuzzed_requests_get_no_5xx_and_the_apps_stay_up(server: str,
                                                         targets: list[Target]) -> None:
    before = {t.name: ingress_rss(t.name) for t in targets}
    tally = Tally()
    for target in targets:
        fuzz(server, target, EXAMPLES, tally)
    assert tally.requests >= 300, tally.statuses
    assert tally.failures == [], "\n".join(tally.failures)
    assert tally.server_errors == 0
    assert 401 in tally.statuses and 200 in tally.statuses
    for target in targets:
        assert health(server, target) == 200
        grown = ingress_rss(target.name) - before[target.name]
        assert grown < 200 * MB, f"{target.name}'s ingress grew by {grown / MB:.0f} MB"


DEEP_ARRAY = b"[" * 5000 + b"]" * 5000
HOSTILE_BODIES = {
    "nested 5,000 deep": (b'{"input": {"text": ' + DEEP_ARRAY + b"}}",
                          "nests arrays and objects more than 64 levels deep"),
    "a 5,000-digit integer": (b'{"input": {"text": "hi", "n": ' + b"9" * 5000 + b"}}",
                              "an integer of 5000 digits"),
    "an unpaired surrogate": (b'{"input": {"text": "\\ud800", "echo": "\\ud800"}}',
                              "unpaired UTF-16 surrogate"),
    "not UTF-8": (b'{"input": {"text": "\xed\xa0\x80"}}', "not valid JSON"),
}


@pytest.mark.parametrize("case", list(HOSTILE_BODIES))
@pytest.mark.parametrize("path", ["/v2/demo/run", "/v2/demo/runsync", "/ipa"])
def test_hostile_bodies_are_refused_with_400(server: str, targets: list[Target], case: str,
                                             path: str) -> None:
    body, words = HOSTILE_BODIES[case]
    for target in targets:
        r = httpx.post(f"{server}{target.url}{path}", content=body, timeout=60,
                       headers={**target.headers, "content-type": "application/json"})
        assert r.status_code == 400 and words in r.json()["error"], r.text[:300]


def test_an_overlong_ttl_is_a_400(server: str, targets: list[Target]) -> None:
    for target in targets:
        r = httpx.get(f"{server}{target.url}/v2/demo/status/any?ttl={'9' * 30}",
                      headers=target.headers, timeout=60)
        assert r.status_code == 400 and "ttl" in r.json()["error"], r.text
