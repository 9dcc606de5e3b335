"""Settings of the dental family, read from the application config (`args`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deployments.common.outbound import OutboundPolicy

# Kept here, not in the model modules, so the ingress can read settings without torch.
Backend = Literal["torchvision", "detectron2"]
Arch = Literal["deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50", "deeplabv3_resnet101"]
# MobileNetV3-Large: ~0.5 s for 512x1024 on one CPU thread; ResNet-50 ~8 s.
DEFAULT_ARCH: Arch = "deeplabv3_mobilenet_v3_large"
DEFAULT_DETECTOR_CONFIG = "yolo11n-seg.yaml"


class DentalArgs(BaseModel):
    """Weights, devices, limits and knobs of the dental-pano endpoint.

    Weights URIs are local paths, `package://`, `s3://` or `https://`. Left unset,
    each model builds untrained default weights at start-up and every output says
    so in `warnings` (run `python -m deployments.dental.build_weights` to get
    the same defaults as files).
    """

    model_config = ConfigDict(extra="forbid")

    segmentation_weights: str | None = None
    segmentation_backend: Backend = "torchvision"
    segmentation_arch: Arch = DEFAULT_ARCH
    segmentation_max_side: int = Field(1024, ge=64, le=8192)
    detection_weights: str | None = None
    detection_model_config: str = DEFAULT_DETECTOR_CONFIG  # only for the untrained default
    detection_imgsz: int = Field(640, ge=32)
    detection_conf: float = Field(0.0001, ge=0, le=1)
    detection_iou: float = Field(0.5, ge=0, le=1)
    detection_max_det: int = Field(500, ge=1)
    max_batch_size: int = Field(4, ge=1)
    batch_wait_timeout_s: float = Field(0.02, ge=0)

    device: Literal["auto", "cpu", "cuda"] = "auto"
    segmenter_gpu_memory_fraction: float | None = Field(None, gt=0, le=1)
    detector_gpu_memory_fraction: float | None = Field(None, gt=0, le=1)

    max_image_bytes: int = Field(25 * 1024 * 1024, ge=1)
    # Checked from the header before decoding. 16 MP is over 3x a large panoramic
    # (about 3000 x 1500); the decoded size (pixels x bytes per pixel of the mode) must
    # also fit an RGB image of this many pixels, so 16-bit grayscale fits at the limit
    # and RGBA or 32-bit images get fewer pixels (deployments/dental/image.py).
    max_image_pixels: int = Field(16_000_000, ge=4)
    fetch_timeout_s: float = Field(30.0, gt=0)
    #: where client-given URLs may lead; serve_app.app.build_app sets it from the app's
    #: top-level `outbound`
    outbound: OutboundPolicy = Field(default_factory=OutboundPolicy)
    model_timeout_s: float = Field(300.0, gt=0)

    min_score: float = Field(0.5, ge=0, le=1)  # default threshold of the `findings` list
    overlay_min_score: float = Field(0.25, ge=0, le=1)
    output_prefix: str = "dental-pano"  # S3 key prefix; each job writes under <prefix>/<job id>/
    url_expires_s: int = Field(7 * 24 * 3600, ge=1)

    def detector_user_config(self) -> dict[str, Any]:
        """`FindingDetector` `user_config`: knobs changeable without restarting replicas."""
        return {"max_batch_size": self.max_batch_size,
                "batch_wait_timeout_s": self.batch_wait_timeout_s,
                "imgsz": self.detection_imgsz, "conf": self.detection_conf,
                "iou": self.detection_iou, "max_det": self.detection_max_det}


class DentalInput(BaseModel):
    """`job["input"]` of the dental-pano endpoint (the original worker's shape)."""

    model_config = ConfigDict(extra="ignore")

    image_url: str = Field(min_length=1)
    debug: bool = False
    min_score: float | None = Field(None, ge=0, le=1)
