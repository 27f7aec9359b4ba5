"""Outbox messages: emails and domain events written with the change that caused them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime

import attrs

__all__ = ["OutboxKind", "OutboxMessage"]

JsonScalar = str | int | bool | None


class OutboxKind(enum.StrEnum):
    """What an outbox row carries."""

    EMAIL = "email"
    EVENT = "event"


@attrs.frozen(slots=True)
class OutboxMessage:
    """A durable message to dispatch after commit, at least once.

    ``topic`` is the email template name or the domain event name
    (``account.deactivated``). ``idempotency_key`` is unique: it is the Message-ID of
    an email and the key a listener uses to ignore a redelivery. ``payload`` holds no
    secrets: tokens are derived again at dispatch time from the host's secret key.
    """

    id: str
    kind: OutboxKind
    topic: str
    scope: str
    payload: Mapping[str, JsonScalar]
    idempotency_key: str
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    dispatched_at: datetime | None = None
    last_error: str | None = None
