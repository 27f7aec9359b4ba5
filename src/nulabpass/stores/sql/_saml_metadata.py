"""IdP metadata URLs in SQL (:class:`~nulabpass.ports.SamlMetadataRepository`).

One row per organization; the scheduler finds due rows through the ``next_refresh_at``
index. Host-wide certificate reports page through the IdP configurations by
organization id (the primary key), never reading the table whole.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import delete, select

from nulabpass._saml_metadata_model import SamlMetadataSource
from nulabpass._saml_model import SamlConfiguration
from nulabpass.errors import Conflict
from nulabpass.stores.sql import schema as s
from nulabpass.stores.sql._saml_login import _config

if TYPE_CHECKING:
    from nulabpass.stores.sql._repositories import AnyRow, Db

__all__ = ["SqlSamlMetadataRepository"]

t = s.saml_metadata_sources
_RESOURCE = "saml_metadata_source"


def _source(row: AnyRow) -> SamlMetadataSource:
    m = row._mapping
    pending = m["pending_document"]
    return SamlMetadataSource(
        org_id=m["org_id"],
        url=m["url"],
        refresh_interval=timedelta(seconds=m["refresh_interval_seconds"]),
        next_refresh_at=m["next_refresh_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        last_checked_at=m["last_checked_at"],
        last_success_at=m["last_success_at"],
        last_error_code=m["last_error_code"],
        consecutive_failures=m["consecutive_failures"],
        document_sha256=m["document_sha256"],
        pending_document=bytes(pending) if pending is not None else None,
        pending_sha256=m["pending_sha256"],
        pending_fetched_at=m["pending_fetched_at"],
        pending_reason=m["pending_reason"],
        rejected_sha256=m["rejected_sha256"],
        version=m["version"],
    )


def _values(source: SamlMetadataSource) -> dict[str, Any]:
    return {
        "org_id": source.org_id,
        "url": source.url,
        "refresh_interval_seconds": int(source.refresh_interval.total_seconds()),
        "next_refresh_at": source.next_refresh_at,
        "created_at": source.created_at,
        "updated_at": source.updated_at,
        "last_checked_at": source.last_checked_at,
        "last_success_at": source.last_success_at,
        "last_error_code": source.last_error_code,
        "consecutive_failures": source.consecutive_failures,
        "document_sha256": source.document_sha256,
        "pending_document": source.pending_document,
        "pending_sha256": source.pending_sha256,
        "pending_fetched_at": source.pending_fetched_at,
        "pending_reason": source.pending_reason,
        "rejected_sha256": source.rejected_sha256,
        "version": source.version,
    }


class SqlSamlMetadataRepository:
    """Metadata sources of organizations."""

    def __init__(self, db: Db) -> None:
        self._db = db

    def get(self, org_id: str) -> SamlMetadataSource | None:
        """The organization's metadata source, or ``None``."""
        row = self._db.first(select(t).where(t.c.org_id == org_id), _RESOURCE)
        return _source(row) if row is not None else None

    def add(self, source: SamlMetadataSource) -> None:
        """Insert; raises ``Conflict`` (``saml.metadata_url_exists``) if one exists."""
        if not self._db.insert_ignore(t, _values(source), _RESOURCE):
            raise Conflict(
                f"Organization {source.org_id} already has a metadata URL.",
                code="saml.metadata_url_exists",
            )

    def update(self, source: SamlMetadataSource) -> SamlMetadataSource:
        """Write with a version check; return it with the next version."""
        self._db.update_versioned(
            t, {"org_id": source.org_id}, source.version, _values(source), _RESOURCE
        )
        return attrs.evolve(source, version=source.version + 1)

    def delete(self, org_id: str) -> None:
        """Remove the organization's metadata source if present."""
        self._db.execute(delete(t).where(t.c.org_id == org_id), _RESOURCE)

    def due(self, now: datetime, limit: int) -> list[SamlMetadataSource]:
        """Sources due for a refresh, earliest first."""
        stmt = (
            select(t)
            .where(t.c.next_refresh_at <= now)
            .order_by(t.c.next_refresh_at, self._db.ordered(t.c.org_id))
            .limit(limit)
        )
        return [_source(row) for row in self._db.all(stmt, _RESOURCE)]

    def configurations(self, after: str | None, limit: int) -> list[SamlConfiguration]:
        """IdP configurations ordered by organization id, after ``after``."""
        c = s.saml_configs
        stmt = select(c).order_by(self._db.ordered(c.c.org_id)).limit(limit)
        if after is not None:
            stmt = stmt.where(self._db.ordered(c.c.org_id) > after)
        return [_config(row) for row in self._db.all(stmt, "saml_config")]
