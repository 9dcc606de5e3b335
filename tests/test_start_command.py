"""The README's start command, run as written, serves every configured endpoint.

`serve run configs/serve.yaml` runs from the repository root with this venv's bin first on
PATH and no Ray started beforehand (tests/conftest.py orders this test first, before the
session's own cluster), exactly as a user starts the service. Every endpoint of the
config then has to answer a real job through `POST /v2/{endpoint}/runsync` with a sensible
output, and every direct route a real call. Then Ctrl-C (SIGINT to its process group)
stops it, and no process of its session, Ray's raylet and workers included, may stay.

How long the start takes (the 60 s target on 2 cores) is a speed figure, measured by
`python bench/start_time.py` against a baseline of the same run, not asserted here: this
machine is shared, and the same tree took 50-100 s on it on different days.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.start_command import (
    REPO,
    START_COMMAND,
    Expected,
    answered_at,
    command_line,
    expected_of_the_config,
    serving,
    session_pids,
)


@pytest.fixture()
def expected() -> Expected:
    """Built before the start, so making the inputs does not slow the start."""
    return expected_of_the_config()


@pytest.fixture()
def started(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, float, Path]]:
    log = tmp_path / "serve-run.log"
    with serving(START_COMMAND, log) as (server, started_at):
        yield server, started_at, log


def test_readme_start_command_serves_every_endpoint(
        expected: Expected, started: tuple[subprocess.Popen, float, Path]) -> None:
    readme = (REPO / "README.md").read_text()
    assert f"&& {START_COMMAND} " in readme, "the README's start command changed"
    server, started_at, log = started
    done = answered_at(expected, server, started_at, log)
    assert set(done) == {call.name for calls in expected.calls.values() for call in calls}
    commands = [command_line(pid) for pid in session_pids(server.pid)]
    assert any("raylet" in c for c in commands), (
        "no raylet in `serve run`'s session: it joined a Ray cluster started elsewhere")
    # configs/serve.yaml switches Serve to its HAProxy proxy from the config alone
    assert any(c.split(" ")[0].endswith("/haproxy") for c in commands), (
        "no haproxy in `serve run`'s session: Serve runs its Python proxy")
    slowest = ", ".join(f"{name} {t - started_at:.1f} s" for name, t in
                        sorted(done.items(), key=lambda item: -item[1])[:4])
    print(f"\n`{START_COMMAND}` ready after {max(done.values()) - started_at:.1f} s "
          f"(slowest: {slowest}); the target is bench/start_time.py's")
