"""SAML sign-in state in SQL (:class:`~nulabpass.ports.SamlLoginRepository`).

The IdP configuration is one row per organization. Pending AuthnRequests are keyed by a
hash of the browser's state value; taking one deletes it, so two concurrent responses
for the same request cannot both consume it (only one ``DELETE`` finds the row).
Accepted assertions go to the replay table of :mod:`nulabpass.stores.sql._saml`.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update

from nulabpass._saml_model import PendingLogin, SamlConfiguration
from nulabpass.stores.sql import schema as s
from nulabpass.stores.sql._saml import SqlSamlReplayRows

if TYPE_CHECKING:
    from nulabpass.stores.sql._repositories import AnyRow, Db

__all__ = ["SqlSamlLoginRepository"]

c = s.saml_configs
r = s.saml_requests


def _config(row: AnyRow) -> SamlConfiguration:
    m = row._mapping
    return SamlConfiguration(
        org_id=m["org_id"],
        idp_entity_id=m["idp_entity_id"],
        signing_certificates=tuple(base64.b64decode(v) for v in m["signing_certificates"]),
        sso_redirect_url=m["sso_redirect_url"],
        sso_post_url=m["sso_post_url"],
        want_authn_requests_signed=bool(m["want_authn_requests_signed"]),
        allow_idp_initiated=bool(m["allow_idp_initiated"]),
        configured_at=m["configured_at"],
        updated_at=m["updated_at"],
        version=m["version"],
    )


def _config_values(config: SamlConfiguration) -> dict[str, Any]:
    return {
        "org_id": config.org_id,
        "idp_entity_id": config.idp_entity_id,
        "signing_certificates": [
            base64.b64encode(der).decode("ascii") for der in config.signing_certificates
        ],
        "sso_redirect_url": config.sso_redirect_url,
        "sso_post_url": config.sso_post_url,
        "want_authn_requests_signed": config.want_authn_requests_signed,
        "allow_idp_initiated": config.allow_idp_initiated,
        "configured_at": config.configured_at,
        "updated_at": config.updated_at,
        "version": config.version,
    }


class SqlSamlLoginRepository:
    """SAML sign-in configuration, pending requests and replay rows."""

    def __init__(self, db: Db) -> None:
        self._db = db
        self._replay = SqlSamlReplayRows(db)

    def get_config(self, org_id: str) -> SamlConfiguration | None:
        """The organization's IdP configuration, or ``None``."""
        row = self._db.first(select(c).where(c.c.org_id == org_id), "saml_config")
        return _config(row) if row is not None else None

    def put_config(self, config: SamlConfiguration) -> None:
        """Insert or replace the organization's IdP configuration (under its org lock)."""
        values = _config_values(config)
        done = self._db.execute(
            update(c).where(c.c.org_id == config.org_id).values(values), "saml_config"
        )
        if done.rowcount == 0:
            self._db.execute(insert(c).values(values), "saml_config")

    def add_request(self, pending: PendingLogin) -> None:
        """Remember an issued AuthnRequest until it expires."""
        self._db.execute(
            insert(r).values(
                state_hash=pending.state_hash,
                org_id=pending.org_id,
                request_id=pending.request_id,
                relay_state=pending.relay_state,
                expires_at=pending.expires_at,
            ),
            "saml_request",
        )

    def take_request(self, state_hash: str, now: datetime) -> PendingLogin | None:
        """Delete and return the unexpired request of ``state_hash``."""
        self._db.execute(delete(r).where(r.c.expires_at <= now), "saml_request")
        row = self._db.first(
            delete(r)
            .where(r.c.state_hash == state_hash)
            .returning(r.c.org_id, r.c.request_id, r.c.relay_state, r.c.expires_at),
            "saml_request",
        )
        if row is None:
            return None
        m = row._mapping
        return PendingLogin(
            state_hash=state_hash,
            org_id=m["org_id"],
            request_id=m["request_id"],
            relay_state=m["relay_state"],
            expires_at=m["expires_at"],
        )

    def remember(self, key: str, *, expires_at: datetime, now: datetime) -> bool:
        """Record an accepted assertion key; ``False`` if it is recorded and unexpired."""
        return self._replay.remember(key, expires_at=expires_at, now=now)
