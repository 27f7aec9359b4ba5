"""A clock tests control."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from nulabpass.errors import InvalidInput

__all__ = ["FrozenClock"]


class FrozenClock:
    """A :class:`~nulabpass.ports.Clock` that stands still until moved.

    >>> clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    >>> clock.advance(days=30)
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        if start.utcoffset() is None:
            raise InvalidInput("FrozenClock needs an aware datetime.", code="clock.naive")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The frozen time."""
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (aware)."""
        if when.utcoffset() is None:
            raise InvalidInput("FrozenClock needs an aware datetime.", code="clock.naive")
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by ``delta`` or by ``timedelta(**kwargs)``; return the new time."""
        step = delta if delta is not None else timedelta(**kwargs)
        with self._lock:
            self._now += step
            return self._now
