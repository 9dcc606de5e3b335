"""Audio decoding: formats, downmix, resampling, limits, warnings and clear errors."""

from __future__ import annotations

import base64
import io
import struct

import numpy as np
import pytest
import soundfile as sf

from deployments.common.errors import ErrorKind, InputError, TooLarge, Unsupported
from deployments.pronunciation.audio import SAMPLE_RATE, decode_audio


def tone(seconds: float = 1.5, rate: int = 44_100, channels: int = 1,
         amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def encode(x: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"),
                                         ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_formats_decode_to_16k_mono(fmt: str, subtype: str) -> None:
    audio = decode_audio(encode(tone(channels=2), 44_100, fmt, subtype), max_duration_s=20)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.source_sample_rate == 44_100 and audio.source_channels == 2
    # MP3 and Vorbis pad a little at the edges
    assert audio.duration_s == pytest.approx(1.5, abs=0.08)
    assert 0.15 < float(np.sqrt(np.mean(audio.samples**2))) < 0.25  # the 0.3 sine survived
    assert audio.warnings == []


def test_downmix_averages_channels() -> None:
    left = tone(rate=SAMPLE_RATE)
    audio = decode_audio(encode(np.stack([left, np.zeros_like(left)], axis=1), SAMPLE_RATE,
                                "WAV"), max_duration_s=20)
    np.testing.assert_allclose(audio.samples, left / 2, atol=1e-4)


def test_quality_warnings() -> None:
    short = decode_audio(encode(tone(0.4), 44_100, "WAV"), 20, min_duration_s=1.0)
    assert any(w.startswith("too_short") for w in short.warnings)
    silent = decode_audio(encode(np.zeros(SAMPLE_RATE * 2, np.float32), SAMPLE_RATE, "WAV"), 20)
    assert any(w.startswith("silence") for w in silent.warnings)
    loud = decode_audio(encode(np.clip(tone(amplitude=3.0), -1, 1), 44_100, "WAV"), 20)
    assert any(w.startswith("clipping") for w in loud.warnings)


def test_not_audio_is_a_clear_error() -> None:
    with pytest.raises(Unsupported, match="could not be decoded"):
        decode_audio(b"this is a text file, not a recording" * 10, 20)


def test_empty_audio() -> None:
    with pytest.raises(InputError, match="empty"):
        decode_audio(b"", 20)
    with pytest.raises(InputError, match="no samples"):
        decode_audio(encode(np.zeros(0, np.float32), SAMPLE_RATE, "WAV"), 20)


def test_too_long_is_refused_as_too_large() -> None:
    with pytest.raises(TooLarge, match="limit is 20 s"):
        decode_audio(encode(tone(21, rate=8000), 8000, "WAV"), max_duration_s=20)


def test_too_many_channels_or_too_high_a_rate_is_too_large() -> None:
    with pytest.raises(TooLarge, match="3 channels"):
        decode_audio(encode(tone(channels=3), 44_100, "WAV"), 20)
    with pytest.raises(TooLarge, match="limit of 22050 Hz"):
        decode_audio(encode(tone(), 44_100, "WAV"), 20, max_sample_rate=22_050)


def test_too_low_sample_rate() -> None:
    with pytest.raises(InputError, match="4000 Hz") as info:
        decode_audio(encode(tone(rate=4000), 4000, "WAV"), 20)
    assert info.value.kind is ErrorKind.BAD_INPUT


def test_unsupported_wav_sample_format() -> None:
    # A RIFF/WAVE header declaring format tag 0x1234: a codec libsndfile does not know.
    data = np.zeros(1600, "<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 0x1234, 1, 16_000, 32_000, 2, 16)
    wav = (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
           + b"fmt " + struct.pack("<I", len(fmt)) + fmt
           + b"data" + struct.pack("<I", len(data)) + data)
    with pytest.raises(Unsupported, match="could not be decoded"):
        decode_audio(wav, 20)


def test_nan_samples() -> None:
    x = tone(rate=SAMPLE_RATE)
    x[100] = np.nan
    with pytest.raises(InputError, match="NaN"):
        decode_audio(encode(x, SAMPLE_RATE, "WAV", "FLOAT"), 20)


def test_base64_round_trip_through_fetch() -> None:
    from deployments.common.fetch import fetch_input
    from deployments.common.outbound import OutboundPolicy

    wav = encode(tone(), 44_100, "WAV")
    data = fetch_input(base64.b64encode(wav).decode(), 10**6, OutboundPolicy())
    assert decode_audio(data, 20).duration_s == pytest.approx(1.5, abs=0.01)
