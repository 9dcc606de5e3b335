"""The `dental-pano` endpoint's output, as documented in its JSON Schema."""

from pydantic import BaseModel, ConfigDict, Field


class Finding(BaseModel):
    fdi: str = Field(description="FDI tooth number, e.g. \"34\"")
    finding: str
    score: float


class DentalOutput(BaseModel):
    model_config = ConfigDict(extra="allow")

    findings: list[Finding] = Field(description="findings scoring at least min_score, most "
                                    "certain first")
    num_findings: int
    model_info: dict = Field(description="per model: weights, device, whether trained")
    warnings: list[str]
    csv_data: str | None = Field(None, description="one row per (tooth, finding); inline "
                                 "when the job has no s3Config")
    debug_images: dict[str, str] | None = Field(
        None, description="with debug: overlay JPEGs in base64, by name")
