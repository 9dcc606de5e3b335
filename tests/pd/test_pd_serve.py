"""The PD graph under Serve: jobs through handles, errors, batching, live reconfiguration."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.common.errors import ErrorKind, InputError, input_error_in
from deployments.pd.config import PDArgs
from deployments.pd.deployment import build_pd_app
from deployments.pd.evaluate import HELD_OUT_SEED, match_regions
from deployments.pd.inference import PDModel
from deployments.pd.processing import PreprocessParams, Region, preprocess
from deployments.pd.synthetic import SyntheticParams, generate

APP = "pd-test"
TIMEOUT_S = 120
# A long wait lets every concurrent window join one batch even on a loaded machine.
ARGS = PDArgs(max_batch_size=64, batch_wait_timeout_s=0.2)


def deploy(args: PDArgs) -> DeploymentHandle:
    return serve.run(build_pd_app(args), name=APP, route_prefix=None)


@pytest.fixture(scope="module")
def pipeline(serve_port: int) -> Iterator[DeploymentHandle]:
    yield deploy(ARGS)
    serve.delete(APP)


@pytest.fixture
def segmenter(pipeline: DeploymentHandle) -> DeploymentHandle:
    return serve.get_deployment_handle("PDSegmenter", app_name=APP)


def job(signals: list, job_id: str = "job-1") -> dict:
    return {"id": job_id, "input": {"signals": signals}}


def test_report_finds_the_pulses(pipeline: DeploymentHandle) -> None:
    # One noise level for all rows: rows share a scale in the report's chunk, and a row
    # far quieter than the others would rightly be dropped.
    data = generate(3, seed=HELD_OUT_SEED + 44, params=SyntheticParams(
        noise_std=(100.0, 100.0), pulse_snr=(8.0, 16.0), max_pulses=3))
    assert all(data.regions)
    quiet_row = np.random.default_rng(0).normal(0, 1e-3, data.signals.shape[1])
    signals = [*data.signals.tolist(), quiet_row.tolist()]
    report = pipeline.run.remote(job(signals)).result(timeout_s=TIMEOUT_S)

    assert report["total_samples_processed"] == 4
    # The quiet row shares the chunk's scale with loud ones, so its peak is under 0.1.
    assert report["valid_samples_found"] == 3
    assert [r["sample_index"] for r in report["results"]] == [0, 1, 2]
    matched = total = 0
    for result, truth in zip(report["results"], data.regions, strict=True):
        predicted = [Region(r["start"], r["end"]) for r in result["regions"]]
        assert all(r["duration"] == r["end"] - r["start"] for r in result["regions"])
        assert result["signal_stats"]["num_regions"] == len(predicted)
        assert result["signal_stats"]["length"] == data.signals.shape[1]
        matched += len(match_regions(truth, predicted))
        total += max(len(truth), len(predicted))
    assert total > 0 and matched / total >= 0.8


def test_a_job_with_no_active_signal_reports_none(pipeline: DeploymentHandle) -> None:
    report = pipeline.run.remote(job([[0.0] * 64])).result(timeout_s=TIMEOUT_S)
    assert report == {"total_samples_processed": 1, "valid_samples_found": 0, "results": []}


def test_bad_input_raises_input_error_through_the_handle(pipeline: DeploymentHandle) -> None:
    with pytest.raises(InputError, match="same length"):
        pipeline.run.remote(job([[0.0] * 32, [0.0] * 31])).result(timeout_s=TIMEOUT_S)
    with pytest.raises(InputError, match="input must be a JSON object"):
        pipeline.run.remote({"id": "x"}).result(timeout_s=TIMEOUT_S)
    with pytest.raises(InputError, match="513 signals is more than the limit") as caught:
        pipeline.run.remote(job([[0.0] * 16] * 513)).result(timeout_s=TIMEOUT_S)
    # the error's kind survives the hop (the ingress answers it with a 413)
    assert input_error_in(caught.value).kind is ErrorKind.TOO_LARGE


def test_concurrent_requests_share_batches(pipeline: DeploymentHandle,
                                           segmenter: DeploymentHandle) -> None:
    segmenter.batch_stats.remote(reset=True).result(timeout_s=TIMEOUT_S)
    signals = generate(16, seed=HELD_OUT_SEED + 43, params=SyntheticParams(length=1024)).signals
    responses = [pipeline.run.remote(job([row.tolist()], f"c{i}"))
                 for i, row in enumerate(signals)]
    reports = [r.result(timeout_s=TIMEOUT_S) for r in responses]
    assert all(r["valid_samples_found"] == 1 for r in reports)
    sizes = segmenter.batch_stats.remote().result(timeout_s=TIMEOUT_S)["batch_sizes"]
    assert sum(sizes) == 16  # one 1024-sample window per job
    assert max(sizes) > 1, sizes  # windows of different jobs ran in one model call


def test_batched_segments_equal_the_in_process_model(segmenter: DeploymentHandle) -> None:
    raw = generate(4, seed=HELD_OUT_SEED + 61).signals  # 7 windows each
    signals = preprocess(raw, PreprocessParams(chunk_rows=1))[0]
    segmenter.batch_stats.remote(reset=True).result(timeout_s=TIMEOUT_S)
    responses = [segmenter.segment.remote(signal) for signal in signals]
    results = [r.result(timeout_s=TIMEOUT_S) for r in responses]
    sizes = segmenter.batch_stats.remote().result(timeout_s=TIMEOUT_S)["batch_sizes"]
    assert sum(sizes) == 28 and max(sizes) > 7  # windows of several calls shared a batch
    model = PDModel.from_uri(ARGS.weights_uri)
    for signal, result in zip(signals, results, strict=True):
        alone = model.segment(signal)
        np.testing.assert_allclose(result.probabilities, alone.probabilities, atol=1e-4)
        assert result.regions == alone.regions


def test_user_config_reaches_the_segmenter(pipeline: DeploymentHandle,
                                           segmenter: DeploymentHandle) -> None:
    """New user_config values govern the next requests (batching off: one window a call).

    `serve.run` restarts replicas on every redeploy in Ray 2.60 (it gives each deploy a
    new code version); a declarative deploy that changes only `user_config` calls the
    same `reconfigure` on the running replicas, which test_pd_segmenter.py checks on a
    live instance.
    """
    try:
        deploy(ARGS.model_copy(update={"max_batch_size": 1, "threshold": 0.7}))
        info = segmenter.info.remote().result(timeout_s=TIMEOUT_S)
        assert info["settings"]["threshold"] == 0.7
        assert info["batching"]["max_batch_size"] == 1
        segmenter.batch_stats.remote(reset=True).result(timeout_s=TIMEOUT_S)
        signal = generate(1, seed=HELD_OUT_SEED + 47).signals[0].tolist()  # 7 windows
        responses = [pipeline.run.remote(job([signal])) for _ in range(4)]
        for response in responses:
            response.result(timeout_s=TIMEOUT_S)
        sizes = segmenter.batch_stats.remote().result(timeout_s=TIMEOUT_S)["batch_sizes"]
        assert sizes == [1] * 28
    finally:
        deploy(ARGS)


def test_render_html_and_healthz(pipeline: DeploymentHandle) -> None:
    signals = generate(2, seed=HELD_OUT_SEED + 53).signals.tolist()
    page = pipeline.render_html.remote(job(signals)).result(timeout_s=TIMEOUT_S)
    assert page.startswith("<!doctype html>")
    assert page.count("<img") == 2 and "data:image/png;base64," in page
    health = pipeline.healthz.remote().result(timeout_s=TIMEOUT_S)
    assert health["status"] == "ok" and health["model"]["parameters"] > 0
