"""The console's routes: its static page and files under /console, and the one thing the
job API does not tell, the application's deployments and their replicas.

The page finds the API relative to its own URL, so it works under any route prefix."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.serve.schema import DeploymentStatus, DeploymentStatusOverview, ReplicaState

from serve_app.api.deps import caller
from serve_app.api.errors import ApiError
from serve_app.api.schemas import ErrorBody

STATIC = Path(__file__).with_name("static")
#: the files served, by name: a URL can name only these, never a path on the disk
FILES = {path.name: path for path in STATIC.iterdir() if path.suffix in {".html", ".js", ".css"}}
MEDIA_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

router = APIRouter(prefix="/console", tags=["console"],
                   responses={c: {"model": ErrorBody} for c in (401, 404, 429)})
Other = Annotated[object, caller("other")]


class DeploymentReplicas(BaseModel):
    status: str
    running: int = Field(description="replicas serving requests")
    replicas: dict[str, int] = Field(description="replicas by state")


class ReplicasBody(BaseModel):
    application: str
    deployments: dict[str, DeploymentReplicas]


@router.get("", include_in_schema=False)
async def console_root() -> RedirectResponse:
    # Relative, so the page's own relative links work behind any route prefix.
    return RedirectResponse("console/")


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(FILES["index.html"], media_type=MEDIA_TYPES[".html"])


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise ApiError(f"no console file {name!r}", status_code=404)
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix])


@router.get("/api/replicas", response_model=ReplicasBody,
            summary="This application's deployments and their replicas by state")
async def replicas(_: Other) -> ReplicasBody:
    # serve.status() asks the controller and blocks: off the event loop.
    status = await asyncio.to_thread(serve.status)
    name = serve.get_replica_context().app_name
    app = status.applications.get(name)
    deployments = app.deployments if app else {}
    return ReplicasBody(application=name, deployments={
        deployment: _replicas(overview) for deployment, overview in deployments.items()})


def _replicas(overview: DeploymentStatusOverview) -> DeploymentReplicas:
    # Serve's status gives its enums as plain strings: the enums read both.
    states = {ReplicaState(state).value: n for state, n in overview.replica_states.items()}
    return DeploymentReplicas(status=DeploymentStatus(overview.status).value,
                              running=states.get(ReplicaState.RUNNING.value, 0),
                              replicas=states)
