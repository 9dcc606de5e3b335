"""Example inputs of every model endpoint and checks of their outputs: real calls that
the start-command test, the cluster fault drills and their benchmark share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema

from deployments.pd.examples import example_regions
from deployments.pronunciation.examples import SENTENCE
from serve_app.catalog import MODEL_FAMILIES, family_of


def check_ipa(out: dict[str, Any]) -> None:
    assert [w["word"] for w in out["words"]] == ["Hello", "world"], out
    assert all(w["phones"] for w in out["words"]) and out["ipa"].startswith("/h/"), out


def check_assessment(out: dict[str, Any]) -> None:
    assert [w["word"] for w in out["words"]] == SENTENCE.split(), out
    assert out["score"] > 70, out  # fox.wav read against its own sentence


def check_dental(out: dict[str, Any]) -> None:
    rows = out["csv_data"].strip().splitlines()
    assert len(rows) == 1 + 32 * 8, rows[:3]  # header, then every (tooth, finding)
    assert out["num_findings"] == len(out["findings"]), out["num_findings"]


def check_pd(truth: list[list[tuple[int, int]]]) -> Callable[[dict[str, Any]], None]:
    def check(out: dict[str, Any]) -> None:
        assert out["total_samples_processed"] == len(truth), out
        assert [r["sample_index"] for r in out["results"]] == list(range(len(truth))), out
        for result, pulses in zip(out["results"], truth, strict=True):
            found = [(r["start"], r["end"]) for r in result["regions"]]
            for start, end in pulses:  # every true pulse is overlapped by a found region
                assert any(s < end and start < e for s, e in found), (pulses, found)
    return check




def example(endpoint: str) -> tuple[dict[str, Any], Callable[[dict[str, Any]], None]]:
    """A model endpoint's documented example input (the one `GET /endpoints`, the OpenAPI
    document and the console offer) and the check its output has to pass."""
    checks: dict[str, Callable[[dict[str, Any]], None]] = {
        "ipa-generation": check_ipa, "pronunciation-assessment": check_assessment,
        "dental-pano": check_dental, "pd-segmentation": check_pd(example_regions())}
    family = MODEL_FAMILIES[endpoint]

    def check(out: dict[str, Any]) -> None:
        family.output_model.model_validate(out)  # the output is what its schema documents
        checks[endpoint](out)

    return family.example(), check


def assert_described(client: Any, endpoint: str, route: str | None) -> None:
    """`GET /endpoints` and the OpenAPI document describe `endpoint` with its family's
    schemas and example, and the documented example, sent to the documented route, gives
    an output that its documented schema accepts."""
    family = family_of(endpoint)
    entry = client.get("/endpoints").json()[endpoint]
    assert entry["route"] == route and entry["jobs"] == f"/v2/{endpoint}/run", entry
    assert entry["family"] == family.name and entry["example"] == family.example()
    if family.input_model is None:
        assert entry["input_schema"] is None and entry["example"] == {}
        return
    assert entry["input_schema"] == family.input_model.model_json_schema()
    assert entry["output_schema"] == family.output_model.model_json_schema()
    doc = client.get("/openapi.json").json()
    examples = doc["components"]["examples"]
    job = doc["paths"][f"/v2/{endpoint}/runsync"]["post"]["requestBody"]["content"]
    assert examples[f"{endpoint}-job"]["value"] == {"input": family.example()}
    assert job["application/json"]["schema"]["properties"]["input"] == {
        "$ref": f"#/components/schemas/{family.input_model.__name__}"}
    if route is None:
        return
    direct = doc["paths"][route]["post"]
    body = direct["requestBody"]["content"]["application/json"]
    ref = body["examples"]["example"]["$ref"].rsplit("/", 1)[1]
    answer = client.post(route, json=examples[ref]["value"])
    assert answer.status_code == 200, answer.text
    schema = direct["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.validate(answer.json(), schema | {"components": doc["components"]})
