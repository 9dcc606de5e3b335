"""The JSON report and the HTML page, from known segmentations (no model, no Ray)."""

from __future__ import annotations

import base64
import re

import numpy as np

from deployments.pd.processing import Region, Segmentation
from deployments.pd.report import build_report, render_html


def segmentation(length: int, regions: list[Region]) -> Segmentation:
    p = np.zeros(length, dtype=np.float32)
    for r in regions:
        p[r.start:r.end] = 0.9
    return Segmentation(p, 0.5, regions)


def test_report_keeps_the_original_shape() -> None:
    processed = np.zeros((3, 100), dtype=np.float32)
    processed[2, 10:20] = 1.0
    report = build_report(3, [0, 2], processed,
                          [segmentation(100, []), segmentation(100, [Region(10, 20)])])
    assert report["total_samples_processed"] == 3
    assert report["valid_samples_found"] == 2
    assert [r["sample_index"] for r in report["results"]] == [0, 2]
    assert report["results"][1]["regions"] == [{"start": 10, "end": 20, "duration": 10}]
    assert report["results"][1]["signal_stats"]["peak"] == 1.0
    assert report["results"][1]["signal_stats"]["pd_fraction"] == 0.1


def test_html_embeds_one_png_per_drawn_signal_and_lists_regions() -> None:
    rows = 3
    processed = np.random.default_rng(0).normal(size=(rows, 50_000)).astype(np.float32)
    segs = [segmentation(50_000, [Region(100, 180)]) for _ in range(rows)]
    report = build_report(rows, list(range(rows)), processed, segs)
    page = render_html(report, processed, segs, max_plots=2)
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 2
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "<td>100</td><td>180</td><td>80</td>" in page
    assert "1 more signal(s) not drawn" in page
