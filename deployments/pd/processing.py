"""Signal processing of the original PD service: filtering, row selection, windows, regions.

Pure numpy/scipy, no torch: the same functions run in the Serve pipeline, the training
script, the evaluation and the tests, and the Serve deployments import them (and the
segmentation types here) without importing torch. Signals are rows of a 2-D array (one
measurement per row), as in the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The original's constants (design.md, "Partial discharge (PD) UNet1D").
HIGHPASS_ORDER = 3
HIGHPASS_CUTOFF = 0.8  # fraction of Nyquist
CLIP_LIMIT = 800_000.0
CHUNK_ROWS = 1000  # rows normalized together by their common max |x|
MIN_PEAK = 0.1  # rows whose normalized peak is at or below this are skipped
WINDOW_SIZE = 1024
OVERLAP = 0.5
THRESHOLD = 0.5


@dataclass(frozen=True)
class PreprocessParams:
    """Knobs of `preprocess`; the defaults are the original service's."""

    order: int = HIGHPASS_ORDER
    cutoff: float = HIGHPASS_CUTOFF
    clip_limit: float = CLIP_LIMIT
    chunk_rows: int = CHUNK_ROWS
    min_peak: float = MIN_PEAK


@dataclass(frozen=True)
class Region:
    """A run of samples classified as partial discharge: `[start, end)`, in samples."""

    start: int
    end: int

    @property
    def duration(self) -> int:
        return self.end - self.start

    def to_dict(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end, "duration": self.duration}


def highpass(signals: np.ndarray, order: int = HIGHPASS_ORDER,
             cutoff: float = HIGHPASS_CUTOFF) -> np.ndarray:
    """Zero-phase Butterworth high-pass along the last axis (filtfilt: no delay of pulses)."""
    # Imported here: scipy.signal costs ~1.5 s of CPU to import, and the settings (read by
    # the ingress and every process that builds the app) import this module's constants.
    from scipy.signal import butter, filtfilt

    b, a = butter(order, cutoff, btype="high")
    # filtfilt's default padding needs more than 3*max(len(a), len(b)) samples; shorter
    # signals are still filtered, with the padding shrunk to fit.
    padlen = min(3 * max(len(a), len(b)), signals.shape[-1] - 1)
    return filtfilt(b, a, signals, axis=-1, padlen=padlen)


def normalize_by_chunk(signals: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Divide each chunk of `chunk_rows` rows by the chunk's max |x|.

    Rows of a chunk share one scale, so a quiet row next to a loud one stays quiet and
    is later dropped by the peak test. An all-zero chunk stays zero.
    """
    out = np.empty_like(signals, dtype=np.float32)
    for first in range(0, signals.shape[0], chunk_rows):
        chunk = signals[first:first + chunk_rows]
        scale = float(np.max(np.abs(chunk))) if chunk.size else 0.0
        out[first:first + chunk_rows] = chunk / scale if scale > 0 else 0.0
    return out


def preprocess(signals: np.ndarray, params: PreprocessParams = PreprocessParams()
               ) -> tuple[np.ndarray, np.ndarray]:
    """High-pass, clip, normalize by chunk; return the rows and which of them to keep.

    `signals` is (rows, samples). Returns float32 (rows, samples) and a bool (rows,)
    mask of rows whose peak after normalization exceeds `params.min_peak`.
    """
    if signals.ndim != 2:
        raise ValueError(f"expected a 2-D (rows, samples) array, got shape {signals.shape}")
    filtered = highpass(np.asarray(signals, dtype=np.float64), params.order, params.cutoff)
    clipped = np.clip(filtered, -params.clip_limit, params.clip_limit)
    normalized = normalize_by_chunk(clipped, params.chunk_rows)
    keep = np.max(np.abs(normalized), axis=1) > params.min_peak
    return normalized, keep


def window_hop(window_size: int, overlap: float) -> int:
    """Samples between window starts: 512 for the original 1024 windows at 50% overlap."""
    if window_size < 1 or not 0.0 <= overlap < 1.0:
        raise ValueError(f"bad window settings: size {window_size}, overlap {overlap}")
    return max(1, round(window_size * (1.0 - overlap)))


def split_windows(signal: np.ndarray, window_size: int = WINDOW_SIZE,
                  overlap: float = OVERLAP) -> np.ndarray:
    """Cut a 1-D signal into (n_windows, window_size) windows, zero-padding the tail.

    The signal is padded so the last window ends at or after its last sample; a signal
    shorter than one window gives one padded window.
    """
    if signal.ndim != 1 or signal.size == 0:
        raise ValueError(f"expected a non-empty 1-D signal, got shape {signal.shape}")
    hop = window_hop(window_size, overlap)
    n_windows = 1 + max(0, -(-(signal.size - window_size) // hop))  # ceil division
    padded = np.zeros((n_windows - 1) * hop + window_size, dtype=np.float32)
    padded[:signal.size] = signal
    starts = np.arange(n_windows) * hop
    return padded[starts[:, None] + np.arange(window_size)[None, :]]


def merge_windows(window_logits: np.ndarray, length: int, overlap: float = OVERLAP
                  ) -> np.ndarray:
    """Average overlapping window outputs back into one (length,) series.

    Inverse of `split_windows`: each sample gets the mean of every window covering it;
    the padded tail is dropped.
    """
    n_windows, window_size = window_logits.shape
    hop = window_hop(window_size, overlap)
    total = (n_windows - 1) * hop + window_size
    sums = np.zeros(total, dtype=np.float64)
    counts = np.zeros(total, dtype=np.float64)
    for i, logits in enumerate(window_logits):
        sums[i * hop:i * hop + window_size] += logits
        counts[i * hop:i * hop + window_size] += 1.0
    return (sums / counts)[:length].astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, written to avoid overflow warnings for large |x|."""
    return (0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))).astype(np.float32)


def find_regions(mask: np.ndarray) -> list[Region]:
    """Maximal runs of True in a 1-D boolean mask, as `[start, end)` regions."""
    padded = np.concatenate(([False], np.asarray(mask, dtype=bool), [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [Region(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def regions_from_probabilities(probabilities: np.ndarray, threshold: float = THRESHOLD
                               ) -> list[Region]:
    """Regions where the PD probability exceeds `threshold`."""
    return find_regions(probabilities > threshold)


def signal_stats(signal: np.ndarray, regions: list[Region]) -> dict[str, float | int]:
    """Summary of one processed signal and its PD regions, for the JSON report."""
    x = np.asarray(signal, dtype=np.float64)
    pd_samples = sum(r.duration for r in regions)
    return {
        "length": int(x.size),
        "mean": float(x.mean()),
        "std": float(x.std()),
        "min": float(x.min()),
        "max": float(x.max()),
        "peak": float(np.abs(x).max()),
        "rms": float(np.sqrt(np.mean(x * x))),
        "num_regions": len(regions),
        "pd_samples": int(pd_samples),
        "pd_fraction": float(pd_samples / x.size),
    }


@dataclass(frozen=True)
class SegmentSettings:
    """Run-time knobs of segmentation (the deployment's `user_config` sets them)."""

    threshold: float = THRESHOLD
    window_size: int = WINDOW_SIZE
    overlap: float = OVERLAP

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.window_size < 16:
            raise ValueError(f"window_size must be at least 16, got {self.window_size}")
        window_hop(self.window_size, self.overlap)  # validates overlap


@dataclass(frozen=True)
class Segmentation:
    """Per-sample PD probabilities of one signal and the regions above `threshold`."""

    probabilities: np.ndarray
    threshold: float
    regions: list[Region] = field(default_factory=list)


def segmentation_from_logits(window_logits: np.ndarray, length: int,
                             settings: SegmentSettings) -> Segmentation:
    """Average the windows' logits, apply the sigmoid, threshold into regions."""
    logits = merge_windows(window_logits, length, settings.overlap)
    probabilities = sigmoid(logits)
    return Segmentation(probabilities, settings.threshold,
                        regions_from_probabilities(probabilities, settings.threshold))
