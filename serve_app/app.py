"""The whole deployment graph, assembled in one place from `configs/serve.yaml` args."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.serve import Application

from deployments.dental.deployment import build_dental_app
from deployments.g2p.deployment import build_g2p_app
from deployments.pd.deployment import build_pd_app
from deployments.pronunciation.deployment import build_pronunciation_app
from serve_app.catalog import family_of
from serve_app.ingress import Ingress
from serve_app.runpod_worker import RunpodHandler
from serve_app.settings import AppArgs, load_args


def build_app(raw_args: dict[str, Any] | AppArgs | None = None) -> Application:
    args = with_outbound(load_args(raw_args))
    g2p = build_g2p_app(args.g2p)  # one G2P deployment serves both endpoints that need it
    by_family: dict[str, Callable[[], Application]] = {
        "g2p": lambda: g2p,
        # G2P of the reference and phone recognition of the audio run concurrently -> scorer
        "pronunciation": lambda: build_pronunciation_app(args.pronunciation, g2p),
        # decode once, segmentation and detection concurrently, then findings
        "dental": lambda: build_dental_app(args.dental),
        # signals -> windows batched across requests in the UNet1D segmenter -> regions
        "pd": lambda: build_pd_app(args.pd),
    }
    models = {endpoint: by_family[family_of(endpoint).name]() for endpoint in args.endpoints}
    handlers = {
        name: RunpodHandler.options(name=f"handler-{name}",
                                    ray_actor_options={"num_cpus": spec.num_cpus})
        .bind(spec.handler)
        for name, spec in args.handlers.items()
    }
    return Ingress.bind({**models, **handlers}, list(handlers), args)


def with_outbound(args: AppArgs) -> AppArgs:
    """`args` with the app's outbound policy in each family that fetches client inputs:
    one policy, configured once."""
    policy = {"outbound": args.outbound}
    pd_limits = args.pd.limits.model_copy(update=policy)
    return args.model_copy(update={
        "dental": args.dental.model_copy(update=policy),
        "pronunciation": args.pronunciation.model_copy(update=policy),
        "pd": args.pd.model_copy(update={"limits": pd_limits}),
    })
