"""Rate limiters: :class:`MemoryRateLimiter` here, ``SqlRateLimiter`` in the SQL store.

Both count attempts per key in fixed windows aligned to the Unix epoch, so every
process agrees where a window starts. The memory limiter counts in this process only:
give a host that runs several processes the SQL one
(``nulabpass.stores.sql.SqlRateLimiter``).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from nulabpass.errors import InvalidInput
from nulabpass.ports import RateDecision

__all__ = ["MemoryRateLimiter", "window_start"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(now: datetime, window: timedelta) -> datetime:
    """The start of the fixed window of length ``window`` that contains ``now``."""
    if window <= timedelta(0):
        raise InvalidInput("A rate-limit window must be positive.", code="rate_limit.window")
    return _EPOCH + ((now - _EPOCH) // window) * window


class MemoryRateLimiter:
    """A thread-safe :class:`~nulabpass.ports.RateLimiter` in this process's memory.

    Keeps one counter per key for the current window only; a key's counter is replaced
    when its next window begins, so memory stays proportional to the active keys.
    """

    def __init__(self) -> None:
        self._counts: dict[str, tuple[datetime, int]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, now: datetime, *, limit: int, window: timedelta) -> RateDecision:
        """Count one attempt under ``key`` unless ``limit`` were counted in this window."""
        start = window_start(now, window)
        with self._lock:
            started, count = self._counts.get(key, (start, 0))
            if started != start:
                count = 0
                if len(self._counts) > 10_000:
                    self._forget_before(start)
            if count >= limit:
                return RateDecision(False, start + window)
            self._counts[key] = (start, count + 1)
        return RateDecision(True)

    def _forget_before(self, start: datetime) -> None:
        for key in [k for k, (s, _) in self._counts.items() if s < start]:
            del self._counts[key]
