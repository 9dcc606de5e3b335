"""Jobs show in Prometheus: scraped from the Ray node's metrics export port, where Serve's
own `ray_serve_*` metrics are, labelled by endpoint."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import METRICS_PORT

SCRAPE_WITHIN_S = 90  # Ray exports every few seconds; replicas report on their own clock


def scrape() -> dict[tuple[str, frozenset], float]:
    text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum over samples of `name` carrying these labels (replicas label themselves)."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and set(labels.items()) <= ls)


def test_jobs_are_counted_and_timed_by_endpoint(client: httpx.Client) -> None:
    before = scrape()
    base = {k: value(before, k, endpoint="demo") for k in (
        "ray_rsp_jobs_submitted_total", "ray_rsp_job_execution_ms_count")}
    failed_before = value(before, "ray_rsp_jobs_ended_total", endpoint="demo", status="FAILED")
    done_before = value(before, "ray_rsp_jobs_ended_total", endpoint="demo",
                        status="COMPLETED")
    for body in ({"echo": 1}, {"echo": 2}, {"fail": "counted"}):
        assert client.post("/v2/demo/runsync", json={"input": body}).json()["status"] in {
            "COMPLETED", "FAILED"}
    deadline = time.monotonic() + SCRAPE_WITHIN_S
    while True:
        now = scrape()
        submitted = value(now, "ray_rsp_jobs_submitted_total", endpoint="demo")
        done = value(now, "ray_rsp_jobs_ended_total", endpoint="demo", status="COMPLETED")
        failed = value(now, "ray_rsp_jobs_ended_total", endpoint="demo", status="FAILED")
        timed = value(now, "ray_rsp_job_execution_ms_count", endpoint="demo")
        if (submitted >= base["ray_rsp_jobs_submitted_total"] + 3
                and done >= done_before + 2 and failed >= failed_before + 1
                and timed >= base["ray_rsp_job_execution_ms_count"] + 3):
            break
        assert time.monotonic() < deadline, (
            f"metrics never showed the jobs: submitted {submitted}, completed {done}, "
            f"failed {failed}, timed {timed}; before {base}")
        time.sleep(2)
    assert value(now, "ray_rsp_job_delay_ms_count", endpoint="demo") >= 3
    assert value(now, "ray_rsp_job_delay_ms_bucket", endpoint="demo", le="+Inf") >= 3
    # the queue gauges come from the store and carry every served endpoint
    assert ("ray_rsp_jobs_in_queue", "ipa-generation") in {
        (n, dict(ls).get("endpoint")) for n, ls in now}
    # and Serve's own metrics are on the same port
    assert any(n.startswith("ray_serve_") for n, _ in now)
