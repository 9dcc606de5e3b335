"""The console in a real browser: Debian's `chromium` driven by Playwright, against ONE
application serving the four model families and the demo RunPod handler (all four cost
~4.5 GB and minutes to start), and a small keyed one for the API-key case.

Screenshots go to the test session's temporary directory; with RSP_CONSOLE_DOCS=1 the
ones the README shows are also written, reduced to a palette, to docs/console/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"
KEY = "console-5e0c7b1d-92af-4e36"
DEMO = "deployments.handlers.demo_worker"

Shoot = Callable[..., Path]


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser, or a skip: the fixtures that start Ray ask for it first, so without
    it nothing starts."""
    if CHROMIUM is None:
        pytest.skip("no `chromium` on PATH: the console's browser tests need Debian's chromium "
                    "package (apt-get install -y chromium); .ci/run installs it")
    pytest.importorskip("playwright.sync_api", reason="playwright is in the `test` extra")
    return CHROMIUM


def _serve(name: str, prefix: str, args: dict[str, Any], port: int) -> Iterator[str]:
    from ray import serve

    from serve_app.app import build_app

    serve.run(build_app(args), name=name, route_prefix=prefix)
    yield f"http://127.0.0.1:{port}{prefix}"
    serve.delete(name)


@pytest.fixture(scope="package")
def console_base(chromium: str, serve_port: int,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """All four families and `demo`, under a route prefix: the console must find the API
    relative to its own URL."""
    store = tmp_path_factory.mktemp("console-jobs") / "jobs.sqlite3"
    args = {"jobs": {"store_url": f"sqlite:///{store}", "poll_interval_s": 0.1},
            "endpoints": {"ipa-generation": {"route": "ipa"},
                          "pronunciation-assessment": {"route": "assess"},
                          "dental-pano": {"route": "dental"},
                          "pd-segmentation": {"route": "pd"}},
            "g2p": {"default_backend": "gruut", "backends": ["gruut"]},
            "handlers": {"demo": {"handler": DEMO}},
            "outbound": {"allow_networks": ["127.0.0.1/32"]}}
    yield from _serve("console", "/consoleapp", args, serve_port)


@pytest.fixture(scope="package")
def secured_base(chromium: str, serve_port: int,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`demo` behind an API key, one /run a minute."""
    store = tmp_path_factory.mktemp("console-secured") / "jobs.sqlite3"
    args = {"jobs": {"store_url": f"sqlite:///{store}", "poll_interval_s": 0.1,
                     "api_keys": [KEY], "rate_limits": {"window_s": 60, "run": 1}},
            "endpoints": {}, "handlers": {"demo": {"handler": DEMO}}}
    yield from _serve("console-secured", "/consolekeys", args, serve_port)


@pytest.fixture(scope="package")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab (its own session storage); the test fails on any script error."""
    context = browser.new_context(viewport={"width": 1200, "height": 860})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, errors


@pytest.fixture(scope="package")
def shoot(tmp_path_factory: pytest.TempPathFactory) -> Shoot:
    """`shoot(page, name, docs=False)`: a full-page PNG in the session's output; with
    `docs` and RSP_CONSOLE_DOCS=1, a small copy in docs/console/."""
    out = tmp_path_factory.mktemp("console-screenshots")

    def take(tab: Any, name: str, docs: bool = False) -> Path:
        path = out / f"{name}.png"
        tab.screenshot(path=str(path), full_page=True)
        if docs and os.environ.get("RSP_CONSOLE_DOCS") == "1":
            from PIL import Image

            DOCS.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as image:
                image.convert("RGB").quantize(colors=64).save(DOCS / path.name, optimize=True)
        return path

    return take
