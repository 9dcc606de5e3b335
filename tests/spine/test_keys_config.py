"""Where API keys come from, and keys that must not be accepted (no Ray needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from serve_app.api.keys import KeyRing, fingerprint
from serve_app.jobs.settings import JobSettings

GOOD = "k-3f9a1c7e5b2d8046"
ADMIN = "a-7c2e9b41d0f6a385"


@pytest.mark.parametrize("key", ["changeme", "your-api-key-here", "<API_KEY>", "x" * 32,
                                 "${RUNPOD_API_KEY}", "short-1", "aaaaaaaaaaaaaaaaaaaab"])
def test_placeholder_and_short_keys_are_refused_at_start(key: str) -> None:
    with pytest.raises(ValidationError, match="placeholder or too short"):
        JobSettings(api_keys=[key])


def test_keys_from_config_file_and_environment_are_merged(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# tenants\n{GOOD}\n{ADMIN} admin\n")
    settings = JobSettings(api_keys=["c-91d3e7a2f4b60c58"], api_keys_file=str(keys_file),
                           api_keys_env="RSP_KEYS")
    ring = KeyRing.load(settings, {"RSP_KEYS": "e-5a8c0f3d7e1b9264, e-0b6d2f8a4c7e1395"})
    assert not ring.open
    tenant = ring.identify(f"Bearer {GOOD}", "10.0.0.1")
    assert tenant is not None and not tenant.admin and tenant.scope == fingerprint(GOOD)
    admin = ring.identify(ADMIN, "10.0.0.1")
    assert admin is not None and admin.admin and admin.scope is None
    for key in ("c-91d3e7a2f4b60c58", "e-0b6d2f8a4c7e1395"):
        assert ring.identify(f"bearer {key}", "x") is not None
    assert ring.identify("Bearer nope", "x") is None and ring.identify("", "x") is None


def test_a_key_source_that_is_missing_or_holds_a_placeholder_stops_the_start(
        tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        KeyRing.load(JobSettings(api_keys_file=str(tmp_path / "absent")), {})
    with pytest.raises(ValueError, match="not set"):
        KeyRing.load(JobSettings(api_keys_env="RSP_KEYS"), {})
    with pytest.raises(ValueError, match="RSP_KEYS: .*placeholder") as refused:
        KeyRing.load(JobSettings(api_keys_env="RSP_KEYS"), {"RSP_KEYS": "changeme"})
    assert "changeme" not in str(refused.value)  # the error does not echo the key


def test_an_open_api_identifies_callers_by_address() -> None:
    caller = KeyRing.load(JobSettings(), {}).identify("", "10.1.2.3")
    assert caller is not None and caller.scope is None and caller.limiter_id == "address:10.1.2.3"


def test_the_key_is_not_in_the_settings_repr() -> None:
    assert GOOD not in repr(JobSettings(api_keys=[GOOD]))
