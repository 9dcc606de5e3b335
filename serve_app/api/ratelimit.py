"""Per-caller request rates by route class, answered with 429 and `Retry-After`."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from serve_app.api.errors import TooManyRequests
from serve_app.jobs.settings import RateLimits

#: the route classes RateLimits names
ROUTE_CLASSES = ("run", "runsync", "status", "cancel", "purge_queue", "direct", "other")


class RateLimiter:
    """In-process counters: each ingress replica enforces the limits on what it serves."""

    def __init__(self, settings: RateLimits) -> None:
        self._enabled = settings.enabled
        self._items = {c: RateLimitItemPerSecond(getattr(settings, c), settings.window_s)
                       for c in ROUTE_CLASSES}
        # A moving window (each hit's time kept) is exact: limits' sliding window counter
        # floors the previous window's weighted count, so a limit of 1 let a second hit
        # through just after a window boundary.
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, route_class: str, caller_id: str) -> None:
        """Count one request; raise TooManyRequests when it is over the limit."""
        if not self._enabled:
            return
        item = self._items[route_class]
        if self._limiter.hit(item, route_class, caller_id):
            return
        reset_at = self._limiter.get_window_stats(item, route_class, caller_id).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise TooManyRequests(
            f"rate limit of {item.amount} {route_class} requests per {item.multiples} s "
            f"exceeded; retry after {retry_after} s", retry_after_s=retry_after)
