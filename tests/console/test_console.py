"""The console at /console in headless Chromium: the overview, a job of every model family
submitted through its form and drawn for its family, cancel, the dead-letter list, and
the API-key and rate-limit messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from playwright.sync_api import expect

from deployments.pd.examples import example_input as pd_example
from serve_app.catalog import MODEL_FAMILIES
from tests.console.conftest import KEY, Shoot
from tests.workload import example

#: the first job of a family also waits for its models' first call on CPU
JOB_TIMEOUT_MS = 180_000


def open_console(page: Any, base: str, route: str = "") -> None:
    page.goto(f"{base}/console" + (f"/#/{route}" if route else ""))


def submit(page: Any) -> tuple[str, str]:
    """Submit the open form; (endpoint, job id) from the job view it opens."""
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url("**/#/job/**")
    endpoint, job_id = page.url.split("#/job/", 1)[1].split("/")
    return unquote(endpoint), unquote(job_id)


def wait_status(page: Any, status: str, timeout_ms: int = JOB_TIMEOUT_MS) -> None:
    expect(page.locator(".state .badge")).to_have_attribute("data-status", status,
                                                            timeout=timeout_ms)


def output_of(base: str, endpoint: str, job_id: str) -> dict[str, Any]:
    return httpx.get(f"{base}/v2/{endpoint}/status/{job_id}", timeout=30).json()["output"]


def test_overview_shows_every_endpoint_its_counts_and_the_replicas(
        console_base: str, page: Any, shoot: Shoot) -> None:
    open_console(page, console_base)
    for endpoint in [*MODEL_FAMILIES, "demo"]:
        card = page.locator(f'.card[data-endpoint="{endpoint}"]')
        expect(card.locator('dd[data-count="inQueue"]')).to_have_text("0")
    running = page.locator(".replicas [data-running]")
    expect(running.first).to_be_visible()
    assert all(int(n) >= 1 for n in running.all_inner_texts())
    # It refreshes by itself: a job queued elsewhere shows in its endpoint's counts.
    httpx.post(f"{console_base}/v2/ipa-generation/runsync",
               json={"input": MODEL_FAMILIES["ipa-generation"].example()}, timeout=60)
    completed = page.locator('.card[data-endpoint="ipa-generation"] dd[data-count="completed"]')
    expect(completed).not_to_have_text("0", timeout=10_000)
    shoot(page, "overview", docs=True)


def prepare_pd(page: Any, tmp_path: Path) -> None:
    """Signals as an uploaded CSV file instead of the prefilled JSON."""
    csv = tmp_path / "signals.csv"
    csv.write_text("\n".join(",".join(map(str, row)) for row in pd_example()["signals"]))
    page.fill("#field-signals", "")
    page.set_input_files('input[type="file"][data-field="file_base64"]', str(csv))
    expect(page.locator(".field", has=page.locator("#field-file_base64"))).to_contain_text(
        "signals.csv")


def check_g2p(page: Any, out: dict[str, Any]) -> None:
    rows = page.locator(".words tbody tr")
    expect(rows).to_have_count(len(out["words"]))
    for row, word in zip(rows.all(), out["words"], strict=True):
        cells = row.locator("td").all_inner_texts()
        assert cells[:2] == [word["word"], f"/{''.join(word['phones'])}/"], cells
    expect(page.locator("code.ipa")).to_have_text(out["ipa"])


def check_pronunciation(page: Any, out: dict[str, Any]) -> None:
    words = page.locator(".sentence .word")
    expect(words).to_have_count(len(out["words"]))
    assert [w.get_attribute("data-verdict") for w in words.all()] == [
        w["verdict"] for w in out["words"]]
    assert page.locator("audio.player").get_attribute("src").startswith("data:audio/wav;base64,")
    expect(page.locator(".score")).to_have_text(f"{out['score']:.0f}/100")


def check_dental(page: Any, out: dict[str, Any]) -> None:
    overlays = page.locator("img.overlay")
    expect(overlays).to_have_count(len(out["debug_images"]))
    for image in overlays.all():
        image.scroll_into_view_if_needed()
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.locator(".findings tbody tr")).to_have_count(out["num_findings"])
    with page.expect_download() as download:
        page.locator("a.csv").click()
    assert Path(download.value.path()).read_text() == out["csv_data"]


def check_pd(page: Any, out: dict[str, Any]) -> None:
    plots = page.locator("canvas.signal")
    expect(plots).to_have_count(out["total_samples_processed"])
    found = [len(r["regions"]) for r in out["results"]]
    assert [int(p.get_attribute("data-regions")) for p in plots.all()] == found
    expect(page.locator(".regions tbody tr")).to_have_count(sum(found))
    # The first region is shaded: red over white at its middle, above the trace.
    region = out["results"][0]["regions"][0]
    red, _, blue, alpha = plots.first.evaluate(
        """(canvas, [middle, length]) => Array.from(canvas.getContext("2d")
             .getImageData(Math.floor(middle / length * canvas.width), 2, 1, 1).data)""",
        [(region["start"] + region["end"]) / 2, len(pd_example()["signals"][0])])
    assert alpha > 0 and red > blue, (red, blue, alpha)


#: per endpoint: what to change in the prefilled form, and how its result must look
FAMILIES: dict[str, tuple[Callable[[Any, Path], None] | None, Callable[..., None]]] = {
    "ipa-generation": (None, check_g2p),
    "pronunciation-assessment": (None, check_pronunciation),
    "dental-pano": (lambda page, _: page.check("#field-debug"), check_dental),
    "pd-segmentation": (prepare_pd, check_pd),
}


@pytest.mark.parametrize("endpoint", list(FAMILIES))
def test_the_example_submitted_through_the_form_is_drawn_for_its_family(
        endpoint: str, console_base: str, page: Any, shoot: Shoot, tmp_path: Path) -> None:
    prepare, check = FAMILIES[endpoint]
    open_console(page, console_base, f"submit/{endpoint}")
    expect(page.locator(".job-form .field").first).to_be_visible()
    if prepare:
        prepare(page, tmp_path)
    submitted_to, job_id = submit(page)
    assert submitted_to == endpoint
    wait_status(page, "COMPLETED")
    out = output_of(console_base, endpoint, job_id)
    example(endpoint)[1](out)  # the workload's own check of this example's output
    check(page, out)
    shoot(page, f"job-{MODEL_FAMILIES[endpoint].name}", docs=True)


def submit_demo(page: Any, base: str, job_input: dict[str, Any]) -> tuple[str, str]:
    """The demo handler has no schema: its form is one JSON text box."""
    open_console(page, base, "submit/demo")
    page.fill('textarea[name="raw-input"]', json.dumps(job_input))
    return submit(page)


def test_a_running_job_is_cancelled_from_its_view(console_base: str, page: Any,
                                                  shoot: Shoot) -> None:
    submit_demo(page, console_base, {"delay_s": 10})
    wait_status(page, "IN_PROGRESS", 30_000)
    expect(page.locator(".progress")).to_contain_text('"step":1')  # the handler's progress
    page.get_by_role("button", name="Cancel").click()
    wait_status(page, "CANCELLED", 10_000)
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    shoot(page, "job-cancelled")


def test_a_failed_job_is_shown_and_listed_in_the_dead_letter(console_base: str, page: Any,
                                                            shoot: Shoot) -> None:
    reason = "console test: the worker refused this input"
    _, job_id = submit_demo(page, console_base, {"fail": reason})
    wait_status(page, "FAILED", 30_000)
    expect(page.locator(".failed")).to_have_text(f"Job failed: {reason}")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    page.locator("nav").get_by_role("link", name="Jobs").click()
    expect(page.locator(".jobs tbody tr", has_text=job_id)).to_contain_text("FAILED")
    page.locator("nav").get_by_role("link", name="Dead letter").click()
    row = page.locator('section[data-endpoint="demo"] .dead-letter tr', has_text=job_id)
    expect(row).to_contain_text(reason)
    shoot(page, "dead-letter", docs=True)


def test_the_api_key_is_asked_for_kept_in_the_tab_and_429_explained(
        secured_base: str, page: Any, shoot: Shoot) -> None:
    open_console(page, secured_base)
    message = page.locator("#message")
    expect(message).to_contain_text("401 Unauthorized: this server needs an API key")
    expect(page.locator(".card")).to_have_count(0)
    shoot(page, "api-key-needed")
    page.fill("#api-key", KEY)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator('.card[data-endpoint="demo"]')).to_be_visible()
    expect(message).to_be_hidden()
    page.reload()  # the key stays with the tab
    expect(page.locator('.card[data-endpoint="demo"]')).to_be_visible()
    expect(message).to_be_hidden()
    submit_demo(page, secured_base, {})
    wait_status(page, "COMPLETED", 30_000)
    open_console(page, secured_base, "submit/demo")  # the second /run of the minute
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator(".job-form .error")).to_contain_text("429 Too many requests")
    expect(page.locator(".job-form .error")).to_contain_text("Try again in")
