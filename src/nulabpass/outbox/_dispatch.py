"""Dispatching the outbox after commit: at least once, with idempotency keys.

Theory of operation
-------------------
A dispatcher claims due messages in a short transaction and leases them (moves their
next attempt ``outbox_lease`` ahead), then delivers each outside any transaction, so a
slow SMTP server never holds a database lock. Success marks the message dispatched; a
failure schedules a retry with exponential backoff. A crash between delivery and the
mark only means the lease runs out and the message is delivered again: receivers drop
the duplicate by its idempotency key (emails carry it as their Message-ID).

Tokens are not in the outbox. For an invitation or conversion email the dispatcher
reloads the record, derives the token from the host's secret key and the record's
current nonce, and skips the email when the record is no longer pending or has been
re-issued (a resend made the old email obsolete).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import attrs

from nulabpass._runtime import Runtime
from nulabpass._tokens import derive_token
from nulabpass.errors import NulabPassError, TransientError
from nulabpass.mail import MailRejected, TemplateCatalog, render_email
from nulabpass.outbox._model import JsonScalar, OutboxKind, OutboxMessage
from nulabpass.ports import Mailer

__all__ = ["DispatchReport", "DomainEvent", "Listener", "OutboxAPI"]

_log = logging.getLogger("nulabpass.outbox")

_TOKEN_FIELDS = ("token_kind", "token_record", "token_nonce")
_BASE_BACKOFF = timedelta(seconds=30)


@attrs.frozen(slots=True)
class DomainEvent:
    """A fact the host reacts to (end sessions of a deactivated account...).

    ``key`` is stable across redeliveries: listeners use it to ignore duplicates.
    """

    key: str
    topic: str
    scope: str
    payload: Mapping[str, JsonScalar]
    occurred_at: datetime


Listener = Callable[[DomainEvent], None]


@attrs.frozen(slots=True)
class DispatchReport:
    """What one :meth:`OutboxAPI.dispatch_pending` call did."""

    delivered: int = 0
    retrying: int = 0
    skipped: int = 0
    rejected: int = 0


class OutboxAPI:
    """Delivers emails and domain events written by committed actions."""

    def __init__(
        self, rt: Runtime, mailer: Mailer | None, catalog: TemplateCatalog | None = None
    ) -> None:
        self._rt = rt
        self._mailer = mailer
        self._catalog = catalog
        self._listeners: list[tuple[str, Listener]] = []

    def subscribe(self, topic: str, listener: Listener) -> None:
        """Call ``listener`` for every domain event of ``topic`` (``"*"``: all topics).

        Listeners run after commit and may see an event more than once; an exception
        makes the event retry later.
        """
        self._listeners.append((topic, listener))

    def pending_count(self) -> int:
        """How many messages wait for delivery."""
        with self._rt.store.transaction() as uow:
            return uow.outbox.pending_count()

    def dispatch_pending(self, *, limit: int = 100) -> DispatchReport:
        """Deliver up to ``limit`` due messages; return what happened."""
        now = self._rt.now()
        with self._rt.store.transaction() as uow:
            claimed = uow.outbox.claim_due(now, limit)
            for message in claimed:
                uow.outbox.mark_failed(
                    message.id,
                    attempts=message.attempts,
                    next_attempt_at=now + self._rt.config.outbox_lease,
                    error=message.last_error or "",
                )
        report = DispatchReport()
        for message in claimed:
            report = self._deliver_one(message, report)
        return report

    def _deliver_one(self, message: OutboxMessage, report: DispatchReport) -> DispatchReport:
        try:
            if message.kind is OutboxKind.EMAIL:
                sent = self._send_email(message)
            else:
                self._publish(message)
                sent = True
        except MailRejected as exc:
            _log.warning("email %s rejected permanently: %s", message.id, exc.code)
            self._finish(message, error=f"rejected: {exc.code}")
            return attrs.evolve(report, rejected=report.rejected + 1)
        except Exception as exc:
            code = exc.code if isinstance(exc, NulabPassError) else type(exc).__name__
            self._retry(message, code)
            return attrs.evolve(report, retrying=report.retrying + 1)
        self._finish(message, error=None if sent else "skipped: superseded")
        if sent:
            return attrs.evolve(report, delivered=report.delivered + 1)
        return attrs.evolve(report, skipped=report.skipped + 1)

    def _finish(self, message: OutboxMessage, *, error: str | None) -> None:
        with self._rt.store.transaction() as uow:
            if error is not None:
                uow.outbox.mark_failed(
                    message.id,
                    attempts=message.attempts + 1,
                    next_attempt_at=message.next_attempt_at,
                    error=error,
                )
            uow.outbox.mark_dispatched(message.id, self._rt.now())

    def _retry(self, message: OutboxMessage, code: str) -> None:
        attempts = message.attempts + 1
        delay = min(
            _BASE_BACKOFF * (2 ** min(attempts - 1, 20)), self._rt.config.outbox_max_backoff
        )
        _log.info(
            "delivery of %s failed (%s); attempt %d, retry in %s",
            message.id,
            code,
            attempts,
            delay,
        )
        with self._rt.store.transaction() as uow:
            uow.outbox.mark_failed(
                message.id, attempts=attempts, next_attempt_at=self._rt.now() + delay, error=code
            )

    def _publish(self, message: OutboxMessage) -> None:
        event = DomainEvent(
            key=message.idempotency_key,
            topic=message.topic,
            scope=message.scope,
            payload=message.payload,
            occurred_at=message.created_at,
        )
        for topic, listener in self._listeners:
            if topic in ("*", message.topic):
                listener(event)

    def _send_email(self, message: OutboxMessage) -> bool:
        if self._mailer is None:
            raise TransientError(
                "No mailer is configured; emails wait in the outbox until one is.",
                code="mail.no_mailer",
            )
        payload = dict(message.payload)
        params: dict[str, JsonScalar] = {
            k: v
            for k, v in payload.items()
            if k not in ("to", "language", "timezone", *_TOKEN_FIELDS)
        }
        if payload.get("token_kind"):
            token = self._token_for(payload)
            if token is None:
                return False
            params["token"] = token
        email = render_email(
            message.topic,
            to=str(payload["to"]),
            language=str(payload.get("language") or self._rt.config.default_language),
            timezone=str(payload.get("timezone") or self._rt.config.default_timezone),
            params=params,
            base_url=self._rt.config.base_url,
            message_id=self._message_id(message.idempotency_key),
            catalog=self._catalog,
        )
        self._mailer.send(email)
        return True

    def _message_id(self, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
        host = urlsplit(self._rt.config.base_url).hostname or "nulabpass.invalid"
        return f"<{digest}@{host}>"

    def _token_for(self, payload: Mapping[str, JsonScalar]) -> str | None:
        kind = str(payload["token_kind"])
        record_id = str(payload["token_record"])
        nonce = str(payload["token_nonce"])
        with self._rt.store.transaction() as uow:
            record = (
                uow.invitations.get(record_id)
                if kind == "invitation"
                else uow.conversions.get(record_id)
            )
        if record is None or record.status.value != "pending" or record.nonce != nonce:
            return None
        return derive_token(self._rt.secret_key, kind, record_id, nonce)
