"""PDSegmenter.reconfigure on a live instance, without Serve.

(Its batching needs a Serve replica around it; test_pd_serve.py covers that.)
"""

from __future__ import annotations

import pytest

from deployments.pd.config import PDArgs, PDLimits
from deployments.pd.deployment import PDSegmenter, build_pd_app
from deployments.pd.processing import SegmentSettings


def test_reconfigure_applies_all_keys_or_none() -> None:
    # The user class under the decorator: what each replica instantiates.
    segmenter = PDSegmenter.func_or_class(device="cpu")
    assert segmenter.settings == SegmentSettings()

    segmenter.reconfigure({"threshold": 0.8, "window_size": 512, "overlap": 0.25,
                           "max_batch_size": 8, "batch_wait_timeout_s": 0.02})
    assert segmenter.settings == SegmentSettings(0.8, 512, 0.25)
    assert segmenter.batching == {"max_batch_size": 8, "batch_wait_timeout_s": 0.02}

    segmenter.reconfigure({"threshold": 0.6})  # keys left out keep their values
    assert segmenter.settings == SegmentSettings(0.6, 512, 0.25)

    with pytest.raises(ValueError, match="unknown PDSegmenter user_config keys.*treshold"):
        segmenter.reconfigure({"treshold": 0.3})
    with pytest.raises(ValueError, match="threshold must be in"):
        segmenter.reconfigure({"threshold": 1.5, "max_batch_size": 4})
    with pytest.raises(ValueError, match="overlap"):
        segmenter.reconfigure({"overlap": 1.0})
    # A refused config changes nothing.
    assert segmenter.settings == SegmentSettings(0.6, 512, 0.25)
    assert segmenter.batching["max_batch_size"] == 8


@pytest.mark.parametrize("max_rows", [1, 512, 2000])
def test_the_segmenter_takes_eight_jobs_of_the_most_signals(max_rows: int) -> None:
    """PDPipeline makes one `segment` call per signal. Calls past the segmenter's
    max_ongoing_requests wait in Serve's router, which retries with backoff while the
    replica idles (at 128, 32 concurrent 8-signal jobs over HTTP ran 3x slower than with
    room for all). The builder sizes it from the configured row limit."""
    from ray.serve._private.build_app import build_app

    built = build_app(build_pd_app(PDArgs(limits=PDLimits(max_rows=max_rows))), name="pd")
    segmenter = next(d for d in built.deployments if d.name == "PDSegmenter")
    assert segmenter.max_ongoing_requests == 8 * max_rows


def test_the_health_check_probes_the_model() -> None:
    segmenter = PDSegmenter.func_or_class(device="cpu")
    segmenter.check_health()  # a loaded model on a working device passes
    segmenter.reconfigure({"window_size": 512})
    segmenter.check_health()  # probes at the configured window size

    def device_lost(windows: object) -> object:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    segmenter.model.predict_windows = device_lost
    with pytest.raises(RuntimeError, match="illegal memory access"):
        segmenter.check_health()
    segmenter.model.predict_windows = lambda windows: windows[:, :10] * float("nan")
    with pytest.raises(RuntimeError, match="probe window"):
        segmenter.check_health()
