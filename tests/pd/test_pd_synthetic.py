"""The synthetic generator: seeded, with masks exactly where the pulses are."""

from __future__ import annotations

import numpy as np

from deployments.pd.synthetic import SyntheticParams, example_job_input, generate


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
