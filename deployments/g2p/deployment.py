"""The G2P Serve deployment: one replica holds every configured backend."""

from __future__ import annotations

import asyncio
import functools
import time
from collections import defaultdict
from typing import TYPE_CHECKING

from ray import serve
from ray.serve import Application

from deployments.common.batching import (
    BATCH_KNOBS,
    apply_batch_knobs,
    call_per_item,
    raise_if_error,
)
from deployments.common.device import select_device, visible_gpus
from deployments.common.errors import InputError, TooLarge, parse_input
from deployments.common.metrics import ModelMetrics
from deployments.g2p.backends import EspeakBackend, G2PBackend, GruutBackend, TransformersBackend
from deployments.g2p.config import G2PArgs
from deployments.g2p.types import G2PRequest, G2PResult, strip_stress

if TYPE_CHECKING:
    import torch


def load_backends(args: G2PArgs, device: torch.device | None = None) -> dict[str, G2PBackend]:
    """Instantiate the configured backends (heavy imports happen here)."""
    backends: dict[str, G2PBackend] = {}
    for name in args.backends:
        if name == "gruut":
            backends[name] = GruutBackend()
        elif name == "espeak":
            backends[name] = EspeakBackend()
        elif name == "transformers":
            if not args.transformers_model_uri:
                raise ValueError("the transformers backend needs transformers_model_uri")
            from deployments.common.fetch import resolve_weights_dir

            backends[name] = TransformersBackend(
                str(resolve_weights_dir(args.transformers_model_uri)),
                args.transformers_language_tags,
                args.transformers_max_new_tokens,
                device or select_device(args.device, args.gpu_memory_fraction),
            )
        else:
            raise ValueError(f"unknown G2P backend {name!r}")
    if args.default_backend not in backends:
        raise ValueError(f"default backend {args.default_backend!r} is not in backends")
    return backends


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64)
class G2P:
    """Text to IPA. Concurrent calls are batched and grouped by backend and language."""

    def __init__(self, args: G2PArgs) -> None:
        self._args = args
        self._device = select_device(args.device, args.gpu_memory_fraction)
        self._backends = load_backends(args, self._device)
        self._metrics = ModelMetrics("G2P")

    def reconfigure(self, user_config: dict) -> None:
        """user_config keys: max_batch_size, batch_wait_timeout_s (no restart)."""
        if unknown := set(user_config) - BATCH_KNOBS:
            raise ValueError(f"unknown G2P user_config keys {sorted(unknown)}; "
                             f"known: {sorted(BATCH_KNOBS)}")
        apply_batch_knobs(self._batched, user_config)

    def check_health(self) -> None:
        """Serve's periodic probe: every backend still turns a word into phones (on a GPU
        backend, a tiny forward on its device). Raising marks the replica unhealthy, and
        Serve replaces it."""
        for name, backend in self._backends.items():
            language = "en-us" if "en-us" in backend.languages() else min(backend.languages())
            if not backend.phonemize(["a"], language=language)[0]:
                raise RuntimeError(f"the {name} G2P backend returned nothing for a probe word")

    async def describe(self) -> dict:
        """Backends, their languages and where this replica runs (for operators)."""
        return {
            "backends": {name: sorted(b.languages()) for name, b in self._backends.items()},
            "device": str(self._device),
            "cuda_visible_devices": visible_gpus(),
            "replica": serve.get_replica_context().replica_id.unique_id,
        }

    async def phonemize(self, text: str, language: str = "en-us", backend: str | None = None,
                        stress: bool = False) -> G2PResult:
        """Words with IPA phones for `text`; raises InputError for bad requests."""
        name = backend or self._args.default_backend
        if name not in self._backends:
            raise InputError(f"unknown backend {name!r} (available: {', '.join(self._backends)})")
        if not text.strip():
            raise InputError("text is empty")
        if len(text) > self._args.max_text_chars:
            raise TooLarge(f"text has {len(text)} characters; the limit is "
                           f"{self._args.max_text_chars}")
        words = raise_if_error(await self._batched(name, language, text, time.perf_counter()))
        if not stress:
            words = strip_stress(words)
        return G2PResult.from_words(language, name, words)

    async def run(self, job: dict) -> dict:
        """The `ipa-generation` endpoint: a RunPod-shaped job in, G2PResult JSON out."""
        with self._metrics.request():
            request = parse_input(G2PRequest, job.get("input"))
            result = await self.phonemize(request.text, request.language, request.backend,
                                          request.stress)
            return result.model_dump()

    # Knobs from the user_config (`reconfigure`); build_g2p_app sets them from G2PArgs.
    @serve.batch
    async def _batched(self, names: list[str], languages: list[str], texts: list[str],
                       queued_at: list[float]) -> list:
        self._metrics.batch_started(queued_at)
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, key in enumerate(zip(names, languages, strict=False)):
            groups[key].append(i)
        results: list = [None] * len(texts)
        for (name, language), indices in groups.items():
            # Each text gets its own words or its own error: one text a backend cannot
            # read must not fail the others batched with it.
            phonemize = functools.partial(self._backends[name].phonemize, language=language)
            with self._metrics.model_call(len(indices)):
                words = await asyncio.to_thread(call_per_item, phonemize,
                                                [texts[i] for i in indices])
            for i, w in zip(indices, words, strict=True):
                results[i] = w
        return results


def build_g2p_app(args: G2PArgs) -> Application:
    """The G2P graph: one deployment, its batch knobs from `args` as its user_config."""
    return G2P.options(user_config={"max_batch_size": args.max_batch_size,
                                    "batch_wait_timeout_s": args.batch_wait_timeout_s}
                       ).bind(args)
