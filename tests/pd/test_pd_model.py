"""UNet1D shapes, size, checkpoint formats; the shipped checkpoint on fresh signals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deployments.pd.config import DEFAULT_WEIGHTS_URI
from deployments.pd.evaluate import (
    HELD_OUT_SEED,
    TARGET_IOU,
    evaluate,
    match_regions,
    score_regions,
)
from deployments.pd.inference import PDModel
from deployments.pd.model import UNet1D, count_parameters, load_from_uri, load_unet1d
from deployments.pd.processing import PreprocessParams, Region, SegmentSettings, preprocess
from deployments.pd.synthetic import SyntheticParams, generate


@pytest.mark.parametrize("length", [1, 15, 16, 777, 1000, 1024, 1500, 2048])
def test_output_has_one_logit_per_input_sample(length: int) -> None:
    model = UNet1D(base_channels=4).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 1, length))
    assert out.shape == (3, 1, length)


def test_original_width_has_about_twelve_million_parameters() -> None:
    assert 11_500_000 < count_parameters(UNet1D(base_channels=64)) < 12_500_000


@pytest.mark.parametrize("wrap", ["plain", "model_state_dict", "state_dict", "dataparallel"])
def test_loads_the_checkpoint_formats(tmp_path: Path, wrap: str) -> None:
    torch.manual_seed(0)
    source = UNet1D(base_channels=4).eval()
    state = source.state_dict()
    saved = {
        "plain": state,
        "model_state_dict": {"epoch": 3, "model_state_dict": state},
        "state_dict": {"state_dict": state},
        "dataparallel": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    torch.save(saved, tmp_path / "best_model.pth")
    loaded = load_unet1d(tmp_path / "best_model.pth")
    x = torch.randn(2, 1, 1024)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x))
    assert not loaded.training


def test_shipped_checkpoint_matches_its_sidecar() -> None:
    model = load_from_uri(DEFAULT_WEIGHTS_URI)
    sidecar = json.loads(
        (Path(__file__).parents[2] / "deployments/pd/weights/pd_unet1d.json").read_text())
    assert sidecar["parameters"] == count_parameters(model)
    assert sidecar["held_out"]["f1"] >= 0.9


def test_region_matching_is_one_to_one_at_iou_half() -> None:
    truth = [Region(0, 100), Region(200, 300)]
    predicted = [Region(10, 100), Region(0, 50), Region(240, 300), Region(500, 510)]
    # (0,100)~(10,100) IoU 0.9; (0,50) would also fit (IoU 0.5) but (0,100) is taken;
    # (200,300)~(240,300) IoU 0.6.
    assert [(i, j) for i, j, _ in match_regions(truth, predicted)] == [(0, 0), (1, 2)]
    scores = score_regions([truth], [predicted])
    assert scores["precision"] == 0.5 and scores["recall"] == 1.0
    assert scores["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 0))
    assert scores["mean_iou"] == pytest.approx((0.9 + 0.6) / 2)
    assert score_regions([[Region(0, 10)]], [[Region(6, 16)]])["f1"] == 0.0  # IoU 1/4


def test_region_matching_at_the_issues_iou() -> None:
    """At IoU 0.2 (issue 14's threshold) a pair overlapping by a quarter matches, one of
    a tenth does not, and matching stays one to one."""
    assert TARGET_IOU == 0.2
    assert score_regions([[Region(0, 10)]], [[Region(6, 16)]], TARGET_IOU)["f1"] == 1.0
    assert score_regions([[Region(0, 10)]], [[Region(8, 19)]], TARGET_IOU)["f1"] == 0.0
    # two fragments of one pulse: one matches, the other is a false positive
    scores = score_regions([[Region(0, 100)]], [[Region(0, 40), Region(60, 100)]], TARGET_IOU)
    assert (scores["precision"], scores["recall"]) == (0.5, 1.0)


def test_shipped_checkpoint_finds_pulses_in_fresh_signals() -> None:
    """Region F1 >= 0.9 on signals from a seed neither training nor the sidecar used."""
    model = PDModel.from_uri(DEFAULT_WEIGHTS_URI)
    scores = evaluate(model, n_signals=40, seed=HELD_OUT_SEED + 17,
                      settings=SegmentSettings(), params=SyntheticParams(length=4096))
    assert scores["true_regions"] > 40  # the set really holds pulses
    assert scores["f1"] >= 0.9, scores
    assert scores["mean_iou"] >= 0.75, scores


def test_shipped_checkpoint_is_quiet_on_pulse_free_signals() -> None:
    model = PDModel.from_uri(DEFAULT_WEIGHTS_URI)
    data = generate(10, seed=HELD_OUT_SEED + 29, params=SyntheticParams(max_pulses=0))
    processed, _ = preprocess(data.signals, PreprocessParams(chunk_rows=1))
    assert sum(len(model.segment(row).regions) for row in processed) <= 1
