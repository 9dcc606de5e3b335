"""The OpenAPI document with each served endpoint's own routes: its direct route and its
`/run` and `/runsync` with the endpoint's input and output schemas and a working example,
so `/docs` can try every model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from serve_app.api.schemas import ErrorBody, JobStatusBody, RunRequest
from serve_app.catalog import REF, family_of
from serve_app.jobs.endpoints import Endpoint

ERROR_CODES = ("400", "401", "404", "413", "429")


def _ref(model: type[BaseModel] | None, components: dict[str, Any]) -> dict[str, Any]:
    """A `$ref` to `model`, adding it (and what it refers to) to the components."""
    if model is None:
        return {"type": "object"}
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _operation(summary: str, tag: str, body: dict[str, Any], example: str,
               answer: dict[str, Any]) -> dict[str, Any]:
    """`example` names an entry of the document's `components.examples`."""
    error = {"content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}},
             "description": "the problem, in `error`"}
    return {"post": {
        "tags": [tag], "summary": summary,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": body,
            "examples": {"example": {"$ref": f"#/components/examples/{example}"}}}}},
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": answer}}}, **{code: error for code in ERROR_CODES}},
    }}


def endpoint_paths(endpoints: dict[str, Endpoint], components: dict[str, Any],
                   examples: dict[str, Any]) -> dict[str, Any]:
    """Paths documenting each endpoint with its own schemas and example; fills
    `components` (schemas) and `examples` (each example once, as a direct and a job body)."""
    paths: dict[str, Any] = {}
    status = _ref(JobStatusBody, components)
    _ref(ErrorBody, components)
    for name, endpoint in endpoints.items():
        family = family_of(name)
        input_ref = _ref(family.input_model, components)
        output_ref = _ref(family.output_model, components)
        examples[name] = {"value": family.example()}
        examples[f"{name}-job"] = {"value": {"input": family.example()}}
        if endpoint.spec.route:
            paths[f"/{endpoint.spec.route}"] = _operation(
                f"{name}: run it directly", name, input_ref, name, output_ref)
        run_body = RunRequest.model_json_schema(ref_template=REF)
        components.update(run_body.pop("$defs", {}))
        run_body["properties"]["input"] = input_ref
        job_status = {"allOf": [status], "properties": {"output": output_ref}}
        for verb, answer, what in (("run", {"$ref": REF.format(model="JobRef")}, "queue a job"),
                                   ("runsync", job_status, "run a job and wait for it")):
            paths[f"/v2/{name}/{verb}"] = _operation(f"{name}: {what}", name, run_body,
                                                     f"{name}-job", answer)
    return paths


def install_endpoint_docs(app: FastAPI,
                          served: Callable[[], dict[str, Endpoint]]) -> None:
    """Serve an OpenAPI document that also describes the endpoints `served()` gives once
    the replica runs (built on first request, then kept)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            endpoints = served()
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            components = schema.setdefault("components", {})
            own = endpoint_paths(endpoints, components.setdefault("schemas", {}),
                                 components.setdefault("examples", {}))
            schema["paths"] = own | schema["paths"]  # the endpoints' own routes first
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
