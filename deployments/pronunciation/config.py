"""Settings of the pronunciation-assessment deployments and the endpoint's input."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from deployments.common.outbound import OutboundPolicy

#: POWSM is trained on 20 s windows; longer audio is refused (see audio.py for why)
POWSM_WINDOW_S = 20.0
#: mono or stereo recordings; more channels are refused from the header
MAX_CHANNELS = 2
#: the highest source sample rate accepted (studio rates; speech needs 16 kHz)
MAX_SAMPLE_RATE = 96_000


class RecognizerArgs(BaseModel):
    #: pocketsphinx (offline English, default), powsm (attention decoder) or powsm_ctc
    backend: Literal["pocketsphinx", "powsm", "powsm_ctc"] = "pocketsphinx"
    #: backend keyword arguments. powsm/powsm_ctc need `model_uri`: a local directory or
    #: s3:// prefix holding the released config.yaml, model .pth and bpe.model
    settings: dict[str, Any] = Field(default_factory=dict)
    device: str = "auto"
    gpu_memory_fraction: float | None = Field(None, gt=0, le=1)


class AssessmentArgs(BaseModel):
    recognizer: RecognizerArgs = Field(default_factory=RecognizerArgs)
    #: G2P backend asked for the canonical phones (None: the G2P deployment's default)
    g2p_backend: str | None = None
    max_audio_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_duration_s: float = Field(POWSM_WINDOW_S, gt=0, le=POWSM_WINDOW_S)
    #: with max_duration_s, bound the decoded audio (frames x channels x 4 bytes, about
    #: 15 MiB by default); all three are checked from the header before decoding
    max_channels: int = Field(MAX_CHANNELS, ge=1)
    max_sample_rate: int = Field(MAX_SAMPLE_RATE, ge=1)
    #: shorter audio is assessed but gets a `too_short` warning
    warn_min_duration_s: float = Field(1.0, ge=0)
    fetch_timeout_s: float = Field(30.0, gt=0)
    #: where client-given URLs may lead; serve_app.app.build_app sets it from the app's
    #: top-level `outbound`
    outbound: OutboundPolicy = Field(default_factory=OutboundPolicy)
    #: limit on each model call (handle calls have no timeout of their own)
    call_timeout_s: float = Field(120.0, gt=0)
    #: weight of the GOP confidence against "was it recognized" in phone credit
    gop_weight: float = Field(1.0, ge=0, le=1)
    #: words scoring below this are "mispronounced"; None: the calibrated threshold
    #: (calibration.json, fitted by evalset/calibrate.py), or 60 where phones have no GOP
    word_threshold: float | None = Field(None, ge=0, le=100)
    max_text_chars: int = Field(1000, ge=1)


class AssessmentRequest(BaseModel):
    """The `pronunciation-assessment` endpoint's input."""

    audio: str | None = Field(None, description="Base64 audio (WAV, FLAC, OGG or MP3), or a "
                              "data: URI.")
    audio_url: str | None = Field(None, description="https:// or s3:// URL of the audio.")
    text: str | None = Field(None, description="The sentence the speaker was asked to say.")
    target_ipa: str | None = Field(
        None, description="Expected phones instead of text: words separated by spaces, each "
        "as plain IPA or '/h//ɛ//l//oʊ/'.")
    language: str = Field("en-us", description="Language of the speech and text.")

    @model_validator(mode="after")
    def _one_of_each(self) -> AssessmentRequest:
        if (self.audio is None) == (self.audio_url is None):
            raise ValueError("give exactly one of audio (base64) or audio_url")
        if self.audio is not None and not self.audio.strip():
            raise ValueError("audio is empty")
        if self.audio_url is not None and not self.audio_url.lower().startswith(
                ("https://", "http://", "s3://")):
            raise ValueError("audio_url must be an http(s):// or s3:// URL")
        if not (self.text or "").strip() and not (self.target_ipa or "").strip():
            raise ValueError("give text (the reference sentence) or target_ipa")
        return self
