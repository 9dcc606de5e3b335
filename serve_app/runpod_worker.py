"""Serve an unchanged RunPod worker handler as an endpoint.

The handler module is imported with `runpod.serverless.start` captured (so a module
that calls it at import time does not start RunPod's own worker loop) and
`runpod.serverless.progress_update` routed to the job's `/status` output. Whatever the
handler is (function, coroutine, generator, async generator), the deployment reports
events to the dispatcher: {"progress": x}, {"chunk": x}, {"output": x}, {"error": msg}.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import inspect
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from ray import serve

_DONE = object()


class _Captured:
    """Where the patched RunPod SDK functions report to, per job id."""

    queues: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
    start_config: dict[str, Any] | None = None

    @classmethod
    def put(cls, job_id: str, event: Any) -> None:
        target = cls.queues.get(job_id)
        if target is not None:
            loop, queue = target
            loop.call_soon_threadsafe(queue.put_nowait, event)


def _progress_update(job: dict[str, Any], progress: Any) -> None:
    _Captured.put(job["id"], {"progress": progress})


def _start(config: dict[str, Any]) -> None:
    _Captured.start_config = config


def load_handler(spec: str) -> tuple[Callable, dict[str, Any]]:
    """Import `module` (its start() call names the handler) or `module:function`."""
    import runpod.serverless
    import runpod.serverless.modules.rp_progress as rp_progress

    runpod.serverless.start = _start
    runpod.serverless.progress_update = _progress_update
    rp_progress.progress_update = _progress_update
    module_name, _, attr = spec.partition(":")
    _Captured.start_config = None
    module = importlib.import_module(module_name)
    config = dict(_Captured.start_config or {})
    if attr:
        config["handler"] = getattr(module, attr)
    if not callable(config.get("handler")):
        raise ValueError(f"{spec!r} names no handler: give module:function, or a module that "
                         "calls runpod.serverless.start({'handler': fn})")
    return config["handler"], config


def _raise_in_thread(thread: threading.Thread) -> None:
    """Interrupt a synchronous handler: Python code in that thread raises at its next
    bytecode (a long C call finishes first)."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                    ctypes.py_object(asyncio.CancelledError))


def _result_events(result: Any) -> list[dict[str, Any]]:
    """RunPod's reading of a handler's return value."""
    if isinstance(result, dict):
        result = dict(result)
        error = result.pop("error", None)
        result.pop("refresh_worker", None)
        if error:
            return [{"error": error}]
        return [{"output": result or None}]
    return [{"output": result}]


# A small default share (HandlerSpec.num_cpus), so configs/serve.yaml fits two cores; a
# config gives a CPU-heavy handler more with `handlers.<name>.num_cpus`.
@serve.deployment(ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=16)
class RunpodHandler:
    def __init__(self, handler: str) -> None:
        self._handler, self._config = load_handler(handler)

    async def run(self, job: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        _Captured.queues[job["id"]] = (loop, queue)
        thread_box: list[threading.Thread] = []
        task = loop.create_task(self._drive(job, queue, thread_box))
        try:
            while (event := await queue.get()) is not _DONE:
                yield event
            await task
        finally:
            _Captured.queues.pop(job["id"], None)
            if not task.done():
                task.cancel()
                for thread in thread_box:
                    _raise_in_thread(thread)

    async def _drive(self, job: dict[str, Any], queue: asyncio.Queue,
                     threads: list[threading.Thread]) -> None:
        handler = self._handler
        try:
            if inspect.isasyncgenfunction(handler):
                async for chunk in handler(job):
                    queue.put_nowait({"chunk": chunk})
            elif inspect.isgeneratorfunction(handler):
                await self._in_thread(lambda: [_Captured.put(job["id"], {"chunk": c})
                                               for c in handler(job)], threads)
            elif inspect.iscoroutinefunction(handler):
                for event in _result_events(await handler(job)):
                    queue.put_nowait(event)
            else:
                for event in _result_events(await self._in_thread(lambda: handler(job),
                                                                  threads)):
                    queue.put_nowait(event)
        except Exception as exc:
            queue.put_nowait({"error": f"{exc.__class__.__name__}: {exc}"})
        # After every event queued from the thread (call_soon_threadsafe keeps order).
        asyncio.get_running_loop().call_soon(queue.put_nowait, _DONE)

    @staticmethod
    async def _in_thread(fn: Callable[[], Any], threads: list[threading.Thread]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def target() -> None:
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

        thread = threading.Thread(target=target, daemon=True, name=f"handler-{id(future)}")
        threads.append(thread)
        thread.start()
        return await future


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
