"""The original service's outputs: the JSON report, and an HTML page with plots.

Plain functions of processed signals and their segmentations; no Ray, no HTTP.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import numpy as np

from deployments.pd.processing import Segmentation, signal_stats

# Long signals are drawn as a min/max envelope over this many bins, so a short pulse
# stays visible and the PNG stays small.
PLOT_BINS = 4000


def build_report(total_rows: int, kept_rows: Sequence[int], processed: np.ndarray,
                 segmentations: Sequence[Segmentation]) -> dict[str, object]:
    """`{total_samples_processed, valid_samples_found, results: [...]}` as the original.

    A "sample" is one signal (a row). `results` lists the rows that passed the peak
    test, each with its row index, its regions `[start, end)` and its stats.
    """
    return {
        "total_samples_processed": int(total_rows),
        "valid_samples_found": len(kept_rows),
        "results": [
            {"sample_index": int(row),
             "regions": [r.to_dict() for r in seg.regions],
             "signal_stats": signal_stats(processed[row], seg.regions)}
            for row, seg in zip(kept_rows, segmentations, strict=True)
        ],
    }


def _envelope(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, low, high) of `y`: the samples themselves, or min/max per bin when long."""
    if y.size <= PLOT_BINS:
        x = np.arange(y.size)
        return x, y, y
    edges = np.linspace(0, y.size, PLOT_BINS + 1).astype(int)
    low = np.minimum.reduceat(y, edges[:-1])
    high = np.maximum.reduceat(y, edges[:-1])
    return edges[:-1], low, high


def plot_png(signal: np.ndarray, segmentation: Segmentation, title: str) -> bytes:
    """A two-panel PNG: the processed signal with regions shaded, and the probability."""
    # The object API (no pyplot) keeps no global state, so threads may draw at once.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), dpi=90)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    x, low, high = _envelope(signal)
    if low is high:
        top.plot(x, signal, linewidth=0.6, color="tab:blue")
    else:
        top.fill_between(x, low, high, linewidth=0.3, color="tab:blue")
    px, plow, phigh = _envelope(segmentation.probabilities)
    bottom.plot(px, phigh, linewidth=0.8, color="tab:orange", label="PD probability")
    bottom.axhline(segmentation.threshold, color="gray", linestyle="--", linewidth=0.8,
                   label=f"threshold {segmentation.threshold:g}")
    for region in segmentation.regions:
        for axis in (top, bottom):
            axis.axvspan(region.start, region.end, color="tab:red", alpha=0.25, linewidth=0)
    top.set_title(title)
    top.set_ylabel("processed signal")
    bottom.set_ylabel("probability")
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_xlabel("sample")
    bottom.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def render_html(report: dict, processed: np.ndarray,
                segmentations: Sequence[Segmentation], max_plots: int) -> str:
    """A self-contained HTML page: summary, then per signal a plot and its regions."""
    total = report["total_samples_processed"]
    valid = report["valid_samples_found"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<title>Partial discharge report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head><body>",
        "<h1>Partial discharge report</h1>",
        f"<p>Signals processed: {total}. Signals with activity (peak above the "
        f"threshold): {valid}.</p>",
    ]
    results = report["results"]
    for result, segmentation in list(zip(results, segmentations, strict=True))[:max_plots]:
        row = result["sample_index"]
        title = f"Signal {row}: {len(result['regions'])} PD region(s)"
        png = base64.b64encode(plot_png(processed[row], segmentation, title)).decode()
        parts.append(f"<h2>{html.escape(title)}</h2>"
                     f"<img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>")
        if result["regions"]:
            rows = "".join(f"<tr><td>{r['start']}</td><td>{r['end']}</td>"
                           f"<td>{r['duration']}</td></tr>" for r in result["regions"])
            parts.append("<table><tr><th>start</th><th>end</th><th>duration</th></tr>"
                         f"{rows}</table>")
    if len(results) > max_plots:
        parts.append(f"<p>{len(results) - max_plots} more signal(s) not drawn; "
                     "the JSON report lists them all.</p>")
    parts.append("</body></html>")
    return "".join(parts)
