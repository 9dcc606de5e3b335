"""Turn model outputs into the endpoint's output: findings, CSV, overlays, S3 uploads.

No Ray here: the pipeline deployment calls these off its event loop.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from deployments.common.fetch import S3Config, upload_output
from deployments.common.outbound import OutboundPolicy
from deployments.dental.findings import compute_findings, findings_csv
from deployments.dental.image import SUPPORTED_FORMATS, encode_jpeg
from deployments.dental.overlay import instance_overlay, semantic_overlay
from deployments.dental.structures import Detections, FindingEntry, SegmentationResult

SEMANTIC_OVERLAY = "semantic-segmentation.jpg"
INSTANCE_OVERLAY = "instance-detection.jpg"
UNTRAINED_BANNER = "UNTRAINED DEFAULT WEIGHTS - NOT A DIAGNOSIS"


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


def build_output(image: np.ndarray, segmentation: SegmentationResult, detections: Detections,
                 file_name: str, min_score: float, debug: bool,
                 overlay_min_score: float) -> tuple[dict[str, Any], str, dict[str, bytes]]:
    """Findings, model info and warnings; plus the CSV text and the overlays' JPEG bytes.

    The caller adds the CSV and overlays to the output inline (`inline_outputs`) or
    as URLs (`upload_outputs`).
    """
    entries = compute_findings(segmentation.prob, segmentation.image_size, detections.instances)
    model_info = {"segmentation": segmentation.model_info, "detection": detections.model_info}
    warnings = model_warnings(model_info)
    jpegs = (debug_images(image, segmentation, detections, overlay_min_score, bool(warnings))
             if debug else {})
    findings = findings_list(entries, min_score)
    output = {"findings": findings, "num_findings": len(findings), "model_info": model_info,
              "warnings": warnings}
    return output, findings_csv(entries, file_name), jpegs


def inline_outputs(csv_text: str, jpegs: dict[str, bytes]) -> dict[str, Any]:
    """The CSV as text and the overlays as base64, as the original worker returned them."""
    return {"csv_data": csv_text,
            "debug_images": {name: base64.b64encode(data).decode() for name, data in jpegs.items()}}


def job_prefix(base: str, job_id: str) -> str:
    """`base/<job id>/`, the id reduced to characters safe in any S3 key."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", job_id) or "job"
    return f"{base.strip('/')}/{safe}/" if base.strip("/") else f"{safe}/"


def upload_outputs(s3: S3Config, policy: OutboundPolicy, prefix: str, input_bytes: bytes,
                   input_format: str, csv_text: str, jpegs: dict[str, bytes],
                   expires_s: int) -> dict[str, Any]:
    """Put the input image, CSV and overlays under `prefix`; their presigned URLs by role."""
    extension = "jpg" if input_format == "JPEG" else input_format.lower()
    uploads = {
        "input_image_url": (f"input.{extension}", input_bytes, SUPPORTED_FORMATS[input_format]),
        "csv_url": ("findings.csv", csv_text.encode(), "text/csv"),
        **{name: (name, data, "image/jpeg") for name, data in jpegs.items()},
    }
    with ThreadPoolExecutor(max_workers=len(uploads)) as pool:
        futures = {role: pool.submit(upload_output, s3, policy, prefix + key, data, content_type,
                                     expires_s)
                   for role, (key, data, content_type) in uploads.items()}
        urls = {role: future.result() for role, future in futures.items()}
    return {
        "input_image_url": urls["input_image_url"],
        "csv_url": urls["csv_url"],
        "debug_images": {name: urls[name] for name in jpegs},
    }
