"""Domain challenges in the memory store (:class:`~nulabpass.ports.DomainChallengeRepository`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from nulabpass.domains._model import DomainChallenge
from nulabpass.errors import Conflict, NotFound, StaleWrite

if TYPE_CHECKING:
    from nulabpass.stores.memory import _Tx

__all__ = ["MemoryDomainChallenges"]


class MemoryDomainChallenges:
    """Challenges keyed by domain record id, written through the transaction's undo log."""

    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._rows: dict[str, DomainChallenge] = tx.state.domain_challenges

    def get(self, domain_id: str) -> DomainChallenge | None:
        return self._rows.get(domain_id)

    def add(self, challenge: DomainChallenge) -> None:
        if challenge.domain_id in self._rows:
            raise Conflict(
                f"The domain {challenge.domain} already has a challenge.",
                code="domain_challenge.exists",
            )
        self._tx.put(self._rows, challenge.domain_id, challenge)

    def update(self, challenge: DomainChallenge) -> DomainChallenge:
        current = self._rows.get(challenge.domain_id)
        if current is None:
            raise NotFound(
                f"The challenge of {challenge.domain} no longer exists.",
                code="domain_challenge.not_found",
            )
        if current.version != challenge.version:
            raise StaleWrite(
                f"The challenge of {challenge.domain} was changed by another request "
                f"(version {current.version}, this write was based on {challenge.version}). "
                "Reload it and try again.",
            )
        new = attrs.evolve(challenge, version=challenge.version + 1)
        self._tx.put(self._rows, challenge.domain_id, new)
        return new

    def delete(self, domain_id: str) -> None:
        self._tx.pop(self._rows, domain_id)

    def due(self, now: datetime, limit: int) -> list[DomainChallenge]:
        due = [
            c
            for c in self._rows.values()
            if c.verified_at is not None and c.next_check_at is not None and c.next_check_at <= now
        ]
        due.sort(key=_due_key)
        return due[:limit]


def _due_key(challenge: DomainChallenge) -> tuple[datetime, str]:
    return challenge.next_check_at or challenge.issued_at, challenge.domain_id
