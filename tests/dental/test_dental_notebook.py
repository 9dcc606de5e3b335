"""notebooks/dental.ipynb runs top to bottom against the dental app, as a user runs it."""

from __future__ import annotations

from tests.notebooks import outputs_text, run_notebook

FINDINGS = ("MISSING", "IMPLANT", "RESIDUAL_ROOT", "CROWN_BRIDGE", "ROOT_CANAL_FILLING",
            "FILLING", "CARIES", "PERIAPICAL_RADIOLUCENCY")


def test_dental_notebook(dental_base: str) -> None:
    nb = run_notebook("dental.ipynb", dental_base)
    text = outputs_text(nb)
    assert "256 rows: 32 teeth x 8 findings" in text  # the findings table from csv_data
    assert "WARNING: the segmentation model uses untrained default weights" in text
    assert "WARNING: the detection model uses untrained default weights" in text
    assert "400 {'error': \"unsupported URL scheme 'ftp'" in text  # the direct route's error

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    # the overlays were displayed as an image
    assert any("image/png" in out.get("data", {}) for out in outputs)
    # the pivot table: 32 teeth (rows) by 8 findings (columns), rendered as HTML
    tables = [out["data"]["text/html"] for out in outputs if "text/html" in out.get("data", {})]
    pivot = next(html for html in tables if "PERIAPICAL_RADIOLUCENCY" in html and ">48<" in html)
    head, body = pivot.split("<tbody>")
    assert body.count("<tr>") == 32
    assert all(finding in head for finding in FINDINGS)
