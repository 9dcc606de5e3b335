"""The console's files are served from the package, by name only (no Ray, no browser)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serve_app.api.errors import install_error_handlers
from serve_app.console.routes import STATIC, router


@pytest.fixture()
def client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    install_error_handlers(app)
    return TestClient(app, follow_redirects=False)


def test_the_page_and_its_files_are_served(client: TestClient) -> None:
    # Relative, so that under a route prefix the browser stays under it.
    assert client.get("/console").headers["location"] == "console/"
    page = client.get("/console/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name, media in (("app.js", "text/javascript"), ("style.css", "text/css")):
        answer = client.get(f"/console/static/{name}")
        assert answer.headers["content-type"].startswith(media)
        assert answer.text == (STATIC / name).read_text()


@pytest.mark.parametrize("name", ["nothing.js", "..%2Froutes.py", "%2E%2E%2F__init__.py"])
def test_only_the_console_files_are_served(client: TestClient, name: str) -> None:
    answer = client.get(f"/console/static/{name}")
    assert answer.status_code == 404, answer.text
    assert "error" in answer.json()


def test_every_module_the_page_imports_is_shipped() -> None:
    imported = {line.split('"./', 1)[1].split('"', 1)[0]
                for path in STATIC.glob("*.js") for line in path.read_text().splitlines()
                if line.startswith("import ") and '"./' in line}
    assert imported and imported <= {p.name for p in STATIC.iterdir()}
    assert 'src="static/app.js"' in (STATIC / "index.html").read_text()
