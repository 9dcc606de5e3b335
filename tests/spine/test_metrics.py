"""Jobs show in Prometheus: scraped from the Ray node's metrics export port, where Serve's
own `ray_serve_*` metrics are, labelled by endpoint."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import METRICS_PORT

REPO = Path(__file__).resolve().parents[2]
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


def test_model_calls_are_counted_and_the_dashboard_charts_metrics_that_exist(
        client: httpx.Client) -> None:
    before = value(scrape(), "ray_rsp_model_batch_size_count", deployment="G2P")
    for _ in range(3):
        assert client.post("/ipa", json={"text": "metrics"}).status_code == 200
    deadline = time.monotonic() + SCRAPE_WITHIN_S
    while value(now := scrape(), "ray_rsp_model_batch_size_count", deployment="G2P") < before + 1:
        assert time.monotonic() < deadline, "no G2P batch was exported"
        time.sleep(2)
    assert value(now, "ray_rsp_model_inference_ms_count", deployment="G2P") >= 1
    # Ray exports a counter once it first counts: ours are checked against the code that
    # defines them, Serve's against the scrape.
    dashboard = (REPO / "docs" / "monitoring" / "grafana-dashboard.json").read_text()
    defined = {f"ray_{n}" for module in ("serve_app/metrics.py", "deployments/common/metrics.py")
               for n in re.findall(r'"(rsp_[a-z_]+)"', (REPO / module).read_text())}
    exported = {base(n) for n, _ in now} | defined
    charted = {base(n) for n in re.findall(r"ray_(?:rsp|serve)_[a-z_]+", dashboard)}
    assert charted <= exported, f"charted but neither defined nor exported: {charted - exported}"


def base(metric: str) -> str:
    return re.sub(r"_(bucket|count|sum|total)$", "", metric)
