"""Caller audio to 16 kHz mono float32, with limits and signal-quality warnings.

Audio longer than `max_duration_s` (at most POWSM's 20 s window) is refused rather
than windowed: cutting at fixed boundaries splits words and phones, and a
pronunciation exercise is a sentence, not a lecture.

The header's sample rate, channels and length are checked before decoding, and at
most one frame past the limit is ever decoded, so a compressed file that declares no
length (or a false one) still decodes to at most duration x rate x channels samples.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from deployments.common.errors import InputError, TooLarge, Unsupported
from deployments.pronunciation.config import MAX_CHANNELS, MAX_SAMPLE_RATE

SAMPLE_RATE = 16_000
#: below this the phone recognizers have too little bandwidth to be meaningful
MIN_SOURCE_RATE = 8_000
#: |x| at or above this counts as a clipped sample (float scale, 1.0 = full scale)
CLIP_LEVEL = 0.999
CLIP_FRACTION = 0.001
#: RMS below this (dBFS) over the whole recording: nobody spoke, or the level is far too low
SILENCE_DBFS = -50.0
#: 30 ms frames louder than this (dBFS) count as speech for the "too little speech" check
SPEECH_FRAME_DBFS = -40.0
#: MP3 headers give an estimated length: refuse one by its declared length only past this
MP3_LENGTH_MARGIN = 1.05
#: libsndfile's frame count when a stream does not declare its length
UNKNOWN_FRAMES = 2**63 - 1


@dataclass
class DecodedAudio:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE
    source_format: str
    source_sample_rate: int
    source_channels: int
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def decode_audio(data: bytes, max_duration_s: float, min_duration_s: float = 1.0, *,
                 max_channels: int = MAX_CHANNELS,
                 max_sample_rate: int = MAX_SAMPLE_RATE) -> DecodedAudio:
    """Decode WAV/FLAC/OGG/MP3 bytes to 16 kHz mono float32, or raise InputError saying why."""
    import soundfile as sf
    import soxr

    if not data:
        raise InputError("the audio is empty (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels, fmt = f.samplerate, f.channels, f.format
            check_header(rate, channels, max_channels, max_sample_rate)
            limit = int(max_duration_s * rate)
            margin = MP3_LENGTH_MARGIN if fmt == "MP3" else 1.0
            if f.frames != UNKNOWN_FRAMES and f.frames > limit * margin:
                raise _too_long(max_duration_s, f.frames / rate)
            # One frame past the limit tells a too-long stream without decoding the rest.
            samples = f.read(limit + 1, dtype="float32", always_2d=True)
    except InputError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise Unsupported(f"the audio could not be decoded as WAV, FLAC, OGG or MP3: {exc}") \
            from exc
    if samples.size == 0:
        raise InputError("the audio holds no samples")
    if samples.shape[0] > limit:
        raise _too_long(max_duration_s)
    if not np.isfinite(samples).all():
        raise InputError("the audio holds NaN or infinite samples")
    warnings = quality_warnings(samples, rate, min_duration_s)
    mono = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return DecodedAudio(np.ascontiguousarray(mono, dtype=np.float32), fmt, rate, channels,
                        warnings)


def check_header(rate: int, channels: int, max_channels: int, max_sample_rate: int) -> None:
    """Refuse, from the header, a sample rate or channel count outside the limits."""
    if rate < MIN_SOURCE_RATE:
        raise InputError(f"the audio's sample rate is {rate} Hz; at least {MIN_SOURCE_RATE} Hz "
                         "is needed")
    if rate > max_sample_rate:
        raise TooLarge(f"the audio's sample rate is {rate} Hz, more than the limit of "
                       f"{max_sample_rate} Hz")
    if channels > max_channels:
        raise TooLarge(f"the audio has {channels} channels, more than the limit of "
                       f"{max_channels}")


def _too_long(limit: float, duration: float | None = None) -> TooLarge:
    """The refusal of audio over `limit` seconds; `duration` when the header declares it."""
    lasts = f"{duration:.1f} s" if duration is not None else f"over {limit:g} s"
    return TooLarge(f"the audio lasts {lasts}; the limit is {limit:g} s "
                    "(split longer recordings into sentences)")


def _dbfs(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20 * np.log10(rms) if rms > 0 else -np.inf


def quality_warnings(samples: np.ndarray, rate: int, min_duration_s: float) -> list[str]:
    """Problems worth telling the caller about that do not stop the assessment.

    `samples` is (frames, channels): clipping is judged per channel, since a downmix
    would hide one clipped channel.
    """
    warnings = []
    mono = samples.mean(axis=1)
    duration = len(mono) / rate
    if duration < min_duration_s:
        warnings.append(f"too_short: the audio lasts {duration:.2f} s (under {min_duration_s:g} s)"
                        "; scores are unreliable")
    level = _dbfs(mono)
    if level < SILENCE_DBFS:
        warnings.append(f"silence: the recording's level is {level:.0f} dBFS; it seems to hold "
                        "no speech")
    else:
        frame = int(0.03 * rate)
        frames = mono[: len(mono) // frame * frame].reshape(-1, frame)
        loud = sum(_dbfs(f) > SPEECH_FRAME_DBFS for f in frames) * 0.03
        if loud < 0.3:
            warnings.append(f"little_speech: only {loud:.2f} s of the audio is louder than "
                            f"{SPEECH_FRAME_DBFS:g} dBFS")
    clipped = float(np.mean(np.abs(samples) >= CLIP_LEVEL))
    if clipped > CLIP_FRACTION:
        warnings.append(f"clipping: {clipped:.1%} of samples are at full scale; the recording "
                        "level is too high")
    return warnings
