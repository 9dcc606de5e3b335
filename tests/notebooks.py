"""Execute a notebook from notebooks/ against a running app, as a user would."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(name: str, base_url: str, timeout_s: int = 600) -> nbformat.NotebookNode:
    """Run every cell (a failing cell raises) with SERVE_BASE_URL pointing at `base_url`."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    os.environ["SERVE_BASE_URL"] = base_url
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS.parent)}}).execute()
    return nb


def outputs_text(nb: nbformat.NotebookNode) -> str:
    """All text the notebook printed or displayed."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)
