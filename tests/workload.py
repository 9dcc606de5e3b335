"""Example inputs of every model endpoint and checks of their outputs: real calls that
the start-command test, the cluster fault drills and their benchmark share."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FOX = "the quick brown fox jumps over the lazy dog"


@cache
def fox_recording() -> dict[str, Any]:
    audio = (REPO / "tests" / "pronunciation" / "fixtures" / "fox.wav").read_bytes()
    return {"audio": base64.b64encode(audio).decode(), "text": FOX, "language": "en-us"}


@cache
def radiograph() -> dict[str, Any]:
    from PIL import Image

    from deployments.dental.synthetic import synthetic_radiograph

    png = io.BytesIO()
    Image.fromarray(synthetic_radiograph(256, 512)).save(png, format="PNG")
    return {"image_url": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()}


@cache
def pd_signals() -> tuple[dict[str, Any], list[list[tuple[int, int]]]]:
    """Two held-out synthetic signals with pulses, and their true regions."""
    from deployments.pd.evaluate import HELD_OUT_SEED
    from deployments.pd.synthetic import SyntheticParams, generate

    data = generate(6, seed=HELD_OUT_SEED, params=SyntheticParams(
        noise_std=(100.0, 100.0), pulse_snr=(8.0, 16.0), max_pulses=3))
    rows = [i for i, regions in enumerate(data.regions) if regions][:2]
    truth = [[(r.start, r.end) for r in data.regions[i]] for i in rows]
    return {"signals": data.signals[rows].tolist()}, truth


def check_ipa(out: dict[str, Any]) -> None:
    assert [w["word"] for w in out["words"]] == ["Hello", "world"], out
    assert all(w["phones"] for w in out["words"]) and out["ipa"].startswith("/h/"), out


def check_assessment(out: dict[str, Any]) -> None:
    assert [w["word"] for w in out["words"]] == FOX.split(), out
    assert out["score"] > 70, out  # fox.wav read against its own sentence


def check_dental(out: dict[str, Any]) -> None:
    rows = out["csv_data"].strip().splitlines()
    assert len(rows) == 1 + 32 * 8, rows[:3]  # header, then every (tooth, finding)
    assert out["num_findings"] == len(out["findings"]), out["num_findings"]


def check_pd(truth: list[list[tuple[int, int]]]) -> Callable[[dict[str, Any]], None]:
    def check(out: dict[str, Any]) -> None:
        assert out["total_samples_processed"] == len(truth), out
        assert [r["sample_index"] for r in out["results"]] == list(range(len(truth))), out
        for result, pulses in zip(out["results"], truth, strict=True):
            found = [(r["start"], r["end"]) for r in result["regions"]]
            for start, end in pulses:  # every true pulse is overlapped by a found region
                assert any(s < end and start < e for s, e in found), (pulses, found)
    return check




def example(endpoint: str) -> tuple[dict[str, Any], Callable[[dict[str, Any]], None]]:
    """A job input of a model endpoint and the check its output has to pass."""
    if endpoint == "ipa-generation":
        return {"text": "Hello world", "language": "en-us"}, check_ipa
    if endpoint == "pronunciation-assessment":
        return fox_recording(), check_assessment
    if endpoint == "dental-pano":
        return radiograph(), check_dental
    if endpoint == "pd-segmentation":
        signals, truth = pd_signals()
        return signals, check_pd(truth)
    raise KeyError(endpoint)
