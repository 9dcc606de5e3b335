"""Build the dental family's default (untrained) checkpoints offline.

    python -m deployments.dental.build_weights --out DIR

writes DIR/deeplabv3.pth (torchvision DeepLabV3 state_dict with metadata) and
DIR/yolo-seg.pt (ultralytics segmentation checkpoint with the dental classes),
both built from model configs with fixed seeds and marked untrained, so outputs
computed with them carry a warning. Point `segmentation_weights` /
`detection_weights` at trained files of the same formats for real use.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deployments.dental.config import DEFAULT_ARCH, DEFAULT_DETECTOR_CONFIG

SEGMENTATION_FILE = "deeplabv3.pth"
DETECTION_FILE = "yolo-seg.pt"


def build(out: Path, arch: str = DEFAULT_ARCH, detector_config: str = DEFAULT_DETECTOR_CONFIG,
          seed: int = 0) -> dict[str, Path]:
    """Write both checkpoints into `out`; returns their paths by model."""
    from deployments.dental import detection, segmentation

    return {
        "segmentation": segmentation.save_default_checkpoint(out / SEGMENTATION_FILE, arch, seed),
        "detection": detection.save_default_checkpoint(out / DETECTION_FILE, detector_config, seed),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--arch", default=DEFAULT_ARCH,
                        choices=["deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50",
                                 "deeplabv3_resnet101"])
    parser.add_argument("--detector-config", default=DEFAULT_DETECTOR_CONFIG,
                        help="ultralytics segmentation model YAML, e.g. yolo11s-seg.yaml")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    for model, path in build(options.out, options.arch, options.detector_config,
                             options.seed).items():
        print(f"{model}: {path} ({path.stat().st_size / 1e6:.1f} MB, untrained)")


if __name__ == "__main__":
    main()
