"""Typed values passed between the dental models, the findings step and the pipeline.

They cross Ray process boundaries (pickled), so they hold plain numpy arrays and
builtins only: no torch tensors, no ultralytics objects.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

import numpy as np

# Background + 32 permanent teeth.
NUM_SEMANTIC_CLASSES = 33


def fdi_of_class(index: int) -> str:
    """FDI number ("11".."48") of semantic class `index` (1..32); class 0 is background."""
    if not 1 <= index <= NUM_SEMANTIC_CLASSES - 1:
        raise ValueError(f"semantic class {index} is not a tooth (1..32)")
    return f"{(index - 1) // 8 + 1}{(index - 1) % 8 + 1}"


class FindingType(str, Enum):
    """The findings of the original dental-pano-ai, in its CSV order.

    The member name is what the CSV's `finding` column says; the value is the
    detector class name the finding is read from (MISSING comes from `TOOTH*`).
    """

    MISSING = "TOOTH"
    IMPLANT = "IMPLANT"
    RESIDUAL_ROOT = "ROOT_REMNANTS"
    CROWN_BRIDGE = "CROWN_BRIDGE"
    ROOT_CANAL_FILLING = "ENDO"
    FILLING = "FILLING"
    CARIES = "CARIES"
    PERIAPICAL_RADIOLUCENCY = "PERIAPICAL_RADIOLUCENT"


# Class names of the default detector: one tooth class (the original's checkpoint
# has one class per FDI number, all starting with TOOTH, which matches too) and
# the seven finding classes.
DETECTOR_CLASS_NAMES: tuple[str, ...] = tuple(f.value for f in FindingType)


@dataclasses.dataclass
class SegmentationResult:
    """Per-pixel class probabilities on a grid that may be smaller than the image.

    `prob` is (33, h, w) float16: the image resized so its long side fits the
    model's working size. Findings resample it to image coordinates per instance,
    which keeps what crosses process boundaries small (33 full-resolution float
    maps of a 3000x1500 panoramic would be ~600 MB).
    """

    prob: np.ndarray
    image_size: tuple[int, int]  # (height, width) of the input image
    model_info: dict[str, Any]
    started_at: float  # wall clock (time.time()) around the model call, to show overlap
    finished_at: float


@dataclasses.dataclass
class Instance:
    """One detected instance in image coordinates.

    The mask covers only the box `(x0, y0, x1, y1)` (end-exclusive): instance
    masks are zero outside their boxes, and cropping keeps many instances cheap.
    """

    score: float
    class_id: int
    class_name: str
    box: tuple[int, int, int, int]
    mask: np.ndarray  # bool, shape (y1 - y0, x1 - x0)

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclasses.dataclass
class Detections:
    instances: list[Instance]
    image_size: tuple[int, int]  # (height, width)
    model_info: dict[str, Any]
    started_at: float
    finished_at: float
    batch_size: int = 1  # how many images shared the forward pass


@dataclasses.dataclass(frozen=True)
class FindingEntry:
    tooth_index: int  # semantic class 1..32
    finding: FindingType
    score: float

    @property
    def fdi(self) -> str:
        return fdi_of_class(self.tooth_index)
