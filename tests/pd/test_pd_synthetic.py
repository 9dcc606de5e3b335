"""The synthetic generators: seeded, with masks exactly where the pulses are; each family
makes what it claims."""

from __future__ import annotations

import numpy as np
import pytest

from deployments.pd.processing import highpass
from deployments.pd.synthetic import (
    FAMILIES,
    SyntheticParams,
    _background,
    example_job_input,
    generate,
    generate_family,
)


def test_same_seed_same_signals_other_seed_other_signals() -> None:
    a, b, c = generate(4, seed=1), generate(4, seed=1), generate(4, seed=2)
    np.testing.assert_array_equal(a.signals, b.signals)
    assert a.regions == b.regions
    assert not np.array_equal(a.signals, c.signals)


def test_masks_cover_exactly_the_pulses() -> None:
    # Pulses of amplitude 1 over noise of 1e-6, nothing else.
    quiet = SyntheticParams(noise_std=(1e-6, 1e-6), pulse_snr=(1e6, 1e6),
                            carrier_amplitude=(0.0, 0.0), interference_probability=0.0,
                            max_spikes=0)
    data = generate(20, seed=3, params=quiet)
    assert sum(len(r) for r in data.regions) > 20
    for signal, mask, regions in zip(data.signals, data.masks, data.regions, strict=True):
        assert np.abs(signal[~mask]).max() < 1e-4  # only noise outside the mask
        for region in regions:
            assert mask[region.start:region.end].all()
            pulse = np.abs(signal[region.start:region.end])
            # A pulse starts at once and still rings at its end (25% envelope).
            assert pulse[:8].max() > 0.1 and pulse[-8:].max() > 0.05
        assert mask.sum() == sum(r.duration for r in regions)


def test_pulses_are_apart_and_in_range() -> None:
    params = SyntheticParams()
    for regions in generate(50, seed=4, params=params).regions:
        assert len(regions) <= params.max_pulses
        for r in regions:
            assert params.pulse_duration[0] <= r.duration <= params.pulse_duration[1]
        for first, second in zip(regions, regions[1:], strict=False):
            assert second.start - first.end >= params.min_gap


def test_example_job_input_is_json_arrays() -> None:
    job_input = example_job_input(n_signals=3, length=2048)
    assert len(job_input["signals"]) == 3
    assert all(len(row) == 2048 and isinstance(row[0], float) for row in job_input["signals"])


def test_the_shipped_example_is_what_its_script_generates() -> None:
    from deployments.pd.examples import generate_example, shipped_example

    assert shipped_example() == generate_example()


# ------------------------------------------------------------------ generator families


def pulses_of(family: str, n: int = 40, length: int = 4096, seed: int = 5) -> list:
    """(region, waveform) pairs the family's pulse maker draws, before scaling."""
    rng = np.random.default_rng(seed)
    return [p for _ in range(n) for p in FAMILIES[family].pulses(rng, length)]


def test_there_are_at_least_four_families_with_different_generators() -> None:
    assert len(FAMILIES) >= 4
    assert len({f.pulses for f in FAMILIES.values()}) >= 4
    assert {f.background for f in FAMILIES.values()} == {"plain", "harsh"}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_family_is_seeded_and_its_masks_are_its_regions(family: str) -> None:
    a, b = generate_family(family, 6, seed=1), generate_family(family, 6, seed=1)
    c = generate_family(family, 6, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a.signals, b.signals, strict=True))
    assert a.regions == b.regions
    assert a.lengths != c.lengths or a.regions != c.regions
    data = generate_family(family, 30, seed=3)
    lo, hi = FAMILIES[family].length
    assert len(set(data.lengths)) > 20  # signals of many lengths
    assert sum(len(r) for r in data.regions) >= 30
    for signal, mask, regions, n in zip(data.signals, data.masks, data.regions, data.lengths,
                                        strict=True):
        assert signal.shape == mask.shape == (n,) and lo - 1 <= n <= hi + 1
        assert np.isfinite(signal).all()
        expected = np.zeros(n, dtype=bool)
        for first, second in zip(regions, regions[1:], strict=False):
            assert first.end < second.start  # disjoint, ordered, and a gap between them
        for r in regions:
            assert 0 <= r.start < r.end <= n
            expected[r.start:r.end] = True
        np.testing.assert_array_equal(mask, expected)


def test_length_can_be_fixed() -> None:
    data = generate_family("damped", 5, seed=1, length=300)
    assert data.lengths == [300] * 5 and all(s.size == 300 for s in data.signals)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_pulses_stand_out_in_the_band_the_service_keeps(family: str) -> None:
    """Each pulse's high-passed peak is several times the high-passed background (robust
    std outside the pulses), whatever the carrier and noise colour."""
    data = generate_family(family, 20, seed=7)
    for signal, mask, regions in zip(data.signals, data.masks, data.regions, strict=True):
        band = highpass(signal[None])[0]
        background = band[~mask]
        noise = 1.4826 * np.median(np.abs(background - np.median(background)))
        for r in regions:
            assert np.abs(band[r.start:r.end]).max() > 2.5 * noise, (family, r)


def test_damped_pulses_start_at_once_and_ring_to_the_cut() -> None:
    for region, wave in pulses_of("damped"):
        peak = np.abs(wave).max()
        # (sampled tones near Nyquist beat: look at 16 samples, not one cycle)
        assert np.abs(wave[:16]).max() > 0.6 * peak
        assert np.abs(wave[-16:]).max() > 0.03 * peak
        if region.duration >= 128:  # decayed to 10-40 % at the cut
            assert np.abs(wave[-16:]).max() < 0.6 * peak
        assert 24 <= region.duration <= 256


def test_gaussian_pulses_rise_and_fall_smoothly() -> None:
    for region, wave in pulses_of("gaussian"):
        peak = np.abs(wave).max()
        assert np.abs(wave[:3]).max() < 0.4 * peak and np.abs(wave[-3:]).max() < 0.4 * peak
        middle = wave[region.duration // 4: 3 * region.duration // 4]
        assert np.abs(middle).max() > 0.9 * peak


def test_tone_bursts_keep_their_amplitude_to_an_abrupt_end() -> None:
    for region, wave in pulses_of("tone_burst"):
        assert np.abs(wave).max() <= 1.0 + 1e-9
        assert np.abs(wave[-6:]).max() > 0.3  # no decay before the cut
        if region.duration >= 24:  # whole cycles at constant amplitude in between
            assert np.abs(wave[4:-4]).max() > 0.9
            third = region.duration // 3
            assert np.abs(wave[third:2 * third]).max() > 0.85


def test_clusters_are_bursts_close_together() -> None:
    gaps = []
    for regions in generate_family("cluster", 20, seed=9).regions:
        assert len(regions) >= 2
        gaps += [b.start - a.end for a, b in zip(regions, regions[1:], strict=False)]
        assert all(16 <= r.duration <= 96 for r in regions)
    assert min(gaps) >= 16 and sum(16 <= g <= 48 for g in gaps) > 0.6 * len(gaps)


def test_multimode_pulses_rise_over_samples() -> None:
    for _, wave in pulses_of("multimode"):
        peak = np.abs(wave).max()
        assert np.abs(wave[0]) < 0.2 * peak and int(np.argmax(np.abs(wave))) >= 2


def test_the_harsh_background_is_louder_below_the_band_and_has_more_interferers() -> None:
    """Against the plain background: a larger carrier with more harmonics and brown noise
    (far more raw amplitude per unit of in-band noise), and 1-3 in-band interferers
    (narrow spectral peaks in 0.38-0.48 cycles/sample) instead of 0-1."""
    def stats(regime: str) -> tuple[float, float]:
        rng = np.random.default_rng(3)
        peaks, amplitudes = [], []
        for _ in range(30):
            x, band_std = _background(rng, 8192, regime)
            power = np.abs(np.fft.rfft(highpass(x[None])[0])) ** 2
            f = np.fft.rfftfreq(x.size)
            peaks.append(power[(f > 0.38) & (f < 0.48)].max() / np.median(power[f > 0.42]))
            amplitudes.append(np.std(x) / band_std)
        return float(np.median(peaks)), float(np.median(amplitudes))
    (plain_peak, plain_amplitude), (harsh_peak, harsh_amplitude) = stats("plain"), stats("harsh")
    assert harsh_peak > 3 * plain_peak and harsh_amplitude > 2 * plain_amplitude
    assert FAMILIES["harsh"].background == "harsh"
