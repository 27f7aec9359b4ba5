"""A billing provider double that signs and checks webhooks like a real one."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from datetime import datetime

from nulabpass.errors import InvalidInput, PermissionDenied
from nulabpass.ports import BillingEvent

__all__ = ["FakeBillingProvider"]

_HEADER = "x-fake-billing-signature"


class FakeBillingProvider:
    """Implements :class:`~nulabpass.ports.BillingProvider` with HMAC-SHA256-signed JSON.

    :meth:`webhook` produces the body and headers a provider would POST for an event;
    :meth:`parse_webhook` checks the signature in constant time and parses the body.
    """

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _sign(self, body: bytes) -> str:
        return hmac.new(self._secret, body, hashlib.sha256).hexdigest()

    def webhook(self, event: BillingEvent) -> tuple[bytes, dict[str, str]]:
        """The signed webhook for ``event``."""
        body = json.dumps(
            {
                "id": event.id,
                "org_id": event.org_id,
                "kind": event.kind,
                "occurred_at": event.occurred_at.isoformat(),
                "plan_name": event.plan_name,
                "period_ends_at": event.period_ends_at.isoformat()
                if event.period_ends_at
                else None,
                "seats": event.seats,
                "start_now": event.start_now,
            },
            sort_keys=True,
        ).encode("utf-8")
        return body, {_HEADER: self._sign(body)}

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> BillingEvent:
        """Check the signature, then parse the event."""
        given = {k.lower(): v for k, v in headers.items()}.get(_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8"), self._sign(body).encode("utf-8")):
            raise PermissionDenied(
                "The billing webhook's signature does not match; it was not sent by the "
                "billing provider or was altered.",
                code="billing.signature_invalid",
            )
        try:
            data = json.loads(body)
            return BillingEvent(
                id=str(data["id"]),
                org_id=str(data["org_id"]),
                kind=str(data["kind"]),
                occurred_at=datetime.fromisoformat(data["occurred_at"]),
                plan_name=data.get("plan_name"),
                period_ends_at=datetime.fromisoformat(data["period_ends_at"])
                if data.get("period_ends_at")
                else None,
                seats=data.get("seats"),
                start_now=bool(data.get("start_now", False)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(
                "The billing webhook body is not a valid event.", code="billing.invalid_event"
            ) from exc
