"""The findings algorithm on hand-built probabilities and masks with known answers."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from deployments.dental.findings import compute_findings, findings_csv
from deployments.dental.structures import FindingType, Instance, fdi_of_class

H, W = 40, 80
# Columns of the image that belong to teeth 11, 12 and 13 (classes 1, 2, 3); the rest is background.
REGIONS = {1: (0, 20), 2: (20, 40), 3: (40, 60)}


def one_hot_prob() -> np.ndarray:
    prob = np.zeros((33, H, W), dtype=np.float32)
    prob[0] = 1.0
    for cls, (c0, c1) in REGIONS.items():
        prob[:, :, c0:c1] = 0.0
        prob[cls, :, c0:c1] = 1.0
    return prob


def instance(name: str, score: float, x0: int, x1: int, y0: int = 0, y1: int = H) -> Instance:
    return Instance(score=score, class_id=0, class_name=name, box=(x0, y0, x1, y1),
                    mask=np.ones((y1 - y0, x1 - x0), dtype=bool))


def scores(prob: np.ndarray, instances: list[Instance]) -> dict[tuple[str, str], float]:
    entries = compute_findings(prob, (H, W), instances)
    assert len(entries) == 8 * 32
    return {(e.finding.name, e.fdi): e.score for e in entries}


def test_fdi_numbering() -> None:
    assert [fdi_of_class(i) for i in (1, 8, 9, 16, 17, 25, 32)] == [
        "11", "18", "21", "28", "31", "41", "48"]
    with pytest.raises(ValueError):
        fdi_of_class(0)


def test_a_tooth_covered_by_caries_gets_its_score() -> None:
    result = scores(one_hot_prob(), [instance("CARIES", 0.8, *REGIONS[1])])
    assert result["CARIES", "11"] == pytest.approx(0.8)
    assert result["CARIES", "12"] == pytest.approx(0.0)
    others = {k: v for k, v in result.items() if k[0] not in {"CARIES", "MISSING"}}
    assert all(v == 0 for v in others.values())


def test_an_instance_spanning_two_teeth_splits_its_score_by_share() -> None:
    result = scores(one_hot_prob(), [instance("CARIES", 0.6, 10, 30)])
    assert result["CARIES", "11"] == pytest.approx(0.3)
    assert result["CARIES", "12"] == pytest.approx(0.3)
    assert result["CARIES", "13"] == pytest.approx(0.0)


def test_instances_on_one_tooth_combine_by_noisy_or() -> None:
    result = scores(one_hot_prob(), [instance("FILLING", 0.5, 0, 20, 0, 20),
                                     instance("FILLING", 0.4, 0, 20, 20, 40)])
    assert result["FILLING", "11"] == pytest.approx(1 - 0.5 * 0.6)


def test_overlapping_instances_are_discounted() -> None:
    # Everywhere in teeth 11/12 the segmenter is unsure: p(11) = 0.75, p(12) = 0.25.
    prob = np.zeros((33, H, W), dtype=np.float32)
    prob[0] = 1.0
    prob[:, :, :40] = 0.0
    prob[1, :, :40] = 0.75
    prob[2, :, :40] = 0.25

    alone = scores(prob, [instance("CARIES", 0.6, 0, 40)])
    assert alone["CARIES", "11"] == pytest.approx(0.6 * 0.75)
    assert alone["CARIES", "12"] == pytest.approx(0.6 * 0.25)

    # Two instances over the same pixels: each pixel counts 1 - (1 - p) ** (1 / 2).
    both = scores(prob, [instance("CARIES", 0.6, 0, 40), instance("CARIES", 0.5, 0, 40)])
    d11, d12 = 1 - 0.25 ** 0.5, 1 - 0.75 ** 0.5
    share11, share12 = d11 / (d11 + d12), d12 / (d11 + d12)
    expected11 = 1 - (1 - 0.6 * share11) * (1 - 0.5 * share11)
    expected12 = 1 - (1 - 0.6 * share12) * (1 - 0.5 * share12)
    assert both["CARIES", "11"] == pytest.approx(expected11, rel=1e-5)  # float32 maths
    assert both["CARIES", "12"] == pytest.approx(expected12, rel=1e-5)
    undiscounted = 1 - (1 - 0.6 * 0.75) * (1 - 0.5 * 0.75)
    assert abs(both["CARIES", "11"] - undiscounted) > 0.02


def test_an_absent_tooth_is_missing() -> None:
    # Tooth presence uses the share alone (as the original does), not the score.
    result = scores(one_hot_prob(), [instance("TOOTH", 0.3, *REGIONS[1]),
                                     instance("TOOTH", 0.9, *REGIONS[2])])
    assert result["MISSING", "11"] == pytest.approx(0.0)
    assert result["MISSING", "12"] == pytest.approx(0.0)
    assert result["MISSING", "13"] == pytest.approx(1.0)
    assert result["MISSING", "48"] == pytest.approx(1.0)


def test_no_detections_means_every_tooth_missing_and_no_other_finding() -> None:
    result = scores(one_hot_prob(), [])
    assert all(v == 1.0 for k, v in result.items() if k[0] == "MISSING")
    assert all(v == 0.0 for k, v in result.items() if k[0] != "MISSING")


def test_overlapping_tooth_detections_are_suppressed() -> None:
    # B overlaps A by half of A's area (> 0.3 of the smaller mask): B is dropped.
    result = scores(one_hot_prob(), [instance("TOOTH_11", 0.9, 0, 20),
                                     instance("TOOTH_12", 0.5, 10, 40)])
    assert result["MISSING", "11"] == pytest.approx(0.0)
    assert result["MISSING", "12"] == pytest.approx(1.0)
    # C overlaps A by a quarter (< 0.3): kept; 20 of its 25 columns are tooth 12.
    result = scores(one_hot_prob(), [instance("TOOTH_11", 0.9, 0, 20),
                                     instance("TOOTH_12", 0.5, 15, 40)])
    assert result["MISSING", "12"] == pytest.approx(1 - 20 / 25)


def test_detector_classes_are_matched_by_name() -> None:
    result = scores(one_hot_prob(), [instance("caries", 0.7, *REGIONS[1]),
                                     instance("CALCULUS", 0.9, *REGIONS[2]),
                                     instance("ENDO", 0.6, *REGIONS[2]),
                                     instance("PERIAPICAL_RADIOLUCENT", 0.5, *REGIONS[3])])
    assert result["CARIES", "11"] == pytest.approx(0.7)
    assert result["CARIES", "12"] == 0.0  # CALCULUS is not a finding here
    assert result["ROOT_CANAL_FILLING", "12"] == pytest.approx(0.6)
    assert result["PERIAPICAL_RADIOLUCENCY", "13"] == pytest.approx(0.5)


def test_a_coarser_probability_grid_is_resampled_to_the_image() -> None:
    coarse = one_hot_prob()[:, ::2, ::2]  # the segmenter's working grid at half size
    result = scores(coarse, [instance("IMPLANT", 0.8, 2, 18), instance("CARIES", 0.5, 10, 30)])
    assert result["IMPLANT", "11"] == pytest.approx(0.8)
    assert result["IMPLANT", "12"] == pytest.approx(0.0)
    assert result["CARIES", "11"] == pytest.approx(0.25, abs=0.01)
    assert result["CARIES", "12"] == pytest.approx(0.25, abs=0.01)


def test_csv_has_the_original_columns_and_256_rows_in_order() -> None:
    entries = compute_findings(one_hot_prob(), (H, W), [instance("CARIES", 0.8, *REGIONS[1])])
    rows = list(csv.reader(io.StringIO(findings_csv(entries, "pan-01"))))
    assert rows[0] == ["file_name", "fdi", "finding", "score"]
    body = rows[1:]
    assert len(body) == 256
    assert {r[0] for r in body} == {"pan-01"}
    assert [r[2] for r in body[::32]] == [f.name for f in FindingType]
    assert [r[1] for r in body[:32]] == [f"{q}{t}" for q in range(1, 5) for t in range(1, 9)]
    caries_11 = next(r for r in body if r[1] == "11" and r[2] == "CARIES")
    assert float(caries_11[3]) == pytest.approx(0.8)
