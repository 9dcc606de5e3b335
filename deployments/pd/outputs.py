"""The `pd-segmentation` endpoint's output, as documented in its JSON Schema."""

from pydantic import BaseModel, Field


class Region(BaseModel):
    start: int = Field(description="first sample of the partial-discharge region")
    end: int = Field(description="one past its last sample")
    duration: int


class SignalResult(BaseModel):
    sample_index: int = Field(description="the signal's row in the input")
    regions: list[Region]
    signal_stats: dict[str, float | int]


class PDOutput(BaseModel):
    total_samples_processed: int = Field(description="signals (rows) in the input")
    valid_samples_found: int = Field(description="signals that passed the peak test")
    results: list[SignalResult]
