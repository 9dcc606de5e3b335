"""The original's signal processing on signals whose answers are known."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.signal import butter, freqz

from deployments.pd import processing
from deployments.pd.processing import PreprocessParams, Region


def sine(frequency: float, n: int = 4096, amplitude: float = 1.0) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * frequency * np.arange(n))


def test_highpass_removes_the_power_frequency_and_keeps_pulse_band_in_phase() -> None:
    low = processing.highpass(sine(0.002, amplitude=10_000.0))
    assert np.abs(low[200:-200]).max() < 1e-3  # 10^7 down

    x = sine(0.45)
    y = processing.highpass(x)
    b, a = butter(3, 0.8, btype="high")
    gain = np.abs(freqz(b, a, worN=[0.45], fs=1.0)[1][0]) ** 2  # filtfilt squares |H|
    middle = slice(500, -500)
    assert np.std(y[middle]) / np.std(x[middle]) == pytest.approx(gain, rel=1e-3)
    # Zero phase: the output is the input scaled, with no shift.
    np.testing.assert_allclose(y[middle], gain * x[middle], atol=1e-3)


def test_highpass_accepts_signals_shorter_than_filtfilts_padding() -> None:
    assert processing.highpass(np.ones((2, 5))).shape == (2, 5)


def test_normalize_by_chunk_shares_one_scale_per_chunk() -> None:
    x = np.array([[1.0, -4.0], [2.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(processing.normalize_by_chunk(x, 1),
                               [[0.25, -1.0], [1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(processing.normalize_by_chunk(x, 2),
                               [[0.25, -1.0], [0.5, 0.0], [0.0, 0.0]])


def test_preprocess_clips_before_normalizing_and_keeps_rows_by_peak() -> None:
    # Alternating signs are at Nyquist, where the high-pass gain is 1.
    nyquist = np.where(np.arange(2048) % 2 == 0, 1.0, -1.0)
    rows = np.stack([2_000_000 * nyquist, 400_000 * nyquist, 50_000 * nyquist,
                     0.0 * nyquist])
    out, keep = preprocess_all(rows)
    middle = slice(100, -100)
    # Row 0 is clipped to 800000, so row 1 is at half of it, not a fifth.
    np.testing.assert_allclose(np.abs(out[0, middle]), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.abs(out[1, middle]), 0.5, atol=1e-4)
    np.testing.assert_allclose(np.abs(out[2, middle]), 0.0625, atol=1e-4)
    assert keep.tolist() == [True, True, False, False]  # peak 0.0625 <= 0.1; zero row
    assert out.dtype == np.float32


def preprocess_all(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return processing.preprocess(rows, PreprocessParams(chunk_rows=len(rows)))


def test_preprocess_refuses_non_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        processing.preprocess(np.zeros(10))


@pytest.mark.parametrize(("length", "n_windows"), [(1024, 1), (1025, 2), (1536, 2),
                                                   (1537, 3), (100, 1), (4096, 7)])
def test_split_windows_counts_and_padding(length: int, n_windows: int) -> None:
    x = np.arange(1, length + 1, dtype=np.float32)
    windows = processing.split_windows(x, 1024, 0.5)
    assert windows.shape == (n_windows, 1024)
    np.testing.assert_array_equal(windows[0, :min(length, 1024)], x[:1024])
    if n_windows > 1:
        np.testing.assert_array_equal(windows[1, :512], x[512:1024])
    last_start = (n_windows - 1) * 512
    np.testing.assert_array_equal(windows[-1, :length - last_start], x[last_start:])
    assert not windows[-1, length - last_start:].any()  # zero padding past the end


@pytest.mark.parametrize("length", [100, 1024, 1500, 5000])
def test_merge_inverts_split(length: int) -> None:
    x = np.random.default_rng(0).normal(size=length).astype(np.float32)
    merged = processing.merge_windows(processing.split_windows(x), length)
    np.testing.assert_allclose(merged, x, rtol=1e-6)


def test_merge_averages_overlaps() -> None:
    logits = np.stack([np.zeros(8), np.full(8, 2.0), np.full(8, 4.0)])
    np.testing.assert_allclose(processing.merge_windows(logits, 16, 0.5),
                               [0, 0, 0, 0, 1, 1, 1, 1, 3, 3, 3, 3, 4, 4, 4, 4])


def test_window_hop_refuses_bad_overlap() -> None:
    assert processing.window_hop(1024, 0.5) == 512
    assert processing.window_hop(1024, 0.0) == 1024
    with pytest.raises(ValueError):
        processing.window_hop(1024, 1.0)


def test_sigmoid_is_the_logistic_without_overflow_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = processing.sigmoid(np.array([-1000.0, -2.0, 0.0, 2.0, 1000.0]))
    np.testing.assert_allclose(p, [0.0, 1 / (1 + np.e ** 2), 0.5, 1 / (1 + np.e ** -2), 1.0],
                               rtol=1e-6)


def test_regions_are_half_open_runs_above_the_threshold() -> None:
    p = np.array([0.9, 0.2, 0.6, 0.7, 0.5, 0.51])
    regions = processing.regions_from_probabilities(p, 0.5)
    assert regions == [Region(0, 1), Region(2, 4), Region(5, 6)]
    assert [r.to_dict() for r in regions][1] == {"start": 2, "end": 4, "duration": 2}
    assert processing.find_regions(np.zeros(5, dtype=bool)) == []


def test_signal_stats() -> None:
    stats = processing.signal_stats(np.array([3.0, -4.0, 0.0, 1.0]), [Region(0, 2)])
    assert stats == pytest.approx({
        "length": 4, "mean": 0.0, "std": np.sqrt(6.5), "min": -4.0, "max": 3.0,
        "peak": 4.0, "rms": np.sqrt(6.5), "num_regions": 1, "pd_samples": 2,
        "pd_fraction": 0.5})
