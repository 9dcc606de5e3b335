"""The G2P work of `ipa-generation` (gruut, stress stripped, the same JSON), served the
two ways this project's users compare it with:

    python bench/peer_handler.py --rp_serve_api --rp_api_port 8100   # runpod's local server
    uvicorn bench.peer_handler:app --port 8101                         # plain FastAPI

Both run the work in the serving process, with no queue and no durability.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi import FastAPI  # noqa: E402

from deployments.g2p.backends import GruutBackend  # noqa: E402
from deployments.g2p.types import G2PRequest, G2PResult, strip_stress  # noqa: E402

BACKEND = GruutBackend()


def ipa(request: G2PRequest) -> dict[str, Any]:
    words = strip_stress(BACKEND.phonemize([request.text], request.language)[0])
    return G2PResult.from_words(request.language, BACKEND.name, words).model_dump()


def handler(job: dict[str, Any]) -> dict[str, Any]:
    """A RunPod worker handler, as a user's handler.py has it."""
    return ipa(G2PRequest.model_validate(job["input"]))


app = FastAPI()


@app.post("/ipa")
async def ipa_route(request: G2PRequest) -> dict[str, Any]:
    return ipa(request)


if __name__ == "__main__":
    import runpod

    runpod.serverless.start({"handler": handler})
