"""Settings of the PD family: weights, device, input limits, segmentation and batching knobs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deployments.common.outbound import OutboundPolicy
from deployments.pd import processing

DEFAULT_WEIGHTS_URI = "package://deployments.pd/weights/pd_unet1d.pt"


class PDLimits(BaseModel):
    """What one request may carry; larger inputs are refused before they are decoded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_rows: int = Field(512, ge=1, description="signals per request")
    max_samples: int = Field(800_000, ge=16, description="samples per signal")
    max_total_samples: int = Field(4_000_000, ge=16, description="rows x samples per request")
    max_input_bytes: int = Field(64 * 1024 * 1024, ge=1,
                                 description="size of a fetched or base64-decoded file")
    fetch_timeout_s: float = Field(30.0, gt=0)
    #: where client-given URLs may lead; serve_app.app.build_app sets it from the app's
    #: top-level `outbound`
    outbound: OutboundPolicy = Field(default_factory=OutboundPolicy)
    max_plot_rows: int = Field(8, ge=1, description="signals drawn by render_html")


class PDArgs(BaseModel):
    """Everything the app builder needs to bind the PD deployments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights_uri: str = DEFAULT_WEIGHTS_URI
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpu_memory_fraction: float | None = Field(None, gt=0, le=1)
    limits: PDLimits = PDLimits()
    # Preprocessing (the original's values).
    chunk_rows: int = Field(processing.CHUNK_ROWS, ge=1)
    min_peak: float = Field(processing.MIN_PEAK, ge=0, lt=1)
    # Segmentation and batching: the segmenter's user_config, changeable without restart.
    threshold: float = Field(processing.THRESHOLD, gt=0, lt=1)
    window_size: int = Field(processing.WINDOW_SIZE, ge=16)
    overlap: float = Field(processing.OVERLAP, ge=0, lt=1)
    max_batch_size: int = Field(64, ge=1, description="windows per model call")
    batch_wait_timeout_s: float = Field(0.005, ge=0)
    segment_timeout_s: float = Field(300.0, gt=0, description="one job's wait on the model")

    def segmenter_user_config(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "window_size": self.window_size,
                "overlap": self.overlap, "max_batch_size": self.max_batch_size,
                "batch_wait_timeout_s": self.batch_wait_timeout_s}
