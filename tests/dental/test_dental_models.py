"""Checkpoint building and loading, and the two models' outputs, without Ray."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from deployments.dental.detection import _to_instances, load_detection_model
from deployments.dental.segmentation import (
    build_deeplabv3,
    detectron2_available,
    load_segmentation_model,
)
from deployments.dental.structures import DETECTOR_CLASS_NAMES
from deployments.dental.synthetic import synthetic_radiograph


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.repeat(synthetic_radiograph(height, width, seed)[:, :, None], 3, axis=2)


def test_build_script_writes_the_start_up_defaults(built_weights: dict[str, Path]) -> None:
    """The files the build script writes are the untrained defaults a replica builds at
    start-up: the same tensors, so the same outputs."""
    saved = torch.load(built_weights["segmentation"], weights_only=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        fresh = build_deeplabv3(saved["arch"]).state_dict()
    assert saved["untrained"] is True and saved["state_dict"].keys() == fresh.keys()
    for name, tensor in fresh.items():
        assert torch.equal(saved["state_dict"][name], tensor), name

    image = rgb(64, 128)
    from_file = load_segmentation_model(str(built_weights["segmentation"]), max_side=64)
    at_start_up = load_segmentation_model(None, max_side=64)
    np.testing.assert_array_equal(from_file.predict(image).prob, at_start_up.predict(image).prob)

    detectors = [load_detection_model(str(built_weights["detection"])), load_detection_model(None)]
    for model in detectors:
        model.configure(imgsz=128)
    (from_file_det,), (at_start_up_det,) = (model.predict([image]) for model in detectors)
    assert from_file_det.instances, "an untrained detector at conf 0.0001 still finds some"
    assert [(i.class_name, i.box, round(i.score, 6)) for i in from_file_det.instances] == \
        [(i.class_name, i.box, round(i.score, 6)) for i in at_start_up_det.instances]


def test_model_health_checks_run_a_tiny_pass(built_weights: dict[str, Path]) -> None:
    segmenter = load_segmentation_model(str(built_weights["segmentation"]), max_side=64)
    detector = load_detection_model(str(built_weights["detection"]))
    segmenter.check_health()
    detector.check_health()
    # the probe leaves the detector's own settings in force
    assert detector.predict([rgb(64, 128)])[0].image_size == (64, 128)


def test_a_broken_model_fails_its_health_check(built_weights: dict[str, Path]) -> None:
    segmenter = load_segmentation_model(str(built_weights["segmentation"]), max_side=64)
    # weights gone NaN (a bad device or memory): the pass answers, but not with numbers
    with torch.no_grad():
        for parameter in segmenter._backend.model.parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(RuntimeError, match="segmentation model answered its probe"):
        segmenter.check_health()

    detector = load_detection_model(str(built_weights["detection"]))
    detector.yolo.predict = _raise_device_lost
    with pytest.raises(RuntimeError, match="detection model failed its probe"):
        detector.check_health()


def _raise_device_lost(*args: object, **kwargs: object) -> None:
    raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_segmenter_loads_the_built_checkpoint(built_weights: dict[str, Path]) -> None:
    model = load_segmentation_model(str(built_weights["segmentation"]), max_side=64)
    assert model.info["untrained"] is True
    assert model.info["arch"] == "deeplabv3_mobilenet_v3_large"
    result = model.predict(rgb(64, 128))
    assert result.image_size == (64, 128)
    assert result.prob.shape == (33, 32, 64)  # long side shrunk to max_side
    np.testing.assert_allclose(result.prob.astype(np.float32).sum(axis=0), 1.0, atol=1e-2)
    assert result.started_at <= result.finished_at


def test_a_plain_state_dict_loads_as_trained_weights(tmp_path: Path) -> None:
    path = tmp_path / "trained.pth"
    torch.save(build_deeplabv3("deeplabv3_mobilenet_v3_large").state_dict(), path)
    model = load_segmentation_model(f"file://{path}", max_side=64)
    assert model.info["untrained"] is False
    assert model.info["weights"] == f"file://{path}"


def test_a_checkpoint_with_the_wrong_classes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "voc.pth"
    torch.save(build_deeplabv3("deeplabv3_mobilenet_v3_large", num_classes=21).state_dict(), path)
    with pytest.raises(ValueError, match="not a 33-class DeepLabV3 state_dict"):
        load_segmentation_model(str(path))


def test_missing_weights_are_a_clear_error_not_a_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_segmentation_model(str(tmp_path / "absent.pth"))
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_detection_model(str(tmp_path / "yolo11n-seg.pt"))


@pytest.mark.skipif(detectron2_available(), reason="detectron2 is installed here")
def test_detectron2_backend_without_detectron2_says_so(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="needs the detectron2 package"):
        load_segmentation_model(str(tmp_path), backend="detectron2")


def test_detector_loads_the_built_checkpoint(built_weights: dict[str, Path]) -> None:
    model = load_detection_model(str(built_weights["detection"]))
    assert model.info["untrained"] is True
    assert tuple(model.names.values()) == DETECTOR_CLASS_NAMES
    model.configure(imgsz=320)
    images = [rgb(128, 256), rgb(150, 100, seed=1)]
    detections = model.predict(images)
    assert [d.image_size for d in detections] == [(128, 256), (150, 100)]
    assert all(d.batch_size == 2 for d in detections)
    for det in detections:
        height, width = det.image_size
        for inst in det.instances:
            x0, y0, x1, y1 = inst.box
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            assert inst.mask.shape == (y1 - y0, x1 - x0) and inst.mask.dtype == bool
            assert inst.class_name in DETECTOR_CLASS_NAMES


def test_detector_weights_must_be_a_pt_file(built_weights: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"must be a \.pt file"):
        load_detection_model(str(built_weights["segmentation"]))


class _Boxes(SimpleNamespace):
    def __len__(self) -> int:
        return len(self.conf)


def test_masks_are_mapped_back_through_the_letterbox() -> None:
    # A 100x200 image letterboxed into 64x64: scale 0.32, 16 rows of padding on top.
    # The image rectangle x 50..150, y 25..75 lands at x 16..48, y 24..40 of the input.
    mask = torch.zeros(1, 64, 64)
    mask[0, 24:40, 16:48] = 1
    result = SimpleNamespace(
        orig_shape=(100, 200), names={0: "CARIES"},
        masks=SimpleNamespace(data=mask),
        boxes=_Boxes(xyxy=torch.tensor([[40.0, 20.0, 160.0, 80.0]]), conf=torch.tensor([0.7]),
                     cls=torch.tensor([0.0])))
    (inst,) = _to_instances(result)
    assert inst.box == (40, 20, 160, 80) and inst.class_name == "CARIES"
    expected = np.zeros((60, 120), dtype=bool)
    expected[5:55, 10:110] = True
    iou = (inst.mask & expected).sum() / (inst.mask | expected).sum()
    assert iou > 0.95
