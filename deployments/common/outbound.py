"""Which hosts the server may reach on a client's behalf (input URLs, webhooks, S3 endpoints).

A URL a client gives must not turn the server into a proxy into its own network: every
connection made for a client is refused when its address is loopback, private, link-local,
multicast, reserved, shared (100.64.0.0/10), unspecified or a cloud metadata service,
unless the config's `outbound` allow-list opens it.

The check is made on the address actually connected to: the guarded httpx transports
resolve the host themselves, vet every address it resolves to and connect to the vetted
address literal (TLS still verifies, and SNI and Host still name, the original host), so
neither a redirect nor DNS rebinding between a check and the connection gets around it.
Refusals say what was refused and why; they never carry a remote body or the state of a
port.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from functools import cache
from typing import Any

import anyio
import httpcore
import httpx
from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, field_validator

from deployments.common.errors import InputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: AWS (IPv4 and IPv6), GCP and Azure share 169.254.169.254 (link-local anyway); Alibaba's
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
#: NAT64 prefixes (RFC 6052 well-known, RFC 8215 local use) carry an IPv4 address in their
#: last 32 bits
NAT64_NETWORKS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
#: deprecated IPv4-compatible IPv6 addresses (::a.b.c.d)
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
SCHEMES = ("http", "https")
#: httpx's default pool limits (httpcore's own defaults keep idle connections forever)
POOL_LIMITS: dict[str, Any] = {"max_connections": 100, "max_keepalive_connections": 20,
                               "keepalive_expiry": 5.0}


class OutboundPolicy(BaseModel):
    """The `outbound` section of the config: what client-requested fetches may reach."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: networks opened despite the denial rules (CIDRs: "10.20.0.0/16", "fd12::/64")
    allow_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    #: host names opened whatever they resolve to: exact ("minio.internal") or a suffix
    #: ("*.corp.example.org" matches its subdomains)
    allow_hosts: list[str] = Field(default_factory=list)
    max_redirects: int = Field(5, ge=0, le=20)
    #: one fetch, every redirect hop and the body included, ends by then
    deadline_s: float = Field(30.0, gt=0)
    #: buckets the server may read and write with its own credentials when a job has no
    #: `s3Config`; any other s3:// reference needs the caller's
    server_s3_buckets: list[str] = Field(default_factory=list)

    @field_validator("allow_hosts")
    @classmethod
    def _host_patterns(cls, hosts: list[str]) -> list[str]:
        normal = [h.strip().lower().rstrip(".") for h in hosts]
        for host in normal:
            if not host or "*" in host.removeprefix("*."):
                raise ValueError(f"allow_hosts entry {host!r} must be a host name or "
                                 "*.domain")
        return normal

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == p or (p.startswith("*.") and host.endswith(p[1:]))
                   for p in self.allow_hosts)

    def network_allowed(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allow_networks)


class OutboundRefused(InputError, httpx.TransportError):
    """A client-requested connection the policy refuses (a 400).

    Also an httpx transport error, so what treats a failed request as a failed attempt
    (the webhook deliverer) records the refusal and its reason.
    """

    def __init__(self, target: str, reason: str) -> None:
        InputError.__init__(self, f"{target} is refused: {reason}")
        self._request = None  # httpx.HTTPError's, set by httpx when it re-raises
        self.target, self.reason = target, reason

    def __reduce__(self) -> tuple[type[OutboundRefused], tuple[str, str]]:
        # pickled across Ray replicas: rebuilt from both parts, not from the message alone
        return OutboundRefused, (self.target, self.reason)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: IPv4-mapped, IPv4-compatible, 6to4, NAT64."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if embedded := address.ipv4_mapped or address.sixtofour:
        return embedded
    compatible = address in IPV4_COMPATIBLE and int(address) > 1  # not :: or ::1
    if compatible or any(address in network for network in NAT64_NETWORKS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)  # the last 32 bits
    return None


def _kind(address: IPAddress) -> str | None:
    """What makes `address` internal, or None for a public address."""
    checks = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address in SHARED_ADDRESS_SPACE, "a shared (carrier-grade NAT) address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "a non-public address"),
    )
    return next((kind for denied, kind in checks if denied), None)


def denial(address: IPAddress, policy: OutboundPolicy
           ) -> tuple[str, ipaddress.IPv4Address | None] | None:
    """Why `address` may not be connected to: what it is ("a loopback address") and the
    IPv4 address it embeds when that is the reason; None when it may."""
    embedded = _embedded_ipv4(address)
    if policy.network_allowed(address) or (embedded and policy.network_allowed(embedded)):
        return None
    if embedded is not None and (kind := _kind(embedded)):
        return kind, embedded
    kind = _kind(address)
    return (kind, None) if kind else None


def vet(host: str, addresses: Iterable[str], policy: OutboundPolicy) -> list[str]:
    """`host`'s resolved addresses when the policy lets all of them be connected to;
    OutboundRefused naming the first that may not (one bad answer refuses the host, so a
    rebinding answer cannot slip an internal address in beside a public one)."""
    unique = list(dict.fromkeys(addresses))
    if policy.host_allowed(host):
        return unique
    for text in unique:
        address = ipaddress.ip_address(text)
        if (denied := denial(address, policy)) is None:
            continue
        kind, embedded = denied
        if _is_literal(host):
            what = f"embeds {embedded}, {kind}" if embedded else f"is {kind}"
            raise OutboundRefused(host, f"{address} {what}; allow it with "
                                  "outbound.allow_networks")
        # a name's internal addresses are not told: they would map the internal network
        what = f"an address embedding {kind}" if embedded else kind
        raise OutboundRefused(host, f"{host} resolves to {what}; allow it with "
                              "outbound.allow_networks or outbound.allow_hosts")
    return unique


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _addresses(infos: Iterable[tuple[Any, ...]]) -> list[str]:
    # getaddrinfo's sockaddr: (host, port) or (host, port, flowinfo, scope_id)
    return [str(info[4][0]) for info in infos]


def parse_url(url: str) -> httpx.URL:
    """`url` parsed as httpx will send it; refused unless it is http(s) with a host."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InputError(f"{url} is not a valid URL: {exc}") from None
    if parsed.scheme not in SCHEMES or not parsed.host:
        raise OutboundRefused(url, "only http:// and https:// URLs with a host are fetched")
    return parsed


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def check_url(url: str, policy: OutboundPolicy) -> None:
    """Refuse `url` unless it is http(s) and its host resolves only to allowed addresses.

    For checks before any connection (a job's webhook, an S3 endpoint): the guarded
    transports check again on connecting. Blocking (DNS); see `check_url_async`.
    """
    parsed = parse_url(url)
    try:
        infos = socket.getaddrinfo(parsed.host, _port(parsed), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise OutboundRefused(url, f"its host {parsed.host} does not resolve") from None
    _vet_for(url, parsed.host, _addresses(infos), policy)


async def check_url_async(url: str, policy: OutboundPolicy) -> None:
    """`check_url` resolving without blocking the event loop."""
    parsed = parse_url(url)
    try:
        infos = await anyio.getaddrinfo(parsed.host, _port(parsed), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise OutboundRefused(url, f"its host {parsed.host} does not resolve") from None
    _vet_for(url, parsed.host, _addresses(infos), policy)


def _vet_for(url: str, host: str, addresses: list[str], policy: OutboundPolicy) -> None:
    try:
        vet(host, addresses, policy)
    except OutboundRefused as exc:
        raise OutboundRefused(url, exc.reason) from None


def _remaining(deadline: float, timeout: float | None, expired: type[Exception]) -> float:
    """`timeout` cut to what is left before `deadline`; `expired` once nothing is."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the fetch's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose every read and write ends by the fetch's deadline: a server sending
    a byte now and then cannot stretch a fetch past it."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _remaining(self._deadline, timeout,
                                                       httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _remaining(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        stream = self._stream.start_tls(
            ssl_context, server_hostname,
            _remaining(self._deadline, timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _AsyncDeadlineStream(httpcore.AsyncNetworkStream):
    """The async `_DeadlineStream`."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, _remaining(self._deadline, timeout,
                                                             httpcore.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, _remaining(self._deadline, timeout,
                                                    httpcore.WriteTimeout))

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        stream = await self._stream.start_tls(
            ssl_context, server_hostname,
            _remaining(self._deadline, timeout, httpcore.ConnectTimeout))
        return _AsyncDeadlineStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend connecting only to addresses the policy allows, everything
    done over its streams ending by `deadline` (a `time.monotonic()` value)."""

    def __init__(self, policy: OutboundPolicy, deadline: float) -> None:
        self._policy = policy
        self._deadline = deadline
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"could not resolve {host}") from exc
        error: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in vet(host, _addresses(infos), self._policy):
            left = _remaining(self._deadline, timeout, httpcore.ConnectTimeout)
            try:
                stream = self._backend.connect_tcp(address, port, left, local_address,
                                                   socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise error

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend connecting only to addresses the policy allows, each
    connection done within `deadline_s` of its start."""

    def __init__(self, policy: OutboundPolicy, deadline_s: float) -> None:
        self._policy = policy
        self._deadline_s = deadline_s
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"could not resolve {host}") from exc
        deadline = time.monotonic() + self._deadline_s
        error: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in vet(host, _addresses(infos), self._policy):
            left = _remaining(deadline, timeout, httpcore.ConnectTimeout)
            try:
                stream = await self._backend.connect_tcp(address, port, left, local_address,
                                                         socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _AsyncDeadlineStream(stream, deadline)
        raise error

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


@cache
def _ssl_context() -> Any:
    """One TLS context for every guarded transport (building one reads the CA bundle)."""
    return httpx.create_ssl_context()


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport, its pool on the guarded backend and never behind a proxy."""

    def __init__(self, policy: OutboundPolicy, deadline: float) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        self._pool = httpcore.ConnectionPool(ssl_context=_ssl_context(),
                                             network_backend=GuardedBackend(policy, deadline),
                                             **POOL_LIMITS)


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    """The async `GuardedTransport`: each request on a connection of its own, done within
    `deadline_s` (a connection is not kept for the next, so its deadline is the request's)."""

    def __init__(self, policy: OutboundPolicy, deadline_s: float) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(), network_backend=AsyncGuardedBackend(policy, deadline_s),
            **POOL_LIMITS | {"max_keepalive_connections": 0})


def guarded_client(policy: OutboundPolicy, deadline: float) -> httpx.Client:
    """A client for one fetch: redirects are not followed (the caller vets each hop) and
    nothing it does outlasts `deadline` (a `time.monotonic()` value)."""
    return httpx.Client(transport=GuardedTransport(policy, deadline), trust_env=False,
                        follow_redirects=False, timeout=max(0.0, deadline - time.monotonic()))


def guarded_async_client(policy: OutboundPolicy, timeout: float) -> httpx.AsyncClient:
    """A long-lived client (webhooks): no redirects, no proxies, only allowed addresses,
    each request over within `timeout` however slowly the other side answers."""
    return httpx.AsyncClient(transport=AsyncGuardedTransport(policy, timeout), trust_env=False,
                             follow_redirects=False, timeout=timeout)
