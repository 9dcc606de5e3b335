"""Synthetic partial-discharge signals with exact masks, for training, evaluation and tests.

No public PD weights or labelled data exist, so the shipped checkpoint learns from these.
A signal is a power-frequency carrier with harmonics, white noise, sometimes a
continuous narrow-band interferer and isolated one-sample spikes (both are NOT PD),
and 0..N discharge pulses: damped oscillations with a sharp onset. A pulse occupies
exactly `[start, start + duration)` (it is cut off there), and that is its mask.

Pulse oscillations sit at 0.41..0.45 cycles/sample because the original preprocessing
keeps only the band above 0.8 of Nyquist (0.4 cycles/sample): slower ringing would be
filtered away before the model sees it, and sampled tones nearer Nyquist beat into long
gaps that would split one pulse into several. Everything is drawn from one seeded
generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deployments.pd.processing import Region


@dataclass(frozen=True)
class SyntheticParams:
    """Ranges the generator draws from (uniformly unless noted)."""

    length: int = 4096
    max_pulses: int = 4  # per signal; the count is uniform over 0..max_pulses
    pulse_duration: tuple[int, int] = (32, 192)  # samples
    pulse_frequency: tuple[float, float] = (0.41, 0.45)  # cycles per sample
    pulse_snr: tuple[float, float] = (4.0, 16.0)  # peak amplitude / noise std
    min_gap: int = 48  # samples between pulses, so each is its own region
    noise_std: tuple[float, float] = (20.0, 200.0)  # ADC units, log-uniform
    carrier_amplitude: tuple[float, float] = (2_000.0, 20_000.0)  # ADC units
    carrier_cycles: tuple[float, float] = (0.5, 3.0)  # power-frequency periods per signal
    interference_probability: float = 0.5
    interference_snr: tuple[float, float] = (0.2, 1.0)
    max_spikes: int = 3
    spike_snr: tuple[float, float] = (3.0, 12.0)


@dataclass(frozen=True)
class SyntheticSet:
    """Raw signals (n, length), their PD masks (n, length) and the pulse regions per row."""

    signals: np.ndarray
    masks: np.ndarray
    regions: list[list[Region]]


def _place_pulses(rng: np.random.Generator, p: SyntheticParams) -> list[Region]:
    """Non-overlapping pulse extents, at least `min_gap` apart, in random places."""
    wanted = int(rng.integers(0, p.max_pulses + 1))
    placed: list[Region] = []
    for _ in range(wanted * 20):  # rejection sampling; gives up quietly on crowded signals
        if len(placed) == wanted:
            break
        duration = int(rng.integers(p.pulse_duration[0], p.pulse_duration[1] + 1))
        start = int(rng.integers(0, p.length - duration + 1))
        candidate = Region(start, start + duration)
        if all(candidate.end + p.min_gap <= r.start or r.end + p.min_gap <= candidate.start
               for r in placed):
            placed.append(candidate)
    return sorted(placed, key=lambda r: r.start)


def _pulse(rng: np.random.Generator, duration: int, amplitude: float,
           p: SyntheticParams) -> np.ndarray:
    """A damped oscillation decaying to 25% at its end, with a 1-4 sample rise.

    It is cut off there, still above the noise for most amplitudes, so where it ends
    can be seen in the signal.
    """
    t = np.arange(duration, dtype=np.float64)
    frequency = rng.uniform(*p.pulse_frequency)
    tau = duration / np.log(4.0)
    rise = np.minimum(1.0, (t + 1.0) / rng.uniform(1.0, 4.0))
    phase = rng.uniform(0.0, 2.0 * np.pi)
    return amplitude * rise * np.exp(-t / tau) * np.sin(2.0 * np.pi * frequency * t + phase)


def generate(n_signals: int, seed: int, params: SyntheticParams = SyntheticParams()
             ) -> SyntheticSet:
    """`n_signals` raw signals with their exact PD masks, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    length = params.length
    t = np.arange(length, dtype=np.float64)
    signals = np.empty((n_signals, length), dtype=np.float64)
    masks = np.zeros((n_signals, length), dtype=bool)
    all_regions: list[list[Region]] = []
    for row in range(n_signals):
        noise = float(np.exp(rng.uniform(*np.log(params.noise_std))))
        cycles = rng.uniform(*params.carrier_cycles) / length
        x = rng.uniform(*params.carrier_amplitude) * np.sin(
            2.0 * np.pi * cycles * t + rng.uniform(0.0, 2.0 * np.pi))
        # Third and fifth harmonics, as on a real distorted grid waveform.
        for harmonic in (3, 5):
            x += rng.uniform(0.0, 0.1) * np.abs(x).max() * np.sin(
                2.0 * np.pi * harmonic * cycles * t + rng.uniform(0.0, 2.0 * np.pi))
        x += rng.normal(0.0, noise, length)
        if rng.random() < params.interference_probability:
            x += rng.uniform(*params.interference_snr) * noise * np.sin(
                2.0 * np.pi * rng.uniform(*params.pulse_frequency) * t
                + rng.uniform(0.0, 2.0 * np.pi))
        for _ in range(int(rng.integers(0, params.max_spikes + 1))):
            x[rng.integers(0, length)] += rng.choice([-1.0, 1.0]) * rng.uniform(
                *params.spike_snr) * noise
        regions = _place_pulses(rng, params)
        for region in regions:
            amplitude = rng.uniform(*params.pulse_snr) * noise
            x[region.start:region.end] += _pulse(rng, region.duration, amplitude, params)
            masks[row, region.start:region.end] = True
        signals[row] = x
        all_regions.append(regions)
    return SyntheticSet(signals, masks, all_regions)


def example_job_input(n_signals: int = 2, length: int = 4096, seed: int = 0) -> dict[str, object]:
    """A `pd-segmentation` job input (JSON arrays) of synthetic signals: for docs, tests, bench."""
    data = generate(n_signals, seed, SyntheticParams(length=length))
    return {"signals": np.round(data.signals, 3).tolist()}
