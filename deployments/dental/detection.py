"""Instance segmentation of teeth and findings with Ultralytics YOLO.

Offline traps (see shared/design.md): ultralytics reads YOLO_OFFLINE,
YOLO_AUTOINSTALL and YOLO_CONFIG_DIR when first imported, and any `*.pt` name
that is not a file on disk starts a download. So the environment is set before
the first import here, and only resolved local paths are handed to `YOLO`.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deployments.dental.config import DEFAULT_DETECTOR_CONFIG
from deployments.dental.sampling import pixel_centers, resample
from deployments.dental.structures import DETECTOR_CLASS_NAMES, Detections, Instance

UNTRAINED_KEY = "rsp_untrained"
#: side of the black image of the health probe: a pass takes ~6 ms on one CPU thread
PROBE_SIDE = 32


def _ultralytics() -> Any:
    """The ultralytics package, imported with the offline settings in place."""
    os.environ.setdefault("YOLO_OFFLINE", "true")  # the string; "1" is not honoured everywhere
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "rsp-ultralytics"))
    import ultralytics

    return ultralytics


def save_default_checkpoint(path: Path, model_config: str = DEFAULT_DETECTOR_CONFIG,
                            seed: int = 0) -> Path:
    """Write an untrained YOLO segmentation checkpoint with the dental classes.

    Built from an ultralytics model config (no download) and saved with
    `YOLO.save`, so it has exactly the layout ultralytics loads; a marker key in
    the checkpoint says it is untrained.
    """
    ultralytics = _ultralytics()
    from ultralytics.nn.tasks import SegmentationModel, yaml_model_load

    if Path(path).suffix != ".pt":
        raise ValueError(f"ultralytics checkpoints must end in .pt, not {path}")
    yolo = ultralytics.YOLO(model_config, task="segment")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SegmentationModel(yaml_model_load(model_config), nc=len(DETECTOR_CLASS_NAMES),
                                  verbose=False)
    model.names = dict(enumerate(DETECTOR_CLASS_NAMES))
    model.task = "segment"
    yolo.model = model
    yolo.ckpt = {"train_args": {"task": "segment", "model": model_config}, UNTRAINED_KEY: True}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    yolo.save(path)
    return Path(path)


def _letterbox_geometry(image_size: tuple[int, int], input_size: tuple[int, int]
                        ) -> tuple[float, float, float]:
    """(gain, top pad, left pad) of ultralytics' letterbox from image to network input."""
    height, width = image_size
    in_h, in_w = input_size
    gain = min(in_h / height, in_w / width)
    # Same rounding as ultralytics.utils.ops.scale_masks.
    top = round((in_h - height * gain) / 2 - 0.1)
    left = round((in_w - width * gain) / 2 - 0.1)
    return gain, top, left


def _to_instances(result: Any) -> list[Instance]:
    """Instances of one ultralytics result, masks cropped to their boxes at image resolution.

    Masks come at the network's input size (`retina_masks=False`); upsampling only
    each box, not N full-resolution masks, keeps memory flat for big radiographs.
    """
    if result.boxes is None or result.masks is None or len(result.boxes) == 0:
        return []
    height, width = result.orig_shape
    masks = result.masks.data.float().cpu().numpy()
    gain, top, left = _letterbox_geometry((height, width), masks.shape[-2:])
    boxes = result.boxes.xyxy.cpu().numpy()
    scores = result.boxes.conf.cpu().numpy()
    classes = result.boxes.cls.cpu().numpy().astype(int)
    instances = []
    for (x0, y0, x1, y1), score, cls, mask in zip(boxes, scores, classes, masks, strict=True):
        bx0 = min(max(math.floor(x0), 0), width - 1)
        by0 = min(max(math.floor(y0), 0), height - 1)
        bx1 = min(max(math.ceil(x1), bx0 + 1), width)
        by1 = min(max(math.ceil(y1), by0 + 1), height)
        crop = resample(mask, pixel_centers(by0, by1, gain, top),
                        pixel_centers(bx0, bx1, gain, left)) > 0.5
        instances.append(Instance(score=float(score), class_id=int(cls),
                                  class_name=str(result.names[int(cls)]),
                                  box=(bx0, by0, bx1, by1), mask=crop))
    return instances


class InstanceDetectionModel:
    """A YOLO segmentation model; one forward pass per batch of images."""

    def __init__(self, checkpoint: Path, device: torch.device | None = None,
                 weights_uri: str | None = None) -> None:
        if checkpoint.suffix != ".pt":
            # Anything else would be treated as a model name and looked up online.
            raise ValueError(f"YOLO weights must be a .pt file, got {checkpoint}")
        ultralytics = _ultralytics()
        self.yolo = ultralytics.YOLO(str(checkpoint))
        if self.yolo.task != "segment":
            raise ValueError(f"{checkpoint} is a YOLO {self.yolo.task} model, not segmentation")
        self.device = device or torch.device("cpu")
        self.names = dict(self.yolo.names)
        self.info: dict[str, Any] = {
            "backend": "ultralytics", "weights": weights_uri or str(checkpoint),
            "untrained": bool(self.yolo.ckpt.get(UNTRAINED_KEY, False)),
            "classes": list(self.names.values()), "device": str(self.device),
        }
        # The original's inference settings: a very low confidence floor, because
        # findings weigh every instance by its score anyway.
        self.imgsz, self.conf, self.iou, self.max_det = 640, 0.0001, 0.5, 500
        # ultralytics' predictor keeps per-call state (its settings, the head's anchors
        # for the last input shape): one pass at a time, the health probe included.
        self._lock = threading.Lock()

    def configure(self, imgsz: int | None = None, conf: float | None = None,
                  iou: float | None = None, max_det: int | None = None) -> None:
        self.imgsz = imgsz if imgsz is not None else self.imgsz
        self.conf = conf if conf is not None else self.conf
        self.iou = iou if iou is not None else self.iou
        self.max_det = max_det if max_det is not None else self.max_det

    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detections for RGB uint8 images, all in one forward pass."""
        started = time.time()
        # ultralytics treats numpy input as OpenCV BGR.
        batch = [np.ascontiguousarray(image[:, :, ::-1]) for image in images]
        with self._lock:
            results = self.yolo.predict(batch, imgsz=self.imgsz, conf=self.conf, iou=self.iou,
                                        max_det=self.max_det, retina_masks=False,
                                        device=str(self.device), verbose=False)
        detections = [_to_instances(result) for result in results]
        finished = time.time()
        return [Detections(instances=instances, image_size=image.shape[:2],
                           model_info=self.info, started_at=started, finished_at=finished,
                           batch_size=len(images))
                for instances, image in zip(detections, images, strict=True)]

    def check_health(self) -> None:
        """Raise RuntimeError unless the model answers a tiny forward pass on its device
        (after any pass in progress: they share the predictor)."""
        probe = np.zeros((PROBE_SIDE, PROBE_SIDE, 3), dtype=np.uint8)
        try:
            with self._lock:
                (result,) = self.yolo.predict([probe], imgsz=PROBE_SIDE, conf=self.conf,
                                              iou=self.iou, max_det=self.max_det,
                                              retina_masks=False, device=str(self.device),
                                              verbose=False)
        except Exception as exc:
            raise RuntimeError(f"the detection model failed its probe pass: {exc!r}") from exc
        if result.boxes is None:
            raise RuntimeError("the detection model answered its probe pass without boxes")


def load_detection_model(weights: str | None, device: torch.device | None = None,
                         model_config: str = DEFAULT_DETECTOR_CONFIG) -> InstanceDetectionModel:
    """Load YOLO from a weights URI; with none, build an untrained default and load that.

    The default goes through the same file-loading code as real weights.
    """
    from deployments.common.fetch import resolve_weights

    if weights is None:
        with tempfile.TemporaryDirectory() as tmp:
            path = save_default_checkpoint(Path(tmp) / "yolo-seg.pt", model_config)
            model = InstanceDetectionModel(path, device, "untrained default (built at start-up)")
        return model
    return InstanceDetectionModel(resolve_weights(weights), device, weights)
