"""The whole deployment graph, assembled in one place from `configs/serve.yaml` args."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments.dental.deployment import build_dental_app
from deployments.g2p.deployment import G2P
from deployments.pd.deployment import build_pd_app
from deployments.pronunciation.deployment import build_pronunciation_app
from serve_app.ingress import Ingress
from serve_app.runpod_worker import RunpodHandler
from serve_app.settings import AppArgs, load_args


def build_app(raw_args: dict[str, Any] | AppArgs | None = None) -> Application:
    args = with_outbound(load_args(raw_args))
    wanted = set(args.endpoints)
    models: dict[str, Application] = {}
    g2p = G2P.bind(args.g2p)  # one G2P deployment serves both endpoints that need it
    if "ipa-generation" in wanted:
        models["ipa-generation"] = g2p
    if "pronunciation-assessment" in wanted:
        # G2P of the reference and phone recognition of the audio run concurrently -> scorer
        models["pronunciation-assessment"] = build_pronunciation_app(g2p, args.pronunciation)
    if "dental-pano" in wanted:
        # decode once, segmentation and detection concurrently, then findings
        models["dental-pano"] = build_dental_app(args.dental)
    if "pd-segmentation" in wanted:
        # signals -> windows batched across requests in the UNet1D segmenter -> regions
        models["pd-segmentation"] = build_pd_app(args.pd)
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
