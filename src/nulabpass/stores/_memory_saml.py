"""SAML sign-in state in the memory store (one process only)."""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import TYPE_CHECKING

from nulabpass._saml_model import PendingLogin, SamlConfiguration

if TYPE_CHECKING:
    from nulabpass.stores.memory import _Tx

__all__ = ["MemorySamlLoginRepository", "SamlState"]


class SamlState:
    """The SAML tables of one memory store."""

    def __init__(self) -> None:
        self.configs: dict[str, SamlConfiguration] = {}
        self.requests: dict[str, PendingLogin] = {}
        self.request_expiry: list[tuple[datetime, str]] = []
        self.assertions: dict[str, datetime] = {}
        self.assertion_expiry: list[tuple[datetime, str]] = []


class MemorySamlLoginRepository:
    """SAML sign-in state (:class:`~nulabpass.ports.SamlLoginRepository`)."""

    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._x: SamlState = tx.state.saml

    def get_config(self, org_id: str) -> SamlConfiguration | None:
        return self._x.configs.get(org_id)

    def put_config(self, config: SamlConfiguration) -> None:
        self._tx.put(self._x.configs, config.org_id, config)

    def add_request(self, pending: PendingLogin) -> None:
        self._tx.put(self._x.requests, pending.state_hash, pending)
        # The heap only guides purging; a stale entry is skipped when popped.
        heapq.heappush(self._x.request_expiry, (pending.expires_at, pending.state_hash))

    def take_request(self, state_hash: str, now: datetime) -> PendingLogin | None:
        self._purge(self._x.request_expiry, self._x.requests, now)
        pending = self._x.requests.get(state_hash)
        if pending is None:
            return None
        self._tx.pop(self._x.requests, state_hash)
        return pending if pending.expires_at > now else None

    def remember(self, key: str, *, expires_at: datetime, now: datetime) -> bool:
        self._purge(self._x.assertion_expiry, self._x.assertions, now)
        current = self._x.assertions.get(key)
        if current is not None and current > now:
            return False
        self._tx.put(self._x.assertions, key, expires_at)
        heapq.heappush(self._x.assertion_expiry, (expires_at, key))
        return True

    def _purge(
        self,
        heap: list[tuple[datetime, str]],
        table: dict[str, PendingLogin] | dict[str, datetime],
        now: datetime,
    ) -> None:
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            current = table.get(key)
            expiry = current.expires_at if isinstance(current, PendingLogin) else current
            if expiry is not None and expiry <= now:
                self._tx.pop(table, key)
