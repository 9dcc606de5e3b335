"""Turn model outputs into the endpoint's output: findings, CSV and overlays, built once as
a `DentalReport`, then inlined (`inline`) or put in the caller's bucket (`upload`).

No Ray here: the pipeline calls these off its event loop.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deployments.common.fetch import S3Config
from deployments.common.outbound import OutboundPolicy
from deployments.common.uploads import Upload, upload_outputs
from deployments.dental.findings import compute_findings, findings_csv
from deployments.dental.image import SUPPORTED_FORMATS, encode_jpeg
from deployments.dental.overlay import instance_overlay, semantic_overlay
from deployments.dental.structures import Detections, FindingEntry, SegmentationResult

SEMANTIC_OVERLAY = "semantic-segmentation.jpg"
INSTANCE_OVERLAY = "instance-detection.jpg"
UNTRAINED_BANNER = "UNTRAINED DEFAULT WEIGHTS - NOT A DIAGNOSIS"
# Names of the uploads that are not overlays (overlays go by their file names).
INPUT_IMAGE, CSV = "input_image", "csv"


def model_warnings(model_info: dict[str, dict[str, Any]]) -> list[str]:
    """One warning per model running on untrained default weights."""
    return [f"the {name} model uses untrained default weights ({info.get('weights')}): its "
            "output is a placeholder, not a diagnosis; configure trained weights"
            for name, info in model_info.items() if info.get("untrained")]


def findings_list(entries: Sequence[FindingEntry], min_score: float) -> list[dict[str, Any]]:
    """Entries scoring at least `min_score`, most certain first."""
    chosen = sorted((e for e in entries if e.score >= min_score), key=lambda e: -e.score)
    return [{"fdi": e.fdi, "finding": e.finding.name, "score": round(e.score, 6)} for e in chosen]


def debug_images(image: np.ndarray, segmentation: SegmentationResult, detections: Detections,
                 overlay_min_score: float, untrained: bool) -> dict[str, bytes]:
    """The two overlays as JPEG bytes, banner-marked when any model is untrained."""
    banner = UNTRAINED_BANNER if untrained else None
    return {
        SEMANTIC_OVERLAY: encode_jpeg(semantic_overlay(image, segmentation.prob, banner=banner)),
        INSTANCE_OVERLAY: encode_jpeg(instance_overlay(image, detections.instances,
                                                       overlay_min_score, banner=banner)),
    }


@dataclass(frozen=True)
class DentalReport:
    """What one radiograph gave: the findings list, model info and warnings, and the
    artefacts (CSV text, overlay JPEGs) that go inline or to S3."""

    findings: list[dict[str, Any]]  # {"fdi", "finding", "score"}, most certain first
    model_info: dict[str, dict[str, Any]]
    warnings: list[str]
    csv_text: str  # all 8 findings x 32 teeth, whatever `min_score`
    overlays: dict[str, bytes] = field(default_factory=dict)  # JPEG bytes by file name

    def summary(self) -> dict[str, Any]:
        """The part of the output that is the same inline and uploaded."""
        return {"findings": self.findings, "num_findings": len(self.findings),
                "model_info": self.model_info, "warnings": self.warnings}

    def inline(self) -> dict[str, Any]:
        """The output with the CSV as text and the overlays in base64, as the original
        worker returned them."""
        return {**self.summary(), "csv_data": self.csv_text,
                "debug_images": {name: base64.b64encode(data).decode()
                                 for name, data in self.overlays.items()}}

    def upload(self, s3: S3Config, policy: OutboundPolicy, prefix: str, image: bytes,
               image_format: str, expires_s: int) -> dict[str, Any]:
        """Put the input image, CSV and overlays under `prefix` in the caller's bucket; the
        output with their presigned URLs in place of the inline data."""
        extension = "jpg" if image_format == "JPEG" else image_format.lower()
        urls = upload_outputs(s3, policy, prefix, {
            INPUT_IMAGE: Upload(f"input.{extension}", image, SUPPORTED_FORMATS[image_format]),
            CSV: Upload("findings.csv", self.csv_text.encode(), "text/csv"),
            **{name: Upload(name, data, "image/jpeg") for name, data in self.overlays.items()},
        }, expires_s)
        return {**self.summary(), "input_image_url": urls.pop(INPUT_IMAGE),
                "csv_url": urls.pop(CSV), "debug_images": urls}


def build_report(image: np.ndarray, segmentation: SegmentationResult, detections: Detections,
                 file_name: str, min_score: float, debug: bool,
                 overlay_min_score: float) -> DentalReport:
    """Findings per tooth from both models' outputs, with the CSV and (with `debug`) the
    overlays."""
    entries = compute_findings(segmentation.prob, segmentation.image_size, detections.instances)
    model_info = {"segmentation": segmentation.model_info, "detection": detections.model_info}
    warnings = model_warnings(model_info)
    overlays = (debug_images(image, segmentation, detections, overlay_min_score, bool(warnings))
                if debug else {})
    return DentalReport(findings=findings_list(entries, min_score), model_info=model_info,
                        warnings=warnings, csv_text=findings_csv(entries, file_name),
                        overlays=overlays)
