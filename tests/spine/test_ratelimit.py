"""Per-caller, per-route-class request rates (no Ray needed)."""

from __future__ import annotations

import time

import pytest

from serve_app.api.errors import TooManyRequests
from serve_app.api.ratelimit import RateLimiter
from serve_app.jobs.settings import RateLimits


def test_a_caller_past_its_rate_gets_retry_after_and_others_do_not() -> None:
    limiter = RateLimiter(RateLimits(run=3, window_s=10))
    for _ in range(3):
        limiter.check("run", "alice")
    with pytest.raises(TooManyRequests) as refused:
        limiter.check("run", "alice")
    assert "3 run requests per 10 s" in str(refused.value)
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 10
    limiter.check("run", "bob")  # its own budget
    limiter.check("status", "alice")  # another route class


def test_a_window_boundary_does_not_reset_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """One /run a minute means one within any 60 s, wherever the clock's minutes fall (a
    window-counting approximation let the second through just after a boundary)."""
    clock = [60 * 16_667 - 0.1]  # just before a multiple of 60 s
    monkeypatch.setattr(time, "time", lambda: clock[0])
    limiter = RateLimiter(RateLimits(run=1, window_s=60))
    limiter.check("run", "alice")
    clock[0] += 0.2
    with pytest.raises(TooManyRequests) as refused:
        limiter.check("run", "alice")
    assert 59 <= int(refused.value.headers["Retry-After"]) <= 60
    clock[0] += 60
    limiter.check("run", "alice")  # a whole window after the first


def test_limits_can_be_switched_off() -> None:
    limiter = RateLimiter(RateLimits(enabled=False, purge_queue=1))
    for _ in range(5):
        limiter.check("purge_queue", "alice")
