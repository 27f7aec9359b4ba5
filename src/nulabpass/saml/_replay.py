"""In-memory replay cache (per process)."""

from __future__ import annotations

import heapq
import threading
from datetime import datetime

__all__ = ["MemoryReplayCache"]


class MemoryReplayCache:
    """Remembers assertion ids until they expire, in this process only.

    A host running several processes or machines must use the SQL implementation
    instead: a response replayed to another process would otherwise be accepted again.
    """

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, datetime] = {}
        self._expiry: list[tuple[datetime, str]] = []
        self._max = max_entries

    def remember(self, key: str, *, expires_at: datetime, now: datetime) -> bool:
        """Record ``key`` until ``expires_at``; ``False`` if it is already recorded."""
        with self._lock:
            while self._expiry and self._expiry[0][0] <= now:
                when, old = heapq.heappop(self._expiry)
                if self._entries.get(old) == when:
                    del self._entries[old]
            current = self._entries.get(key)
            if current is not None and current > now:
                return False
            if len(self._entries) >= self._max:
                # Refusing is safer than forgetting an unexpired id.
                return False
            self._entries[key] = expires_at
            heapq.heappush(self._expiry, (expires_at, key))
            return True
