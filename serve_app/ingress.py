"""The HTTP ingress: RunPod's job API, direct routes and OpenAPI docs on one FastAPI app.

Each replica owns a dispatcher that runs queued jobs from the shared store.
"""

from __future__ import annotations

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.common.outbound import guarded_async_client
from serve_app.api import batches, direct, jobs, workers
from serve_app.api.deps import Runtime, current_runtime, install_runtime
from serve_app.api.docs import install_endpoint_docs
from serve_app.api.errors import install_error_handlers
from serve_app.api.keys import KeyRing, keys_from_env
from serve_app.api.ratelimit import RateLimiter
from serve_app.callers import HandleCaller
from serve_app.console import routes as console
from serve_app.jobs.batches import BatchService
from serve_app.jobs.dispatcher import Dispatcher
from serve_app.jobs.endpoints import Endpoint
from serve_app.jobs.model import now_ms
from serve_app.jobs.service import JobService
from serve_app.jobs.stores import open_store
from serve_app.jobs.timing import timed_store
from serve_app.jobs.webhooks import WebhookDeliverer
from serve_app.jobs.workers import WorkerService
from serve_app.metrics import RayJobMetrics, RouteTimer
from serve_app.settings import AppArgs

app = FastAPI(
    title="Ray Serve models behind RunPod's serverless API",
    description="Point RunPod clients here with RUNPOD_ENDPOINT_BASE_URL=http://HOST:PORT/v2. "
                "Direct routes (GET /endpoints) skip the job queue.",
    version="0.1.0",
)
app.include_router(jobs.router)
app.include_router(jobs.all_endpoints)
app.include_router(batches.router)
app.include_router(workers.router)
app.include_router(console.router)  # before direct's catch-all routes
app.include_router(direct.router)
install_error_handlers(app)
app.add_middleware(RouteTimer)
install_endpoint_docs(app, lambda: current_runtime().endpoints)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=2000)
@serve.ingress(app)
class Ingress:
    def __init__(self, handles: dict[str, DeploymentHandle], event_endpoints: list[str],
                 args: AppArgs) -> None:
        specs = args.all_endpoints()
        metrics = RayJobMetrics()
        endpoints = {
            name: Endpoint(name, specs[name], HandleCaller(handle, metrics),
                           name in event_endpoints)
            for name, handle in handles.items()
        }
        settings = args.jobs
        self._store = timed_store(open_store(settings.store_url), metrics)
        # Webhook URLs are the client's: delivered only where the outbound policy allows.
        webhook_client = guarded_async_client(args.outbound, settings.webhook_timeout_s)
        self._webhooks = WebhookDeliverer(self._store, settings, now_ms, client=webhook_client,
                                          metrics=metrics)
        self._dispatcher = Dispatcher(self._store, endpoints, settings, self._webhooks,
                                      metrics=metrics)
        external = {name: w.endpoint for name, w in args.workers.items()}
        service = JobService(self._store, self._dispatcher,
                             {**{n: e.spec for n, e in endpoints.items()}, **external},
                             settings, metrics=metrics)
        # Endpoints served by external workers: their jobs wait for the workers' takes.
        workers = WorkerService(self._store, external, settings,
                                self._dispatcher.wake_webhooks, metrics=metrics)
        service.on_queued(workers.notify_queued)
        self._dispatcher.add_sweeper(workers.sweep)
        self._dispatcher.report_queues_of(list(external))
        batch_service = BatchService(self._store, service, self._dispatcher, settings)
        self._dispatcher.add_sweeper(batch_service.sweep)  # ends batches whose requests ended
        # Keys are read here, in the replica, so they may come from its file or environment.
        worker_keys = {
            name: KeyRing(w.worker_keys + keys_from_env(
                w.worker_keys_env, f"workers.{name}.worker_keys_env"))
            for name, w in args.workers.items()}
        install_runtime(Runtime(service, endpoints, settings, KeyRing.load(settings),
                                RateLimiter(settings.rate_limits), args.outbound, workers,
                                worker_keys, batch_service))
        workers.start()
        self._dispatcher.start()

    async def __del__(self) -> None:
        # Serve calls this when the replica stops (shutdown, redeploy, scale-down): the
        # jobs running here go back to the queue at once.
        await self._dispatcher.stop()
        await self._webhooks.close()
        await self._store.close()
