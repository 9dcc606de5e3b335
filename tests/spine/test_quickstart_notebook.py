"""notebooks/quickstart.ipynb runs top to bottom against the running app."""

from __future__ import annotations

from tests.notebooks import outputs_text, run_notebook


def test_quickstart_notebook(base_url: str) -> None:
    nb = run_notebook("quickstart.ipynb", base_url)
    text = outputs_text(nb)
    assert "/h//ɛ//l//oʊ/" in text  # "Hello world" through the direct route
    assert "'step'" in text  # the handler's progress seen while it ran
