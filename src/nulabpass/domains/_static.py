"""A :class:`~nulabpass.ports.TxtResolver` that answers from a table, for tests."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from nulabpass.domains._model import LookupStatus, TxtLookup

__all__ = ["StaticTxtResolver"]


class StaticTxtResolver:
    """Answers TXT lookups from records set by the test.

    ``publish`` adds a value at a name, ``remove`` takes a name's records away
    (NXDOMAIN), ``fail`` makes a name answer with a failure status (``SERVFAIL``,
    ``TIMEOUT``...) until ``publish`` or ``remove`` is called for it again. Names are
    compared without case and without a trailing dot. Safe to use from several threads.
    """

    def __init__(self, label: str = "static") -> None:
        self.label = label
        self._records: dict[str, list[bytes]] = {}
        self._failures: dict[str, LookupStatus] = {}
        self._lock = threading.Lock()
        self.queries: list[str] = []

    @staticmethod
    def _key(name: str) -> str:
        return name.rstrip(".").lower()

    def publish(self, name: str, *values: str | bytes) -> None:
        """Add TXT values at ``name``."""
        key = self._key(name)
        with self._lock:
            self._failures.pop(key, None)
            bucket = self._records.setdefault(key, [])
            bucket.extend(v.encode("utf-8") if isinstance(v, str) else v for v in values)

    def replace(self, name: str, values: Iterable[str | bytes]) -> None:
        """Make ``values`` the only TXT values at ``name``."""
        self.remove(name)
        self.publish(name, *values)

    def remove(self, name: str) -> None:
        """Remove every record at ``name``: it answers NXDOMAIN."""
        key = self._key(name)
        with self._lock:
            self._records.pop(key, None)
            self._failures.pop(key, None)

    def fail(self, name: str, status: LookupStatus = LookupStatus.SERVFAIL) -> None:
        """Make ``name`` answer with ``status`` instead of its records."""
        if status is LookupStatus.ANSWER:
            raise ValueError("use publish() for answers")
        with self._lock:
            self._failures[self._key(name)] = status

    def lookup(self, name: str) -> TxtLookup:
        """Answer from the table."""
        key = self._key(name)
        with self._lock:
            self.queries.append(key)
            failure = self._failures.get(key)
            records = tuple(self._records.get(key, ()))
        if failure is not None:
            return TxtLookup(
                name=name, status=failure, resolver=self.label, detail=f"simulated {failure}"
            )
        if key not in self._records:
            return TxtLookup(
                name=name, status=LookupStatus.NXDOMAIN, resolver=self.label, detail="no such name"
            )
        status = LookupStatus.ANSWER if records else LookupStatus.NODATA
        return TxtLookup(name=name, status=status, records=records, resolver=self.label)
