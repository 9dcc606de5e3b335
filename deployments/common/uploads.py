"""Write a job's outputs to the caller's bucket (RunPod's `s3Config`) and hand back
presigned GET URLs.

The bucket and endpoint are the client's choice, so the client goes through the same
outbound policy as fetching (`fetch.caller_s3_client`): the endpoint is checked like a
URL, and the server's own credentials are used only for the buckets the policy names.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from deployments.common.fetch import S3Config, caller_s3_client
from deployments.common.outbound import OutboundPolicy

DEFAULT_EXPIRES_S = 7 * 24 * 3600


class Upload(NamedTuple):
    """One object to put: its key under the job's prefix, its bytes and content type."""

    key: str
    data: bytes
    content_type: str


def job_prefix(base: str, job_id: str) -> str:
    """`base/<job id>/`, the id reduced to characters safe in any S3 key."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", job_id) or "job"
    return f"{base.strip('/')}/{safe}/" if base.strip("/") else f"{safe}/"


def upload_output(s3: S3Config, policy: OutboundPolicy, key: str, data: bytes,
                  content_type: str, expires_s: int = DEFAULT_EXPIRES_S) -> str:
    """Put `data` in the caller's bucket and return a presigned GET URL for it."""
    client = caller_s3_client(s3.bucket_name, f"s3://{s3.bucket_name}/{key}", policy, s3)
    client.put_object(Bucket=s3.bucket_name, Key=key, Body=data, ContentType=content_type)
    return client.generate_presigned_url(
        "get_object", Params={"Bucket": s3.bucket_name, "Key": key}, ExpiresIn=expires_s
    )


def upload_outputs(s3: S3Config, policy: OutboundPolicy, prefix: str,
                   uploads: dict[str, Upload], expires_s: int = DEFAULT_EXPIRES_S
                   ) -> dict[str, str]:
    """Put every upload under `prefix` at the same time; their presigned URLs by name."""
    if not uploads:
        return {}
    with ThreadPoolExecutor(max_workers=len(uploads)) as pool:
        futures = {name: pool.submit(upload_output, s3, policy, prefix + u.key, u.data,
                                     u.content_type, expires_s)
                   for name, u in uploads.items()}
        return {name: future.result() for name, future in futures.items()}
