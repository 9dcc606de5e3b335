"""What each endpoint takes and gives: its family, input and output JSON Schemas, a working
example and which input fields take file contents. `GET /endpoints`, the OpenAPI document
and the console are built from it; the tests call the endpoints with the same examples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel

from deployments.dental import examples as dental_examples
from deployments.dental.config import DentalInput
from deployments.dental.outputs import DentalOutput
from deployments.g2p import examples as g2p_examples
from deployments.g2p.types import G2PRequest, G2PResult
from deployments.pd import examples as pd_examples
from deployments.pd.inputs import PDInput
from deployments.pd.outputs import PDOutput
from deployments.pronunciation import examples as pronunciation_examples
from deployments.pronunciation.config import AssessmentRequest
from deployments.pronunciation.types import AssessmentResult

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Family:
    name: str
    input_model: type[BaseModel] | None
    output_model: type[BaseModel] | None
    example: Callable[[], dict[str, Any]]
    #: input fields that take a file's contents: the accepted types and how it is encoded
    files: dict[str, dict[str, str]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """For `GET /endpoints`: self-contained schemas (`$defs` inside each)."""
        return {
            "family": self.name,
            "input_schema": self.input_model.model_json_schema() if self.input_model else None,
            "output_schema": (self.output_model.model_json_schema()
                              if self.output_model else None),
            "example": self.example(),
            "files": self.files,
        }


#: the model endpoints this application can build, by endpoint id
MODEL_FAMILIES: dict[str, Family] = {
    "ipa-generation": Family("g2p", G2PRequest, G2PResult, g2p_examples.example_input),
    "pronunciation-assessment": Family(
        "pronunciation", AssessmentRequest, AssessmentResult,
        pronunciation_examples.example_input,
        {"audio": {"accept": "audio/*", "encoding": "base64"}}),
    "dental-pano": Family("dental", DentalInput, DentalOutput, dental_examples.example_input,
                          {"image_url": {"accept": "image/*", "encoding": "data-uri"}}),
    "pd-segmentation": Family("pd", PDInput, PDOutput, pd_examples.example_input,
                              {"file_base64": {"accept": ".csv,.npy", "encoding": "base64"}}),
}
#: an unchanged RunPod worker: any JSON object in, any JSON out
HANDLER = Family("handler", None, None, dict)


def family_of(endpoint_id: str) -> Family:
    return MODEL_FAMILIES.get(endpoint_id, HANDLER)


@cache
def description(endpoint_id: str) -> dict[str, Any]:
    """The endpoint's `describe()`, built once per process (the schemas do not change);
    callers must not modify it."""
    return family_of(endpoint_id).describe()
