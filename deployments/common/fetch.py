"""Fetch caller inputs and model weights from URIs, with size and time limits (writing
to the caller's bucket is `uploads.py`).

Inputs may be `https://`, `http://`, `s3://bucket/key` or `data:` URIs (or bare
base64). They are the client's choice, so they go through the outbound policy
(deployments/common/outbound.py): http(s) only to allowed addresses, every redirect hop
re-checked, the whole fetch within a deadline; `s3://` with the request's RunPod-style
`s3Config` (its `endpointUrl` checked like a URL), or with the server's own credentials
(boto3's default chain; `AWS_ENDPOINT_URL` selects an S3-compatible server) only for the
buckets the policy names.

Weights are the operator's choice and are fetched without that policy: local paths,
`package://pkg.module/relative/path` resources shipped inside this distribution,
`s3://` with the server's credentials, or `https://`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.resources
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from deployments.common.errors import InputError, TooLarge
from deployments.common.outbound import (
    OutboundPolicy,
    OutboundRefused,
    check_url,
    guarded_client,
    parse_url,
)

DEFAULT_TIMEOUT_S = 30.0
IDENTITY = {"accept-encoding": "identity"}
#: where weights fetched from s3:// or https:// URIs are kept, one copy per node (the
#: system's temporary directory: TMPDIR where set). Weights are configured by URI in each
#: family's args; a local path or package:// URI is read in place.
WEIGHTS_CACHE_DIR = Path(tempfile.gettempdir()) / "rsp-weights"


@dataclass(frozen=True)
class S3Config:
    """RunPod's `s3Config`: the caller's bucket and credentials."""

    access_id: str
    access_secret: str
    bucket_name: str
    endpoint_url: str | None = None

    @classmethod
    def from_request(cls, raw: dict[str, Any] | None) -> S3Config | None:
        if not raw:
            return None
        missing = [k for k in ("accessId", "accessSecret", "bucketName") if not raw.get(k)]
        if missing:
            raise InputError(f"s3Config is missing {', '.join(missing)}")
        return cls(raw["accessId"], raw["accessSecret"], raw["bucketName"], raw.get("endpointUrl"))


def s3_client(config: S3Config | None = None) -> Any:
    """A boto3 S3 client: the caller's credentials when given, else the default chain."""
    import boto3

    if config is None:
        return boto3.client("s3")
    return boto3.client(
        "s3",
        aws_access_key_id=config.access_id,
        aws_secret_access_key=config.access_secret,
        endpoint_url=config.endpoint_url,
    )


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if not parsed.netloc or not key:
        raise InputError(f"s3 URI must look like s3://bucket/key, got {uri!r}")
    return parsed.netloc, key


def _too_large(what: str, max_bytes: int) -> TooLarge:
    return TooLarge(f"{what} is larger than the limit of {max_bytes} bytes")


def decode_base64(data: str, max_bytes: int, what: str = "base64 data") -> bytes:
    """Decode base64 (standard or URL-safe), refusing oversize data before decoding it."""
    if len(data) * 3 // 4 > max_bytes:
        raise _too_large(what, max_bytes)
    try:
        compact = "".join(data.split())  # line-wrapped base64 is common
        urlsafe = "-" in compact or "_" in compact
        return base64.b64decode(compact, altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{what} is not valid base64: {exc}") from exc


def _fetch_http(url: str, max_bytes: int, policy: OutboundPolicy, timeout_s: float) -> bytes:
    """The body behind `url`, following at most `policy.max_redirects` redirects, each
    hop vetted, all of it within `timeout_s`. Errors name the URL and the HTTP status at
    most: a connection's own error (refused, reset, timed out) would tell the state of a
    port, and a body what the server holds."""
    deadline = time.monotonic() + timeout_s
    hop = url
    with guarded_client(policy, deadline) as client:
        for _ in range(policy.max_redirects + 1):
            try:
                # identity: a compressed body could inflate far past max_bytes in one chunk
                with client.stream("GET", parse_url(hop), headers=IDENTITY) as response:
                    if response.next_request is None:
                        return _read_body(url, response, max_bytes, deadline, timeout_s)
                    hop = str(response.next_request.url)
            except OutboundRefused as exc:
                # each hop is vetted: by scheme here, by address on connecting
                target = hop if hop == url else f"the redirect from {url} to {hop}"
                raise OutboundRefused(target, exc.reason) from None
            except httpx.HTTPError:
                within = f" within {timeout_s:g} s" if time.monotonic() >= deadline else ""
                raise InputError(f"could not fetch {url}{within}") from None
    raise InputError(f"fetching {url} was redirected more than {policy.max_redirects} times, "
                     "the limit of outbound.max_redirects")


def _read_body(url: str, response: httpx.Response, max_bytes: int, deadline: float,
               timeout_s: float) -> bytes:
    if response.status_code >= 400:
        raise InputError(f"fetching {url} failed with HTTP {response.status_code}")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(url, max_bytes)
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(url, max_bytes)
        if time.monotonic() >= deadline:  # each read also ends by the deadline (outbound.py)
            raise InputError(f"could not fetch {url} within {timeout_s:g} s")
        chunks.append(chunk)
    return b"".join(chunks)


def caller_s3_client(bucket: str, uri: str, policy: OutboundPolicy,
                     s3: S3Config | None) -> Any:
    """A client for a client-named bucket: the caller's credentials (`s3Config`, its
    endpoint checked by the policy), or the server's for buckets the policy opens to it."""
    if s3 is None:
        if bucket not in policy.server_s3_buckets:
            raise OutboundRefused(uri, f"bucket {bucket} is read and written only with the "
                                  "job's s3Config, or with the server's credentials once "
                                  "listed in outbound.server_s3_buckets")
        return s3_client()
    if s3.endpoint_url:
        try:
            check_url(s3.endpoint_url, policy)
        except OutboundRefused as exc:
            raise OutboundRefused(f"s3Config.endpointUrl {s3.endpoint_url}", exc.reason) \
                from None
    return s3_client(s3)


def _fetch_s3(uri: str, max_bytes: int, policy: OutboundPolicy, s3: S3Config | None) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = _split_s3(uri)
    client = caller_s3_client(bucket, uri, policy, s3)
    try:
        obj = client.get_object(Bucket=bucket, Key=key)
        if obj.get("ContentLength", 0) > max_bytes:
            raise _too_large(uri, max_bytes)
        return obj["Body"].read(max_bytes + 1)
    except ClientError as exc:  # S3's answer (NoSuchKey, AccessDenied): the caller's to know
        raise InputError(f"could not read {uri}: {exc}") from exc
    except BotoCoreError:  # not reached, timed out...: as for URLs, no port state
        raise InputError(f"could not read {uri}") from None


def fetch_input(
    ref: str,
    max_bytes: int,
    policy: OutboundPolicy,
    timeout_s: float | None = None,
    s3: S3Config | None = None,
) -> bytes:
    """Bytes behind a caller-supplied reference: an http(s)/s3/data URI or bare base64.

    An http(s) fetch ends by the smaller of `timeout_s` and `policy.deadline_s`.
    """
    if not isinstance(ref, str) or not ref:
        raise InputError("the input reference must be a non-empty string")
    scheme = urlparse(ref).scheme.lower() if "://" in ref or ref.startswith("data:") else ""
    if scheme in {"http", "https"}:
        data = _fetch_http(ref, max_bytes, policy, min(timeout_s or policy.deadline_s,
                                                       policy.deadline_s))
    elif scheme == "s3":
        data = _fetch_s3(ref, max_bytes, policy, s3)
    elif scheme == "data":
        header, _, payload = ref.partition(",")
        if ";base64" not in header:
            raise InputError("data: URIs must be base64-encoded")
        data = decode_base64(payload, max_bytes, "data URI")
    elif scheme:
        raise InputError(f"unsupported URL scheme {scheme!r}: use https://, s3:// or data:")
    else:
        data = decode_base64(ref, max_bytes)
    if len(data) > max_bytes:
        raise _too_large("input", max_bytes)
    if not data:
        raise InputError("the input is empty")
    return data


def resolve_weights(uri: str) -> Path:
    """A local file for a weights URI: a path, `package://`, `s3://` or `https://`.

    Remote weights are downloaded once into a cache keyed by the URI.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "package":
        resource = importlib.resources.files(parsed.netloc).joinpath(parsed.path.lstrip("/"))
        with importlib.resources.as_file(resource) as path:
            if not Path(path).exists():
                raise FileNotFoundError(f"no packaged weights at {uri}")
            return Path(path)
    if parsed.scheme in {"", "file"}:
        path = Path(parsed.path if parsed.scheme else uri).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no weights at {path}")
        return path
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    target = WEIGHTS_CACHE_DIR / key / Path(parsed.path).name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    if parsed.scheme == "s3":
        bucket, key = _split_s3(uri)
        s3_client().download_file(bucket, key, str(partial))
    elif parsed.scheme in {"http", "https"}:
        with httpx.stream("GET", uri, timeout=DEFAULT_TIMEOUT_S, follow_redirects=True) as r:
            r.raise_for_status()
            with partial.open("wb") as out:
                for chunk in r.iter_bytes():
                    out.write(chunk)
    else:
        raise ValueError(f"unsupported weights URI scheme {parsed.scheme!r} in {uri!r}")
    partial.rename(target)
    return target


def resolve_weights_dir(uri: str) -> Path:
    """A local directory for a URI naming a directory (a path, or an `s3://` prefix)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3":
        path = resolve_weights(uri)
        if not path.is_dir():
            raise NotADirectoryError(f"{uri} is not a directory")
        return path
    bucket, prefix = _split_s3(uri)
    prefix = prefix.rstrip("/") + "/"
    target = WEIGHTS_CACHE_DIR / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if target.exists():
        return target
    WEIGHTS_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=WEIGHTS_CACHE_DIR))
    client = s3_client()
    found = False
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found = True
            dest = staging / obj["Key"][len(prefix):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(dest))
    if not found:
        shutil.rmtree(staging)
        raise FileNotFoundError(f"no objects under {uri}")
    staging.rename(target)
    return target

