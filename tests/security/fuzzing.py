"""Schemathesis against a running application's `/openapi.json`: every operation, with
data that fits the schema and data that does not, through an open app and one with API
keys (each request there also sent without the key, which must get 401). Shared by
tests/security/test_fuzz.py (a small budget) and bench/fuzz_api.py (10,000+ requests).

The generated path parameters are mostly names that do not exist, so each operation is
also fuzzed with its path pinned to a served endpoint, an existing job and a direct
route, to reach the code behind the 404s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import HypothesisException
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup, SchemathesisError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

API_KEY = "fuzz-3c9e71b2-5da4-48f0-a1d6"
DEMO = "deployments.handlers.demo_worker"
#: what the fuzzed requests check; only 5xx and a missing 401 fail a run, conformance
#: findings are counted and shown
SERVER_CHECKS = [not_a_server_error]
CONFORMANCE_CHECKS = [status_code_conformance, content_type_conformance,
                      response_schema_conformance]
TIMEOUT_S = 60


def app_args(store: Path, keyed: bool) -> dict[str, Any]:
    """Cheap endpoints: G2P, and the RunPod demo handler. Waits are capped at 5 s so a
    generated `wait` cannot stall the run."""
    return {
        "jobs": {"store_url": f"sqlite:///{store}", "api_keys": [API_KEY] if keyed else [],
                 "poll_interval_s": 0.1, "runsync_wait_max_ms": 5_000,
                 "runsync_wait_default_ms": 5_000},
        "endpoints": {"ipa-generation": {"route": "ipa"}},
        "handlers": {"demo": {"handler": DEMO}},
    }


@dataclass
class Target:
    """An app under test: where it is, the key it wants (None: open)."""

    name: str
    url: str
    key: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


@dataclass
class Tally:
    """What the run sent and what came back."""

    statuses: Counter[int] = field(default_factory=Counter)
    #: generated cases (each sent once, and again without the key to a keyed app)
    generated: int = 0
    #: 5xx answers and keyless requests not refused with 401: a run with any fails
    failures: list[str] = field(default_factory=list)
    #: schema conformance findings, by check and operation
    conformance: Counter[str] = field(default_factory=Counter)
    #: operations (with pinned path) that generated nothing, and why
    skipped: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def start_apps(tmp: Path) -> list[Target]:
    """The open app and the keyed one on the running Serve instance."""
    from ray import serve

    from serve_app.app import build_app

    targets = []
    for name, keyed in (("fuzz-open", False), ("fuzz-keyed", True)):
        serve.run(build_app(app_args(tmp / f"{name}.sqlite3", keyed)), name=name,
                  route_prefix=f"/{name}")
        targets.append(Target(name, f"/{name}", API_KEY if keyed else None))
    return targets


def stop_apps(targets: list[Target]) -> None:
    from ray import serve

    for target in targets:
        serve.delete(target.name)


def ingress_rss(app: str) -> int:
    """The RSS of `app`'s ingress replica (Ray's workers are descendants of the driver
    that started Ray and carry their replica in the process title)."""
    title = f"ServeReplica:{app}:Ingress"
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if title in " ".join(proc.cmdline()):
                found.append(proc.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    assert len(found) == 1, f"expected one {title} process, found {len(found)}"
    return found[0]


def pinned_paths(server: str, target: Target) -> list[dict[str, str]]:
    """Path parameters to fuzz with besides generated ones: the served endpoints, a
    finished job of each, the direct route."""
    pins: list[dict[str, str]] = [{"route": "ipa"}]
    with httpx.Client(base_url=server + target.url, headers=target.headers,
                      timeout=TIMEOUT_S) as client:
        for endpoint, job_input in (("demo", {}), ("ipa-generation", {"text": "hello"})):
            job = client.post(f"/v2/{endpoint}/runsync", json={"input": job_input})
            job.raise_for_status()
            pins += [{"endpoint_id": endpoint}, {"endpoint_id": endpoint,
                                                 "job_id": job.json()["id"]}]
    return pins


def _variants(path: str, pins: list[dict[str, str]]) -> Iterator[dict[str, str] | None]:
    yield None
    names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
    for pin in pins:
        if set(pin) == names or (set(pin) < names and "endpoint_id" in pin):
            yield pin


def fuzz(server: str, target: Target, examples: int, tally: Tally) -> None:
    """Up to `examples` generated requests per operation, pinned path and generation mode
    (fewer where Hypothesis runs out of distinct ones)."""
    schema = schemathesis.openapi.from_url(f"{server}{target.url}/openapi.json")
    base_url = server + target.url
    pins = pinned_paths(server, target)
    session = requests.Session()

    def send(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, session=session, headers=target.headers,
                             timeout=TIMEOUT_S)
        tally.generated += 1
        tally.statuses[response.status_code] += 1
        _validate(case, response, target.headers, tally)
        if target.key:  # the same request without the key
            bare = case.call(base_url=base_url, session=session, timeout=TIMEOUT_S)
            tally.statuses[bare.status_code] += 1
            if bare.status_code != 401:
                tally.failures.append(f"{bare.status_code} without a key: "
                                      f"{case.as_curl_command(base_url=base_url)}")

    for result in schema.get_all_operations():
        operation = result.ok()
        for pin in _variants(operation.path, pins):
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=pin)
                run = settings(max_examples=examples, deadline=None, database=None,
                               phases=[Phase.generate], suppress_health_check=list(HealthCheck)
                               )(given(strategy)(send))
                try:
                    run()
                except (HypothesisException, SchemathesisError) as exc:
                    tally.skipped.append(f"{operation.label} {pin} {mode.value}: "
                                         f"{exc.__class__.__name__}")


def _validate(case: schemathesis.Case, response: requests.Response, headers: dict[str, str],
              tally: Tally) -> None:
    for checks in (SERVER_CHECKS, CONFORMANCE_CHECKS):
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as group:
            if checks is SERVER_CHECKS:
                tally.failures.append(f"{response.status_code} {response.text[:300]!r}: "
                                      f"{case.as_curl_command(headers=headers)}")
            else:
                tally.conformance.update(f"{failure.title}: {case.operation.label}"
                                         for failure in group.exceptions)


def health(server: str, target: Target) -> int:
    return httpx.get(f"{server}{target.url}/v2/demo/health", headers=target.headers,
                     timeout=TIMEOUT_S).status_code
