"""The README's start command as a user runs it, and what it has to serve: shared by
tests/test_start_command.py (every endpoint answers, then Ctrl-C leaves nothing behind)
and bench/start_time.py (how long that takes).

`serve run configs/serve.yaml` runs from the repository root with this venv's bin first on
PATH, in a session of its own, and is stopped with SIGINT to its process group (Ctrl-C).
Every endpoint of the config has to answer a real job through `POST /v2/{endpoint}/runsync`
with a sensible output, and every direct route a real call.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from serve_app.catalog import family_of
from tests.workload import example

REPO = Path(__file__).resolve().parents[1]
START_COMMAND = "serve run configs/serve.yaml"
CONFIG = REPO / "configs" / "serve.yaml"
PORT = 8000  # the config's http_options
BASE = f"http://127.0.0.1:{PORT}"
#: probing goes on this long: a bound on a hang, not the start-up target (bench/start_time.py)
GIVE_UP_S = 300
GATE_TIMEOUT_S = 2  # until the ingress answers, the proxy may accept and hang
CALL_TIMEOUT_S = 15  # one call once the ingress answers (it waits for model replicas)
JOB_WAIT_MS = 2000  # runsync and status-sync answer within this, done or not
STOP_WITHIN_S = 60
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


def check_demo(out: dict[str, Any]) -> None:
    assert out["echo"] == "start-command" and out["steps"] == 2, out


@dataclass(frozen=True)
class Call:
    """One real call that has to succeed: a job through runsync, or a direct route."""

    name: str
    method: str
    path: str
    body: dict[str, Any] | None
    check: Callable[[Any], None]
    job: bool = False
    html: bool = False


@dataclass(frozen=True)
class Expected:
    """What configs/serve.yaml serves: per endpoint, its job call and then its direct
    routes' calls; and the `GET /endpoints` listing."""

    calls: dict[str, list[Call]]
    listing: dict[str, Any]


def expected_of_the_config(config_path: Path = CONFIG) -> Expected:
    config = yaml.safe_load(config_path.read_text())
    assert config["http_options"]["port"] == PORT, config["http_options"]
    (app,) = config["applications"]
    assert app["route_prefix"] == "/", app["route_prefix"]
    args = app["args"]
    handler_examples = {
        "deployments.handlers.demo_worker": ({"steps": 2, "echo": "start-command"}, check_demo),
    }
    calls: dict[str, list[Call]] = {}
    listing: dict[str, Any] = {}
    for endpoint, spec in (args.get("endpoints") or {}).items():
        body, check = example(endpoint)  # a KeyError asks for an example of a new endpoint
        calls[endpoint] = [job_call(endpoint, body, check)]
        route = spec.get("route")
        # what it takes and gives, with the same example the calls below use
        listing[endpoint] = {"route": f"/{route}" if route else None,
                             "jobs": f"/v2/{endpoint}/run", **family_of(endpoint).describe()}
        if route:
            calls[endpoint].append(Call(f"POST /{route}", "POST", f"/{route}", body, check))
        if route and spec.get("html"):
            calls[endpoint].append(Call(f"POST /{route}/html", "POST", f"/{route}/html", body,
                                        check_html, html=True))
        if route and spec.get("healthz"):
            calls[endpoint].append(Call(f"GET /{route}/healthz", "GET", f"/{route}/healthz",
                                        None, check_healthz))
    for endpoint, spec in (args.get("handlers") or {}).items():
        module = spec["handler"]
        assert module in handler_examples, f"no example input for handler {module!r}: add one"
        calls[endpoint] = [job_call(endpoint, *handler_examples[module])]
        listing[endpoint] = {"route": None, "jobs": f"/v2/{endpoint}/run",
                             **family_of(endpoint).describe()}
    return Expected(calls, listing)


def job_call(endpoint: str, body: dict[str, Any], check: Callable[[Any], None]) -> Call:
    return Call(f"job {endpoint}", "POST", f"/v2/{endpoint}/runsync?wait={JOB_WAIT_MS}",
                {"input": body}, check, job=True)


def check_html(page: str) -> None:
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>"), page[:200]
    assert "data:image/png;base64," in page, page[:200]


def check_healthz(health: dict[str, Any]) -> None:
    assert health["status"] == "ok" and health["model_loaded"] is True, health


# ---------------------------------------------------------------- probing


class NotYet(Exception):
    """The app does not answer this call yet (a 5xx)."""


def wait_for_ingress(client: httpx.Client, listing: dict[str, Any], deadline: float,
                     server: subprocess.Popen) -> None:
    """Until the ingress lists the config's endpoints (short probes: before the ingress is
    up, Serve's proxy can accept a connection and hang)."""
    while time.monotonic() < deadline:
        assert server.poll() is None, f"`{shlex.join(server.args)}` exited with {server.returncode}"
        try:
            r = client.get("/endpoints", timeout=GATE_TIMEOUT_S)
            if r.status_code == 200:
                assert r.json() == listing, r.json()
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"GET /endpoints did not answer within {GIVE_UP_S} s of the start")


def answer_all(client: httpx.Client, calls: list[Call], deadline: float,
               failed: threading.Event) -> dict[str, float]:
    """One endpoint's calls in order (its job first: the direct routes then find its models
    loaded); when each succeeded (monotonic). A wrong answer fails, and sets `failed`, which
    ends the other endpoints' calls."""
    try:
        return {call.name: answer(client, call, deadline, failed) for call in calls}
    except BaseException:
        failed.set()
        raise


def answer(client: httpx.Client, call: Call, deadline: float,
           failed: threading.Event) -> float:
    """Make `call` until it succeeds, each attempt bounded by CALL_TIMEOUT_S; a job still
    running is followed through status-sync rather than submitted again."""
    job_id: str | None = None
    while time.monotonic() < deadline and not failed.is_set():
        try:
            if job_id is None:
                r = client.request(call.method, call.path, json=call.body,
                                   timeout=CALL_TIMEOUT_S)
            else:
                r = client.get(f"{call.path.split('/runsync')[0]}/status-sync/{job_id}",
                               params={"wait": JOB_WAIT_MS}, timeout=CALL_TIMEOUT_S)
            if r.status_code >= 500:
                raise NotYet(r.text[:300])
        except (httpx.TransportError, NotYet):
            time.sleep(0.5)
            continue
        assert r.status_code == 200, f"{call.name}: HTTP {r.status_code} {r.text[:500]}"
        if not call.job:
            call.check(r.text if call.html else r.json())
            return time.monotonic()
        job = r.json()
        if job["status"] not in TERMINAL:
            job_id = job["id"]
            continue
        assert job["status"] == "COMPLETED", f"{call.name}: {job}"
        call.check(job["output"])
        return time.monotonic()
    if failed.is_set():
        raise AssertionError(f"{call.name}: stopped, another call failed")
    raise AssertionError(f"{call.name} did not answer within {GIVE_UP_S} s of the start")


# ---------------------------------------------------------------- the process


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def session_pids(sid: int) -> set[int]:
    """Processes of session `sid` (the ones `serve run` started, Ray's included)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    pids.add(int(entry))
            except (ProcessLookupError, PermissionError):
                pass
    return pids


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def log_tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def serving(command: str, log: Path) -> Iterator[tuple[subprocess.Popen, float]]:
    """`command` (a `serve run`) in its own session, as the README starts it, with its
    start time (monotonic); stopped with SIGINT to its process group (Ctrl-C), SIGKILL only
    if that does not end it."""
    assert port_is_free(PORT), (f"port {PORT} is taken: stop what listens there (another "
                                "`serve run`?) first")
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv_bin.parent)
    # A terminal's Ctrl-C reaches a process whose SIGINT is not ignored; a process started
    # in the background of a script inherits it ignored, and an exec keeps it so. A handler
    # here is reset to the default in the child.
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with log.open("wb") as out:
            started_at = time.monotonic()
            server = subprocess.Popen(shlex.split(command), cwd=REPO, env=env,
                                      stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, saved)
    try:
        yield server, started_at
    finally:
        stop(server, log)


def answered_at(expected: Expected, server: subprocess.Popen, started_at: float,
                log: Path) -> dict[str, float]:
    """When (monotonic) each call of `expected` first succeeded; an AssertionError, with
    the server's last lines, when one fails or none answers within GIVE_UP_S."""
    deadline = started_at + GIVE_UP_S
    done: dict[str, float] = {}
    with httpx.Client(base_url=BASE) as client:
        try:
            wait_for_ingress(client, expected.listing, deadline, server)
            failed = threading.Event()
            with ThreadPoolExecutor(len(expected.calls) or 1) as pool:
                for times in pool.map(lambda calls: answer_all(client, calls, deadline, failed),
                                      expected.calls.values()):
                    done.update(times)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast lines of `{shlex.join(server.args)}`:\n"
                                 f"{log_tail(log)}") from exc
    return done


def stop(server: subprocess.Popen, log: Path) -> None:
    sid = server.pid  # start_new_session: its session and process group ids are its pid
    ours = {pid: command_line(pid) for pid in session_pids(sid)}
    killed = False
    try:
        os.killpg(sid, signal.SIGINT)
        server.wait(STOP_WITHIN_S)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        killed = True
        os.killpg(sid, signal.SIGKILL)
        server.wait(30)
    deadline = time.monotonic() + 30  # Ray's workers notice their raylet is gone
    while (left := session_pids(sid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, ("processes of `serve run`'s session outlived it: "
                      + "; ".join(f"{pid} {ours.get(pid) or command_line(pid)}"[:160]
                                  for pid in sorted(left)))
    assert not killed, (f"`{shlex.join(server.args)}` did not stop within {STOP_WITHIN_S} s of "
                        f"SIGINT:\n{log_tail(log)}")
