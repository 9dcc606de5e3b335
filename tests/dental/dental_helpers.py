"""Helpers shared by the dental tests."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image


def png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=90)
    return out.getvalue()


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_id: str = "test-access-id"
    access_secret: str = "test-access-secret"

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_id,
                            aws_secret_access_key=self.access_secret, region_name="us-east-1")

    def s3_config(self, bucket: str) -> dict[str, str]:
        """The RunPod-style `s3Config` of a job."""
        return {"accessId": self.access_id, "accessSecret": self.access_secret,
                "bucketName": bucket, "endpointUrl": self.endpoint}


#: the application of the HTTP tests (conftest.py `dental_base`): its Serve name and prefix
DENTAL_APP = "dental-http"
DENTAL_PREFIX = "/dentalapp"
#: the bucket that app reads with the server's own credentials (outbound.server_s3_buckets)
SERVER_BUCKET = "dental-server-own"
