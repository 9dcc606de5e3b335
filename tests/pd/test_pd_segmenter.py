"""PDSegmenter.reconfigure on a live instance, without Serve.

(Its batching needs a Serve replica around it; test_pd_serve.py covers that.)
"""

from __future__ import annotations

import pytest

from deployments.pd.deployment import PDSegmenter
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


def test_the_segmenter_takes_the_pipelines_fan_out() -> None:
    """PDPipeline makes one `segment` call per signal. Calls past the segmenter's
    max_ongoing_requests wait in Serve's router, which retries with backoff while the
    replica idles (at 128, 32 concurrent 8-signal jobs over HTTP ran 3x slower than with
    room for all). Eight jobs of the most signals a job may carry fit at once."""
    from deployments.pd.config import PDLimits

    assert PDSegmenter.max_ongoing_requests >= 8 * PDLimits().max_rows
