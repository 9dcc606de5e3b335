"""Settings of the G2P deployment, overridable from configs/serve.yaml."""

from __future__ import annotations

from pydantic import BaseModel, Field


class G2PArgs(BaseModel):
    default_backend: str = "gruut"
    #: backends loaded at start; `transformers` also needs `transformers_model_uri`
    backends: list[str] = Field(default_factory=lambda: ["gruut", "espeak"])
    #: local directory or s3:// prefix of a CharsiuG2P-compatible ByT5/T5 checkpoint
    transformers_model_uri: str | None = None
    #: request language -> the checkpoint's language tag (CharsiuG2P uses `<eng-us>`)
    transformers_language_tags: dict[str, str] = Field(
        default_factory=lambda: {"en-us": "eng-us", "en-gb": "eng-uk", "en": "eng-us",
                                 "de": "ger", "fr-fr": "fra", "fr": "fra", "es": "spa"}
    )
    transformers_max_new_tokens: int = Field(64, ge=4, le=512)
    max_text_chars: int = Field(2000, ge=1, le=100_000)
    device: str = "auto"
    gpu_memory_fraction: float | None = Field(None, gt=0, le=1)
    max_batch_size: int = Field(16, ge=1, le=256)
    #: 0: a batch is what queued while the previous one ran, and a request that finds the
    #: replica idle starts at once (waiting for company cost every c=1 call 5 ms)
    batch_wait_timeout_s: float = Field(0.0, ge=0, le=1)
