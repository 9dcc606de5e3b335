"""Caller audio to 16 kHz mono float32, with limits and signal-quality warnings.

Audio longer than `max_duration_s` (at most POWSM's 20 s window) is refused rather
than windowed: cutting at fixed boundaries splits words and phones, and a
pronunciation exercise is a sentence, not a lecture.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from deployments.common.errors import InputError

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


def decode_audio(data: bytes, max_duration_s: float, min_duration_s: float = 1.0) -> DecodedAudio:
    """Decode WAV/FLAC/OGG/MP3 bytes to 16 kHz mono float32, or raise InputError saying why."""
    import soundfile as sf
    import soxr

    if not data:
        raise InputError("the audio is empty (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels, fmt = f.samplerate, f.channels, f.format
            # Check the declared length before decoding so a huge file is not decoded
            # only to be refused (MP3 lengths are estimates; re-checked below).
            if f.frames > 0 and f.frames / rate > max_duration_s * 1.05:
                raise _too_long(f.frames / rate, max_duration_s)
            samples = f.read(dtype="float32", always_2d=True)
    except InputError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"the audio could not be decoded as WAV, FLAC, OGG or MP3: {exc}") from exc
    if rate < MIN_SOURCE_RATE:
        raise InputError(f"the audio's sample rate is {rate} Hz; at least {MIN_SOURCE_RATE} Hz "
                         "is needed")
    if samples.size == 0:
        raise InputError("the audio holds no samples")
    if not np.isfinite(samples).all():
        raise InputError("the audio holds NaN or infinite samples")
    duration = samples.shape[0] / rate
    if duration > max_duration_s:
        raise _too_long(duration, max_duration_s)
    warnings = quality_warnings(samples, rate, min_duration_s)
    mono = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return DecodedAudio(np.ascontiguousarray(mono, dtype=np.float32), fmt, rate, channels,
                        warnings)


def _too_long(duration: float, limit: float) -> InputError:
    return InputError(f"the audio lasts {duration:.1f} s; the limit is {limit:g} s "
                      "(split longer recordings into sentences)", status_code=413)


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
