"""Client-given URLs cannot reach the server's own network (deployments/common/outbound.py).

Local HTTP servers stand in for internal hosts: `internal` on 127.0.0.1 holds a secret,
`public` on 127.0.0.2 stands for a host on the internet (it is what the allow-list opens;
all of 127.0.0.0/8 is loopback on Linux). Every spelling of an internal address, every
redirect to one and every name resolving to one is refused, with a message that carries
neither the internal body nor the state of a port, and nothing reaches `internal`.
The first part calls the fetch and webhook code directly; the last runs the application
(default policy but for 127.0.0.2) and goes through its HTTP API.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from deployments.common import outbound
from deployments.common.errors import ErrorKind, InputError
from deployments.common.fetch import S3Config, fetch_input
from deployments.common.outbound import OutboundPolicy, check_url
from deployments.common.uploads import upload_output
from serve_app.jobs.dispatcher import Dispatcher
from serve_app.jobs.memory import InMemoryJobStore
from serve_app.jobs.model import DeliveryState, now_ms
from serve_app.jobs.service import JobService, Submission
from serve_app.jobs.webhooks import WebhookDeliverer
from tests.clients import Receiver
from tests.jobs.harness import FAST, Scripted, until

SECRET = "INTERNAL-SECRET-7f3a"
#: what a refusal must never say: the body, or how a connection to a port went
LEAKS = (SECRET, "Errno", "onnection refused", "timed out", "reset", "ConnectError")
PUBLIC_HOST = "127.0.0.2"
PUBLIC = OutboundPolicy(allow_networks=[f"{PUBLIC_HOST}/32"])
DEFAULT = OutboundPolicy()


class Site:
    """A local HTTP server on `host`: `/redirect?to=URL`, `/loop` (redirects to itself),
    `/trickle` (a byte every 0.7 s), anything else the secret. It counts the requests."""

    def __init__(self, host: str, tls: ssl.SSLContext | None = None) -> None:
        self.hits: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                site.hits.append(self.path)
                path, query = urlparse(self.path).path, parse_qs(urlparse(self.path).query)
                if path in ("/redirect", "/loop"):
                    self.send_response(302)
                    self.send_header("Location", query["to"][0] if path == "/redirect"
                                     else "/loop")
                    self.end_headers()
                elif path == "/trickle":
                    self._trickle()
                else:
                    body = f"{SECRET},1,2,3\n".encode() * 8
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            do_POST = do_GET  # noqa: N815 - a webhook would POST

            def _trickle(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(1000):
                    try:
                        self.wfile.write(b"1")
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(0.7)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.host = host
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def internal() -> Iterator[Site]:
    site = Site("127.0.0.1")
    yield site
    site.close()


@pytest.fixture()
def public() -> Iterator[Site]:
    site = Site(PUBLIC_HOST)
    yield site
    site.close()


def refused(ref: str, policy: OutboundPolicy = PUBLIC, **kw: Any) -> str:
    """The message of fetching `ref` under `policy`, which must fail and leak nothing."""
    with pytest.raises(InputError) as caught:
        fetch_input(ref, 1 << 20, policy, **kw)
    message = str(caught.value)
    assert caught.value.kind is ErrorKind.BAD_INPUT, message
    assert not any(leak in message for leak in LEAKS), message
    return message


def internal_urls(port: int) -> list[str]:
    return [f"http://127.0.0.1:{port}/", f"http://localhost:{port}/", f"http://[::1]:{port}/",
            f"http://[::ffff:127.0.0.1]:{port}/", f"http://[::ffff:7f00:1]:{port}/",
            f"http://2130706433:{port}/", f"http://0x7f.0.0.1:{port}/",
            f"http://0177.0.0.1:{port}/", f"http://127.1:{port}/", f"http://0.0.0.0:{port}/",
            f"http://[::]:{port}/", f"http://[64:ff9b::7f00:1]:{port}/",
            f"http://[2002:7f00:1::]:{port}/", f"http://[::127.0.0.1]:{port}/",
            "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
            "http://100.100.100.200/", "http://10.0.0.1/", "http://192.168.1.1/",
            "http://172.16.0.1/", "http://100.64.0.1/", "http://[fe80::1]/",
            "http://[fc00::1]/", "http://224.0.0.1/", "http://240.0.0.1/",
            "https://127.0.0.1/"]


# ---------------------------------------------------------------- fetching URLs


def test_every_spelling_of_an_internal_address_is_refused(internal: Site) -> None:
    for url in internal_urls(internal.port):
        message = refused(url)
        # octal is no valid URL to httpx; everything else is refused by its address
        assert "is refused" in message or "not a valid URL" in message, message
        with pytest.raises(InputError):
            check_url(url, PUBLIC)
    assert internal.hits == []


def test_refusals_say_what_and_why() -> None:
    assert refused("http://127.0.0.1:8265/") == (
        "http://127.0.0.1:8265/ is refused: 127.0.0.1 is a loopback address; allow it with "
        "outbound.allow_networks")
    assert refused("http://localhost:6379/") == (
        "http://localhost:6379/ is refused: localhost resolves to a loopback address; allow it "
        "with outbound.allow_networks or outbound.allow_hosts")
    assert "embeds 127.0.0.1, a loopback address" in refused("http://[::ffff:127.0.0.1]/")
    assert "169.254.169.254 is a cloud metadata address" in refused(
        "http://169.254.169.254/latest/meta-data/")
    assert "10.0.0.1 is a private address" in refused("http://10.0.0.1/")
    assert "0.0.0.0 is the unspecified address" in refused("http://0.0.0.0/")


def test_a_redirect_from_an_allowed_host_to_an_internal_one_is_refused(internal: Site,
                                                                       public: Site) -> None:
    """Finding: a URL redirecting to 127.0.0.1 was fetched, and the PD CSV parser's error
    sent part of the internal response back."""
    for target in (internal.url("/admin"), f"http://localhost:{internal.port}/",
                   f"http://[::ffff:127.0.0.1]:{internal.port}/",
                   "http://169.254.169.254/latest/meta-data/"):
        start = public.url(f"/redirect?to={target}")
        message = refused(start)
        assert message.startswith(f"the redirect from {start} to "), message
        assert "is refused" in message
    assert internal.hits == []
    # one allowed hop to another still works
    body = fetch_input(public.url(f"/redirect?to={public.url('/data')}"), 1 << 20, PUBLIC)
    assert body.startswith(SECRET.encode())


def test_a_name_resolving_to_loopback_is_refused_even_after_a_check_passed(
        internal: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name is public when checked and loopback when connected to. The
    address connected to is the one vetted."""
    real = socket.getaddrinfo
    answers = iter(["93.184.215.14"])

    def rebinding(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host == "rebind.example.test":
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        if host == "loopback.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(outbound.socket, "getaddrinfo", rebinding)
    url = f"http://rebind.example.test:{internal.port}/"
    check_url(url, DEFAULT)  # public at submit time
    assert "rebind.example.test resolves to a loopback address" in refused(url, DEFAULT)
    # one internal answer among public ones refuses the name
    assert "resolves to a loopback address" in refused(
        f"http://loopback.example.test:{internal.port}/")
    assert internal.hits == []


def test_allow_listed_hosts_and_networks_are_fetched(internal: Site) -> None:
    by_name = OutboundPolicy(allow_hosts=["localhost"])
    assert fetch_input(f"http://localhost:{internal.port}/a", 1 << 20, by_name).startswith(
        SECRET.encode())
    by_suffix = OutboundPolicy(allow_hosts=["*.internal.test"])
    assert by_suffix.host_allowed("db.internal.test")
    assert not by_suffix.host_allowed("internal.test") and not by_suffix.host_allowed("x.test")
    by_network = OutboundPolicy(allow_networks=["127.0.0.0/8"])
    assert fetch_input(internal.url("/b"), 1 << 20, by_network).startswith(SECRET.encode())
    assert internal.hits == ["/a", "/b"]
    with pytest.raises(ValueError, match="not a valid IPv4 or IPv6 network"):
        OutboundPolicy(allow_networks=["10.0.0.1/8"])


def test_an_unreachable_allowed_host_says_only_that_it_could_not_be_fetched() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind((PUBLIC_HOST, 0))
        closed = f"http://{PUBLIC_HOST}:{s.getsockname()[1]}/x"
    assert refused(closed) == f"could not fetch {closed}"


def test_a_trickling_server_cannot_stretch_a_fetch_past_its_deadline(public: Site) -> None:
    """Finding: a server sending a byte every 0.7 s kept a 1 s fetch going for 5.6 s, in a
    thread that nothing freed."""
    policy = PUBLIC.model_copy(update={"deadline_s": 1.0})
    outcome: list[str] = []

    def fetch() -> None:
        outcome.append(refused(public.url("/trickle"), policy))

    started = time.monotonic()
    worker = threading.Thread(target=fetch)
    worker.start()
    worker.join(timeout=10)
    elapsed = time.monotonic() - started
    assert not worker.is_alive(), "the fetch's thread is still running"
    assert elapsed < 1.0 + 1.5, elapsed
    assert outcome == [f"could not fetch {public.url('/trickle')} within 1 s"]
    # a family's shorter timeout wins over the policy's deadline
    started = time.monotonic()
    refused(public.url("/trickle"), PUBLIC, timeout_s=0.5)
    assert time.monotonic() - started < 0.5 + 1.5


def test_a_trickling_webhook_receiver_cannot_hold_a_delivery(public: Site) -> None:
    """The webhook client's timeout bounds the whole request, not each read."""
    async def post() -> float:
        async with outbound.guarded_async_client(PUBLIC, 1.0) as client:
            started = time.monotonic()
            with pytest.raises(httpx.TimeoutException):
                await client.post(public.url("/trickle"), content=b"{}")
            return time.monotonic() - started

    assert asyncio.run(post()) < 1.0 + 1.5


def test_the_redirect_limit_is_enforced(public: Site) -> None:
    policy = PUBLIC.model_copy(update={"max_redirects": 3})
    assert "redirected more than 3 times" in refused(public.url("/loop"), policy)
    assert "only http:// and https://" in refused(
        public.url("/redirect?to=file:///etc/passwd"))


def test_tls_verifies_and_names_the_original_host_while_connecting_to_the_vetted_address(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guarded backend connects to an IP literal; SNI and certificate checks must still
    use the URL's host name."""
    ca_file, cert_file, key_file = _tls_files(tmp_path, "localhost")
    server_names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    site = Site("127.0.0.1", tls=context)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    outbound._ssl_context.cache_clear()
    try:
        url = f"https://localhost:{site.port}/tls"
        body = fetch_input(url, 1 << 20, OutboundPolicy(allow_hosts=["localhost"]))
        assert body.startswith(SECRET.encode()) and server_names == ["localhost"]
        # the certificate names localhost, not 127.0.0.1: verification is not skipped
        by_address = f"https://127.0.0.1:{site.port}/tls"
        assert refused(by_address, OutboundPolicy(allow_networks=["127.0.0.1/32"])) == (
            f"could not fetch {by_address}")
        assert site.hits == ["/tls"]
    finally:
        site.close()
        monkeypatch.delenv("SSL_CERT_FILE")
        outbound._ssl_context.cache_clear()


def _tls_files(tmp: Path, host: str) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for `host` signed by it (CA file, cert file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> Any:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]),
                                            critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("ssrf test CA", ca_key, "ssrf test CA", ca_key, ca=True)
    cert = certificate(host, key, "ssrf test CA", ca_key, ca=False)
    files = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return files


# ---------------------------------------------------------------- S3


@pytest.fixture()
def bucket(s3_server: str) -> str:
    import boto3

    name = f"clinic-private-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="patient-0001.png", Body=b"radiograph bytes")
    return name


def test_s3_without_s3config_is_refused_unless_the_bucket_is_the_servers(bucket: str) -> None:
    """Finding: a caller read s3://clinic-private/patient-0001.png with the server's own
    credentials."""
    uri = f"s3://{bucket}/patient-0001.png"
    message = refused(uri, DEFAULT)
    assert message.startswith(f"{uri} is refused: bucket {bucket} ")
    assert "outbound.server_s3_buckets" in message
    servers = OutboundPolicy(server_s3_buckets=[bucket])
    assert fetch_input(uri, 1 << 20, servers) == b"radiograph bytes"


def test_an_s3config_endpoint_must_be_an_allowed_host(s3_server: str, bucket: str) -> None:
    """Finding: `s3Config.endpointUrl` sent boto3 to any host the caller named."""
    uri = f"s3://{bucket}/patient-0001.png"
    for endpoint in (s3_server, "http://169.254.169.254", "http://[::1]:9000",
                     "http://localhost:9000", "file:///etc/passwd"):
        config = S3Config("testing", "testing", bucket, endpoint)
        message = refused(uri, DEFAULT, s3=config)
        assert message.startswith(f"s3Config.endpointUrl {endpoint} is refused: "), message
        with pytest.raises(InputError, match="s3Config.endpointUrl"):
            upload_output(config, DEFAULT, "out/x.csv", b"x", "text/csv")
    local = OutboundPolicy(allow_networks=["127.0.0.1/32"])
    config = S3Config("testing", "testing", bucket, s3_server)
    assert fetch_input(uri, 1 << 20, local, s3=config) == b"radiograph bytes"
    assert upload_output(config, local, "out/x.csv", b"x", "text/csv").startswith(s3_server)


# ---------------------------------------------------------------- webhooks


def test_a_webhook_to_a_denied_address_fails_its_attempt_without_a_post() -> None:
    """Finding: a JSON POST was delivered to a loopback service. Delivery checks again
    (a name may resolve elsewhere by then): the attempt fails with the reason."""
    receiver = Receiver()

    async def main() -> None:
        settings = FAST.model_copy(update={"webhook_attempts": 1})
        store = InMemoryJobStore()
        client = outbound.guarded_async_client(DEFAULT, settings.webhook_timeout_s)
        deliverer = WebhookDeliverer(store, settings, now_ms, client=client)
        endpoints = {"e": _endpoint()}
        dispatcher = Dispatcher(store, endpoints, settings, deliverer)
        service = JobService(store, dispatcher, {"e": endpoints["e"].spec}, settings)
        dispatcher.start()
        job = await service.submit("e", Submission(input={}, webhook=receiver.url("/ok/h")),
                                   sync=False)

        async def given_up() -> bool:  # the delivery exists once the job has ended
            deliveries = await service.webhook_deliveries("e", job.id, None)
            return bool(deliveries) and deliveries[0].state is DeliveryState.FAILED

        await until(given_up)
        (delivery,) = await service.webhook_deliveries("e", job.id, None)
        (attempt,) = delivery.attempts
        assert attempt.status_code is None
        assert attempt.error == ("OutboundRefused: 127.0.0.1 is refused: 127.0.0.1 is a "
                                 "loopback address; allow it with outbound.allow_networks")
        await dispatcher.stop()
        await deliverer.close()

    try:
        asyncio.run(main())
        assert receiver.calls == []
    finally:
        receiver.close()


def _endpoint() -> Any:
    from serve_app.jobs.endpoints import Endpoint
    from serve_app.jobs.settings import EndpointSpec

    return Endpoint("e", EndpointSpec(), Scripted(), False)


# ---------------------------------------------------------------- through the application


@pytest.fixture(scope="module")
def app(serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """The application with the default outbound policy, but for 127.0.0.2 standing in for
    the internet."""
    from ray import serve

    from serve_app.app import build_app

    store = tmp_path_factory.mktemp("ssrf-jobs") / "jobs.sqlite3"
    args = {"jobs": {"store_url": f"sqlite:///{store}", "poll_interval_s": 0.1},
            "endpoints": {"pd-segmentation": {"route": "pd"}},
            "outbound": {"allow_networks": [f"{PUBLIC_HOST}/32"]}}
    serve.run(build_app(args), name="ssrf", route_prefix="/ssrf")
    with httpx.Client(base_url=f"http://127.0.0.1:{serve_port}/ssrf", timeout=120) as client:
        yield client
    serve.delete("ssrf")


JOBS = "/v2/pd-segmentation"


def _no_leak(message: str) -> str:
    assert not any(leak in message for leak in LEAKS), message
    return message


def test_an_input_url_redirecting_to_loopback_is_a_400_without_the_internal_body(
        app: httpx.Client, internal: Site, public: Site) -> None:
    redirect = public.url(f"/redirect?to={internal.url('/signals.csv')}")
    for url in (redirect, internal.url("/signals.csv"), f"http://2130706433:{internal.port}/"):
        r = app.post("/pd", json={"file_url": url, "format": "csv"})
        assert r.status_code == 400, r.text
        assert "is refused" in _no_leak(r.json()["error"])
    # a job fails with the same reason
    job = app.post(f"{JOBS}/runsync", json={"input": {"file_url": redirect}}).json()
    assert job["status"] == "FAILED", job
    assert _no_leak(job["error"]).startswith(f"the redirect from {redirect} to ")
    assert internal.hits == []


@pytest.mark.parametrize("webhook", [
    "http://127.0.0.1:8265/", "http://169.254.169.254/latest/meta-data/",
    "http://localhost:6379/", "http://[::1]/", "http://10.0.0.1/hook",
    "http://2130706433/", "http://[::ffff:127.0.0.1]/"])
def test_a_webhook_to_an_internal_address_is_a_400_at_submission(app: httpx.Client,
                                                                  webhook: str) -> None:
    for route in ("/run", "/runsync"):
        r = app.post(f"{JOBS}{route}", json={"input": {"signals": [0.0] * 64},
                                             "webhook": webhook})
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith("webhook http://"), r.text
        assert "is refused" in r.json()["error"]


def test_the_refusal_names_the_address_and_the_setting(app: httpx.Client) -> None:
    r = app.post(f"{JOBS}/run", json={"input": {"signals": [0.0] * 64},
                                      "webhook": "http://127.0.0.1:8265/"})
    assert r.json() == {"error": "webhook http://127.0.0.1:8265/ is refused: 127.0.0.1 is a "
                                 "loopback address; allow it with outbound.allow_networks"}


def test_s3_without_s3config_is_refused_through_the_api(app: httpx.Client) -> None:
    uri = "s3://clinic-private/patient-0001.npy"
    r = app.post("/pd", json={"file_url": uri})
    assert r.status_code == 400 and "outbound.server_s3_buckets" in r.json()["error"], r.text
    job = app.post(f"{JOBS}/runsync", json={"input": {"file_url": uri}}).json()
    assert job["status"] == "FAILED" and job["error"].startswith(f"{uri} is refused: "), job
    endpoint = {"accessId": "a", "accessSecret": "b", "bucketName": "clinic-private",
                "endpointUrl": "http://169.254.169.254/"}
    job = app.post(f"{JOBS}/runsync", json={"input": {"file_url": uri},
                                            "s3Config": endpoint}).json()
    assert job["status"] == "FAILED" and "169.254.169.254 is a cloud metadata address" in (
        job["error"]), job
