"""Semantic segmentation of teeth: 33 classes (background + 32 FDI teeth).

Two backends behind one interface (`ToothSegmentationModel.predict`):

- `torchvision`: DeepLabV3 from torchvision, built with `weights=None,
  weights_backbone=None` (the defaults would download ImageNet weights) and a
  state_dict checkpoint. The default backbone is MobileNetV3-Large: on one CPU
  thread it runs a 512x1024 image in ~0.5 s, ResNet-50 in ~8 s.
- `detectron2`: the original dental-pano-ai's Detectron2 DeepLab, loaded from its
  `config.yaml` + `model.pth` directory, for installations that have detectron2
  (it is not on PyPI).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from deployments.dental.config import DEFAULT_ARCH, Arch, Backend
from deployments.dental.structures import NUM_SEMANTIC_CLASSES, SegmentationResult

CHECKPOINT_FORMAT = "rsp-dental-deeplabv3"
# torchvision's segmentation models are trained on ImageNet-normalised input.
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
#: side of the black image of the health probe: a pass takes ~10 ms on one CPU thread
PROBE_SIDE = 32


def grid_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """The working size: the image shrunk (never enlarged) so its long side fits `max_side`."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def build_deeplabv3(arch: Arch, num_classes: int = NUM_SEMANTIC_CLASSES) -> torch.nn.Module:
    """An untrained torchvision DeepLabV3; never downloads anything."""
    from torchvision.models import segmentation

    factory = getattr(segmentation, arch, None)
    if factory is None or not arch.startswith("deeplabv3_"):
        raise ValueError(f"unknown DeepLabV3 architecture {arch!r}")
    return factory(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)


def save_default_checkpoint(path: Path, arch: Arch = DEFAULT_ARCH, seed: int = 0) -> Path:
    """Write an untrained, seeded DeepLabV3 checkpoint marked as untrained."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_deeplabv3(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "arch": arch, "num_classes": NUM_SEMANTIC_CLASSES,
                "untrained": True, "state_dict": model.state_dict()}, path)
    return path


class _Backend(Protocol):
    def logits(self, image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """(C, *size) class logits for an RGB uint8 image, computed at or resized to `size`."""


class _TorchvisionDeepLab:
    def __init__(self, checkpoint: Path, arch: Arch, device: torch.device) -> None:
        # weights_only: a checkpoint is data; refuse pickled code.
        raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
            arch, state_dict = raw["arch"], raw["state_dict"]
            self.untrained = bool(raw["untrained"])
        else:
            # A plain state_dict (e.g. from a training script): the architecture is configured.
            state_dict, self.untrained = raw, False
        head = state_dict.get("classifier.4.weight")
        if head is None or head.shape[0] != NUM_SEMANTIC_CLASSES:
            found = "no classifier.4.weight" if head is None else f"{head.shape[0]} classes"
            raise ValueError(f"{checkpoint} is not a {NUM_SEMANTIC_CLASSES}-class DeepLabV3 "
                             f"state_dict ({found})")
        model = build_deeplabv3(arch)
        model.load_state_dict(state_dict)
        self.arch = arch
        self.device = device
        self.model = model.eval().to(device)

    @torch.inference_mode()
    def logits(self, image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        x = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float().div_(255)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = (x - _MEAN.to(self.device)) / _STD.to(self.device)
        return self.model(x)["out"][0]


def detectron2_available() -> bool:
    try:
        import detectron2  # noqa: F401
    except ImportError:
        return False
    return True


class _Detectron2DeepLab:
    """The original's predictor setup: its config with test-time overrides, RGB input."""

    def __init__(self, directory: Path, device: torch.device) -> None:
        from detectron2.config import get_cfg
        from detectron2.engine import DefaultPredictor
        from detectron2.projects.deeplab import add_deeplab_config

        config, weights = directory / "config.yaml", directory / "model.pth"
        for path in (config, weights):
            if not path.is_file():
                raise FileNotFoundError(f"detectron2 weights directory lacks {path.name}: {path}")
        cfg = get_cfg()
        add_deeplab_config(cfg)
        cfg.merge_from_file(str(config))
        cfg.DATASETS.TEST = ()
        cfg.INPUT.FORMAT = "RGB"
        cfg.INPUT.CROP.ENABLED = False
        cfg.MODEL.DEVICE = str(device)
        cfg.MODEL.WEIGHTS = str(weights)
        cfg.SOLVER.IMS_PER_BATCH = 1
        self.predictor = DefaultPredictor(cfg)

    def logits(self, image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        with torch.inference_mode():
            out = self.predictor(image)["sem_seg"]  # (C, H, W) at the input's size
            if tuple(out.shape[-2:]) != size:
                out = F.interpolate(out[None], size=size, mode="bilinear", align_corners=False)[0]
            return out


class ToothSegmentationModel:
    """Probabilities of the 33 classes for an RGB image, on a grid of long side <= `max_side`."""

    def __init__(self, backend: _Backend, info: dict[str, Any], max_side: int = 1024) -> None:
        self._backend = backend
        self.info = info
        self.max_side = max_side

    def predict(self, image: np.ndarray) -> SegmentationResult:
        started = time.time()
        height, width = image.shape[:2]
        size = grid_size(height, width, self.max_side)
        logits = self._backend.logits(image, size)
        if logits.shape[0] != NUM_SEMANTIC_CLASSES:
            raise RuntimeError(f"segmentation model returned {logits.shape[0]} classes, "
                               f"expected {NUM_SEMANTIC_CLASSES}")
        prob = logits.float().softmax(dim=0).to(torch.float16).cpu().numpy()
        return SegmentationResult(prob=prob, image_size=(height, width), model_info=self.info,
                                  started_at=started, finished_at=time.time())

    def check_health(self) -> None:
        """Raise RuntimeError unless the model answers a tiny forward pass on its device
        with finite logits of every class (reading them back waits for the device)."""
        probe = np.zeros((PROBE_SIDE, PROBE_SIDE, 3), dtype=np.uint8)
        try:
            logits = self._backend.logits(probe, (PROBE_SIDE, PROBE_SIDE))
            finite = bool(torch.isfinite(logits).all())
        except Exception as exc:
            raise RuntimeError(f"the segmentation model failed its probe pass: {exc!r}") from exc
        if logits.shape[0] != NUM_SEMANTIC_CLASSES or not finite:
            raise RuntimeError(f"the segmentation model answered its probe pass with "
                               f"{logits.shape[0]} classes (finite: {finite})")


def load_segmentation_model(weights: str | None, backend: Backend = "torchvision",
                            arch: Arch = DEFAULT_ARCH, device: torch.device | None = None,
                            max_side: int = 1024) -> ToothSegmentationModel:
    """Load the segmenter from a weights URI (path, `package://`, `s3://`, `https://`).

    torchvision: the URI names a `.pth` (our checkpoint or a plain state_dict); with
    no URI an untrained default is built in a temporary file and loaded from there,
    so the default goes through the same loading code as real weights and is
    flagged `untrained`. detectron2: the URI names the original's directory with
    `config.yaml` and `model.pth`; there is no untrained default.
    """
    from deployments.common.fetch import resolve_weights, resolve_weights_dir

    device = device or torch.device("cpu")
    instance: _Backend
    if backend == "torchvision":
        if weights is None:
            with tempfile.TemporaryDirectory() as tmp:
                path = save_default_checkpoint(Path(tmp) / "deeplabv3.pth", arch)
                model = _TorchvisionDeepLab(path, arch, device)
            source = "untrained default (built at start-up)"
        else:
            model = _TorchvisionDeepLab(resolve_weights(weights), arch, device)
            source = weights
        instance, untrained, arch_name = model, model.untrained, model.arch
    elif backend == "detectron2":
        # Checked before fetching anything, so a missing package is the error reported.
        if not detectron2_available():
            raise RuntimeError(
                "segmentation backend 'detectron2' needs the detectron2 package, which is not "
                "installed (it is not on PyPI: build it from "
                "https://github.com/facebookresearch/detectron2 with its DeepLab project), "
                "or use backend 'torchvision'")
        if weights is None:
            raise ValueError("segmentation backend 'detectron2' needs a weights URI naming a "
                             "directory with config.yaml and model.pth")
        instance = _Detectron2DeepLab(resolve_weights_dir(weights), device)
        source, untrained, arch_name = weights, False, "detectron2-deeplab"
    else:
        raise ValueError(f"unknown segmentation backend {backend!r}")
    info = {"backend": backend, "arch": arch_name, "weights": source, "untrained": untrained,
            "device": str(device)}
    return ToothSegmentationModel(instance, info, max_side)
