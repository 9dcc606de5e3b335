"""notebooks/pd.ipynb runs top to bottom against the PD app (under its route prefix, so
every URL it uses is built from SERVE_BASE_URL)."""

from __future__ import annotations

import re

from tests.notebooks import outputs_text, run_notebook


def test_pd_notebook(pd_base: str) -> None:
    nb = run_notebook("pd.ipynb", pd_base)
    text = outputs_text(nb)
    outputs = [out for cell in nb.cells for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.get("output_type") == "error"]

    assert text.startswith("ok - package://deployments.pd/weights/pd_unet1d.pt")
    # the report's regions, per signal and in total, as the notebook printed them
    per_signal = [int(n) for n in re.findall(r"^signal \d+: (\d+) region\(s\)", text, re.M)]
    total = int(re.search(r"^regions found: (\d+)$", text, re.M).group(1))
    assert len(per_signal) == 4 and total == sum(per_signal) > 0
    assert "signals processed: 4, with activity: 4" in text
    # they match the true pulses (one to one, IoU >= 0.5)
    matched, true_pulses = map(int, re.search(
        r"^matched (\d+) of (\d+) true pulses$", text, re.M).groups())
    # recall and precision of this one sample at least 0.8 (the model's quality on whole
    # generator families is measured by `python -m deployments.pd.evaluate`)
    assert true_pulses >= 3 and matched >= 0.8 * true_pulses, (matched, true_pulses)
    assert matched >= 0.8 * total, (matched, total)
    # the matplotlib figure (signal, truth, found regions) was displayed
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) == 1
    # the HTML report: saved, and shown inline with its two embedded plots
    assert re.search(r"^text/html; charset=utf-8: \d+ characters, 2 plots", text, re.M)
    pages = [out["data"]["text/html"] for out in outputs if "text/html" in out.get("data", {})]
    assert len(pages) == 1 and pages[0].count("data:image/png;base64,") == 2
    # the .npy file gives as many regions per signal as the JSON arrays did
    assert f"200 regions per signal from the .npy: {per_signal}" in text
    # bad input: a 400 naming the problem, and the same reason on a FAILED job
    assert "400 {'error': 'signals must all have the same length" in text
    assert "FAILED signals must all have the same length" in text
