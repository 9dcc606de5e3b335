"""Synthetic partial-discharge signals with exact masks, for training, evaluation and tests.

No public PD weights or labelled data exist, so the shipped checkpoint learns from these.
Two layers:

- `generate(n, seed, params)`: the first generator (kept bit for bit: tests, the notebook
  and `example.json` use it). A power-frequency carrier with 3rd and 5th harmonics, white
  noise, sometimes a continuous narrow-band interferer and isolated one-sample spikes (both
  are NOT PD), and 0..N discharge pulses: damped oscillations with a sharp onset, at
  0.41..0.45 cycles/sample.
- `FAMILIES` / `generate_family(name, n, seed)`: named generator families that differ in how
  pulses (and backgrounds) are made, not only in a seed, so that evaluation can train
  without a family and test on it. See `FAMILIES` for the list.

A pulse occupies exactly `[start, start + duration)` (it is cut off there), and that is its
mask. The service's preprocessing keeps only the band above 0.8 of Nyquist (0.4
cycles/sample; at 0.36 a tone is down 20 dB, at 0.3 42 dB), so in the families a pulse's
amplitude is set by its SNR *in that band*: the peak of the high-passed pulse over the std
of the high-passed noise. A pulse the service's own filter erases would be a label no
model could learn. Everything is drawn from one seeded generator per call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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


# ------------------------------------------------------------------ generator families
#
# A family = how its pulses are made + the background they sit on + its signal lengths.
# `generate_family` composes them: each pulse is drawn with unit peak, then scaled so that
# after the service's high-pass its peak is `snr` times the high-passed noise std.

Pulse = tuple[Region, np.ndarray]  # where, and the waveform over exactly that extent
PulseMaker = Callable[[np.random.Generator, int], list[Pulse]]


@dataclass(frozen=True)
class Family:
    """A named generator: pulses, background regime, lengths, in-band pulse SNR."""

    name: str
    description: str
    pulses: PulseMaker
    background: str = "plain"  # "plain" or "harsh", see `_background`
    length: tuple[int, int] = (512, 8192)  # log-uniform per signal
    snr: tuple[float, float] = (4.0, 40.0)  # in-band peak / in-band noise std, log-uniform
    max_pulses_per_1024: float = 1.0  # pulse count ~ uniform 0..ceil(this * length / 1024)


@dataclass(frozen=True)
class FamilySet:
    """Signals of one family; lengths differ, so each row is its own array."""

    family: str
    signals: list[np.ndarray]
    masks: list[np.ndarray]
    regions: list[list[Region]]
    lengths: list[int] = field(default_factory=list)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _place(rng: np.random.Generator, length: int, durations: list[int], min_gap: int
           ) -> list[Region]:
    """Non-overlapping extents of the given durations, at least `min_gap` apart."""
    placed: list[Region] = []
    for duration in durations:
        if duration > length:
            continue
        for _ in range(20):  # rejection sampling; drops a pulse quietly on crowded signals
            start = int(rng.integers(0, length - duration + 1))
            candidate = Region(start, start + duration)
            if all(candidate.end + min_gap <= r.start or r.end + min_gap <= candidate.start
                   for r in placed):
                placed.append(candidate)
                break
    return sorted(placed, key=lambda r: r.start)


def _count(rng: np.random.Generator, length: int, per_1024: float) -> int:
    return int(rng.integers(0, int(np.ceil(per_1024 * length / 1024)) + 2))


def _tone(rng: np.random.Generator, duration: int, frequency: float) -> np.ndarray:
    t = np.arange(duration, dtype=np.float64)
    return np.sin(2.0 * np.pi * frequency * t + rng.uniform(0.0, 2.0 * np.pi))


def _damped_wave(rng: np.random.Generator, duration: int,
                 frequency: tuple[float, float] = (0.38, 0.47)) -> np.ndarray:
    """Sharp onset (1-4 sample rise), exponential decay to 10..40 % at the cut."""
    t = np.arange(duration, dtype=np.float64)
    end_level = rng.uniform(0.1, 0.4)
    envelope = np.exp(-t * np.log(1.0 / end_level) / duration)
    envelope *= np.minimum(1.0, (t + 1.0) / rng.uniform(1.0, 4.0))
    return envelope * _tone(rng, duration, rng.uniform(*frequency))


def _damped_pulses(rng: np.random.Generator, length: int) -> list[Pulse]:
    durations = [int(rng.integers(24, 257)) for _ in range(_count(rng, length, 1.0))]
    return [(r, _damped_wave(rng, r.duration)) for r in _place(rng, length, durations, 48)]


def _gaussian_pulses(rng: np.random.Generator, length: int) -> list[Pulse]:
    """Smooth Gaussian envelopes (maybe skewed), cut where they fall to 10..30 % of peak."""
    durations = [int(rng.integers(32, 257)) for _ in range(_count(rng, length, 1.0))]
    pulses = []
    for r in _place(rng, length, durations, 48):
        t = np.arange(r.duration, dtype=np.float64)
        centre = rng.uniform(0.3, 0.7) * (r.duration - 1)
        width = np.sqrt(2.0 * np.log(1.0 / rng.uniform(0.1, 0.3)))  # edge at that level
        sigma = np.where(t < centre, centre, r.duration - 1 - centre) / width
        envelope = np.exp(-0.5 * ((t - centre) / np.maximum(sigma, 1.0)) ** 2)
        pulses.append((r, envelope * _tone(rng, r.duration, rng.uniform(0.37, 0.48))))
    return pulses


def _tone_bursts(rng: np.random.Generator, length: int) -> list[Pulse]:
    """A function generator's burst mode: N whole cycles at constant amplitude, 0-3 sample
    ramps, so the burst ends as abruptly as it starts."""
    pulses = []
    wanted = _count(rng, length, 1.0)
    frequencies = [rng.uniform(0.36, 0.48) for _ in range(wanted)]
    durations = [int(min(256, max(16, round(rng.integers(8, 110) / f)))) for f in frequencies]
    for r, frequency in zip(_place(rng, length, durations, 48), frequencies, strict=False):
        ramp = rng.uniform(0.5, 3.0)
        t = np.arange(r.duration, dtype=np.float64)
        envelope = np.minimum(1.0, np.minimum(t + 1.0, r.duration - t) / ramp)
        pulses.append((r, envelope * _tone(rng, r.duration, frequency)))
    return pulses


def _clusters(rng: np.random.Generator, length: int) -> list[Pulse]:
    """Groups of 2-5 short damped bursts 16..48 samples apart (each its own region), and
    sometimes isolated ones."""
    pulses: list[Pulse] = []
    taken: list[Region] = []
    for _ in range(int(rng.integers(1, max(2, length // 2048 + 2)))):
        durations = [int(rng.integers(16, 97)) for _ in range(int(rng.integers(2, 6)))]
        gaps = [int(rng.integers(16, 49)) for _ in durations[1:]]
        span = sum(durations) + sum(gaps)
        if span > length:
            continue
        group = _place(rng, length, [span], 48)
        if not group or any(not (group[0].end + 48 <= r.start or r.end + 48 <= group[0].start)
                            for r in taken):
            continue
        taken.append(group[0])
        start = group[0].start
        for i, duration in enumerate(durations):
            pulses.append((Region(start, start + duration), _damped_wave(rng, duration)))
            start += duration + (gaps[i] if i < len(gaps) else 0)
    return sorted(pulses, key=lambda p: p[0].start)


def _multimode_pulses(rng: np.random.Generator, length: int) -> list[Pulse]:
    """Double-exponential envelope (2..20 sample rise) carrying two beating modes or a
    chirp, cut where it has decayed to 10..40 % of its peak."""
    durations = [int(rng.integers(32, 321)) for _ in range(_count(rng, length, 1.0))]
    pulses = []
    for r in _place(rng, length, durations, 48):
        t = np.arange(r.duration, dtype=np.float64)
        rise = rng.uniform(2.0, 20.0)
        end_level = rng.uniform(0.1, 0.4)
        decay = max(rise * 1.5, r.duration / np.log(1.0 / end_level))
        envelope = np.exp(-t / decay) - np.exp(-t / rise)
        if rng.random() < 0.5:
            f1, f2 = rng.uniform(0.38, 0.48, size=2)
            wave = _tone(rng, r.duration, f1) + rng.uniform(0.3, 1.0) * _tone(rng, r.duration, f2)
        else:
            f0, f1 = rng.uniform(0.37, 0.48, size=2)
            phase = 2.0 * np.pi * (f0 * t + 0.5 * (f1 - f0) * t * t / r.duration)
            wave = np.sin(phase + rng.uniform(0.0, 2.0 * np.pi))
        pulses.append((r, envelope * wave))
    return pulses


def _highpassed(x: np.ndarray) -> np.ndarray:
    from deployments.pd.processing import highpass

    return highpass(np.atleast_2d(x))[0]


def _coloured_noise(rng: np.random.Generator, length: int, exponent: float) -> np.ndarray:
    """Unit-std noise with power ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, length))
    f = np.fft.rfftfreq(length)
    f[0] = f[1]
    noise = np.fft.irfft(spectrum * f ** (-exponent / 2.0), length)
    return noise / noise.std()


def _background(rng: np.random.Generator, length: int, regime: str
                ) -> tuple[np.ndarray, float]:
    """A carrier with harmonics, coloured noise, interferers and spikes (none of it PD),
    and the std of its noise after the service's high-pass."""
    harsh = regime == "harsh"
    t = np.arange(length, dtype=np.float64)
    cycles = rng.uniform(1e-4, 2e-3)  # power-frequency periods per sample
    amplitude = _log_uniform(rng, 1e4, 2e5) if harsh else _log_uniform(rng, 1e3, 5e4)
    x = amplitude * np.sin(2.0 * np.pi * cycles * t + rng.uniform(0.0, 2.0 * np.pi))
    for harmonic in range(2, 14 if harsh else 8):
        x += rng.uniform(0.0, 0.3 if harsh else 0.1) * amplitude * np.sin(
            2.0 * np.pi * harmonic * cycles * t + rng.uniform(0.0, 2.0 * np.pi))
    x += rng.uniform(-0.2, 0.2) * amplitude  # DC offset
    scale = _log_uniform(rng, 10.0, 300.0)
    if harsh:  # brown-to-pink noise well above a white floor
        brown = _coloured_noise(rng, length, rng.uniform(1.0, 2.0))
        noise = scale * (rng.uniform(3.0, 30.0) * brown + rng.normal(0.0, 1.0, length))
    else:
        noise = scale * _coloured_noise(rng, length, rng.uniform(0.0, 1.0))
    x += noise
    band_std = float(_highpassed(noise).std())
    # Continuous in-band tones (not PD): near Nyquist they beat into burst-like runs.
    for _ in range(int(rng.integers(1, 4)) if harsh else int(rng.random() < 0.5)):
        x += rng.uniform(0.2, 1.5 if harsh else 1.0) * band_std * np.sqrt(2.0) * np.sin(
            2.0 * np.pi * rng.uniform(0.38, 0.48) * t + rng.uniform(0.0, 2.0 * np.pi))
    for _ in range(int(rng.integers(0, 9 if harsh else 4))):  # one-sample spikes
        x[rng.integers(0, length)] += rng.choice([-1.0, 1.0]) * rng.uniform(
            3.0, 15.0) * band_std / IMPULSE_PEAK
    return x, band_std


IMPULSE_PEAK = 0.2067  # peak of the service's high-pass response to a unit impulse


def _pulse_with_band_snr(waveform: np.ndarray, snr: float, band_std: float) -> np.ndarray:
    """`waveform` scaled so its high-passed peak is `snr` * `band_std`."""
    pad = 64
    filtered = _highpassed(np.pad(waveform, pad))
    peak = float(np.abs(filtered).max())
    return waveform * (snr * band_std / peak) if peak > 0 else waveform


def _mixed_pulses(rng: np.random.Generator, length: int) -> list[Pulse]:
    maker = (_damped_pulses, _multimode_pulses)[int(rng.integers(0, 2))]
    return maker(rng, length)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("damped", "damped oscillations, sharp onset, exponential decay to 10-40 % at the "
           "cut; 24-256 samples, 0.38-0.47 cycles/sample", _damped_pulses),
    Family("gaussian", "Gaussian (possibly skewed) envelopes, cut at 10-30 % of peak; "
           "32-256 samples, 0.37-0.48 cycles/sample", _gaussian_pulses),
    Family("tone_burst", "function-generator tone bursts: whole cycles at constant "
           "amplitude, 0.5-3 sample ramps; 16-256 samples, 0.36-0.48 cycles/sample",
           _tone_bursts),
    Family("cluster", "groups of 2-5 short damped bursts (16-96 samples) 16-48 samples "
           "apart, each its own region", _clusters),
    Family("multimode", "double-exponential envelope (2-20 sample rise) over two beating "
           "modes or a chirp; 32-320 samples", _multimode_pulses),
    Family("harsh", "damped or multimode pulses on a harsh background: carrier up to 2e5 "
           "with harmonics 2-13 up to 30 %, brown/pink noise over a white floor, 1-3 "
           "in-band interferers (0-1 on the plain background), up to 8 spikes (0-3)",
           _mixed_pulses, background="harsh"),
)}


def generate_family(family: str | Family, n_signals: int, seed: int,
                    length: int | tuple[int, int] | None = None) -> FamilySet:
    """`n_signals` signals of one family with their exact PD masks, reproducible from
    `seed`; `length` fixes the length (or its log-uniform range) instead of the family's."""
    spec = FAMILIES[family] if isinstance(family, str) else family
    lengths = spec.length if length is None else length
    if isinstance(lengths, int):
        lengths = (lengths, lengths)
    rng = np.random.default_rng([seed, _family_key(spec.name)])
    out = FamilySet(spec.name, [], [], [], [])
    for _ in range(n_signals):
        n = int(round(_log_uniform(rng, *lengths)))
        x, band_std = _background(rng, n, spec.background)
        mask = np.zeros(n, dtype=bool)
        regions = []
        for region, waveform in spec.pulses(rng, n):
            snr = _log_uniform(rng, *spec.snr)
            x[region.start:region.end] += _pulse_with_band_snr(waveform, snr, band_std)
            mask[region.start:region.end] = True
            regions.append(region)
        out.signals.append(x)
        out.masks.append(mask)
        out.regions.append(regions)
        out.lengths.append(n)
    return out


def _family_key(name: str) -> int:
    """A stable integer per family name (Python's str hash is salted per process)."""
    return int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little")
