"""Who is calling: API keys from the config, a file or an environment variable.

A job belongs to the key that submitted it. Jobs record the key's fingerprint, never
the key, so the job store holds no credential.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from serve_app.jobs.settings import ApiKeySpec, JobSettings


@dataclass(frozen=True)
class Caller:
    """The identity a request acts as."""

    #: fingerprint of the caller's key; None when the API is open
    key_id: str | None
    admin: bool = False
    #: the client's address, for rate limits when there are no keys
    address: str = "unknown"

    @property
    def scope(self) -> str | None:
        """The owner whose jobs this caller may see and change; None means all."""
        return None if self.admin else self.key_id

    @property
    def limiter_id(self) -> str:
        return self.key_id or f"address:{self.address}"


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def parse_key_lines(text: str, source: str) -> list[ApiKeySpec]:
    """`<key>` or `<key> admin` per line (or comma-separated entry); `#` starts a comment."""
    specs = []
    for entry in re.split(r"[\n,]", text):
        words = entry.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1] != "admin"):
            raise ValueError(f"{source}: an entry must be '<key>' or '<key> admin'")
        try:
            specs.append(ApiKeySpec(key=words[0], admin=len(words) == 2))
        except ValidationError as exc:
            # pydantic would echo the key itself; name the source instead
            raise ValueError(f"{source}: {exc.errors()[0]['msg']}") from None
    return specs


def keys_from_env(name: str | None, setting: str,
                  environ: Mapping[str, str] = os.environ) -> list[ApiKeySpec]:
    """The keys in environment variable `name` (named by `setting`), none without one."""
    if not name:
        return []
    value = environ.get(name)
    if not value:
        raise ValueError(f"{setting} names {name}, which is not set in the ingress's "
                         "environment")
    return parse_key_lines(value, f"environment variable {name}")


class KeyRing:
    """The accepted keys; empty means the API is open."""

    def __init__(self, specs: list[ApiKeySpec]) -> None:
        self._keys = [(spec.key.encode(), fingerprint(spec.key), spec.admin) for spec in specs]

    @classmethod
    def load(cls, settings: JobSettings, environ: Mapping[str, str] = os.environ) -> KeyRing:
        """Client keys from all three sources; refuses placeholders and missing sources."""
        specs = list(settings.api_keys)
        if settings.api_keys_file:
            path = Path(settings.api_keys_file).expanduser()
            if not path.is_file():
                raise ValueError(f"jobs.api_keys_file {path} does not exist")
            source = f"jobs.api_keys_file {path}"
            specs += parse_key_lines(path.read_text(), source)
        return cls(specs + keys_from_env(settings.api_keys_env, "jobs.api_keys_env", environ))

    @property
    def open(self) -> bool:
        return not self._keys

    def identify(self, authorization: str, address: str) -> Caller | None:
        """The caller for an `Authorization` header (`Bearer <key>` or `<key>`); None for
        a wrong or missing key while keys are configured."""
        if self.open:
            return Caller(key_id=None, address=address)
        header = authorization.strip()
        token = (header[7:].strip() if header.lower().startswith("bearer ") else header).encode()
        # Compare against every key so the time taken says nothing about which matched.
        found = None
        for key, key_id, admin in self._keys:
            if hmac.compare_digest(token, key):
                found = Caller(key_id=key_id, admin=admin, address=address)
        return found
