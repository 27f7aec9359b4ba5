"""Clocks: the only place nulabpass reads the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["SystemClock"]


class SystemClock:
    """The real time, as an aware UTC datetime."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)
