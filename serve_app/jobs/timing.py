"""Each store statement's time, reported as a job stage (`store_<method>`)."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from serve_app.jobs.metrics import JobMetrics
from serve_app.jobs.store import JobStore

T = TypeVar("T")


def timed_store(store: JobStore, metrics: JobMetrics) -> JobStore:
    """`store`, with the time of every call of its async methods reported to `metrics`."""
    return cast(JobStore, _TimedStore(store, metrics))


class _TimedStore:
    def __init__(self, store: JobStore, metrics: JobMetrics) -> None:
        self._store = store
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if inspect.iscoroutinefunction(attr):
            attr = _timed(attr, f"store_{name}", self._metrics)
        setattr(self, name, attr)  # wrapped once; later lookups skip __getattr__
        return attr


def _timed(method: Callable[..., Awaitable[T]], stage: str, metrics: JobMetrics
           ) -> Callable[..., Awaitable[T]]:
    @functools.wraps(method)
    async def timed(*args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            metrics.stage(stage, time.perf_counter() - started)

    return timed
