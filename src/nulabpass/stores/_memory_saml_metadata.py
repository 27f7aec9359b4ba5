"""IdP metadata URLs and their refresh state in the memory store (one process only)."""

from __future__ import annotations

import bisect
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from nulabpass._saml_metadata_model import SamlMetadataSource
from nulabpass._saml_model import SamlConfiguration
from nulabpass.errors import Conflict, NotFound, StaleWrite

if TYPE_CHECKING:
    from nulabpass.stores.memory import _Tx

__all__ = ["MemorySamlMetadataRepository", "SamlMetadataState"]


class SamlMetadataState:
    """The metadata-source table of one memory store."""

    def __init__(self) -> None:
        self.sources: dict[str, SamlMetadataSource] = {}


class MemorySamlMetadataRepository:
    """Metadata sources (:class:`~nulabpass.ports.SamlMetadataRepository`)."""

    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._x: SamlMetadataState = tx.state.saml_metadata

    def get(self, org_id: str) -> SamlMetadataSource | None:
        return self._x.sources.get(org_id)

    def add(self, source: SamlMetadataSource) -> None:
        if source.org_id in self._x.sources:
            raise Conflict(
                f"Organization {source.org_id} already has a metadata URL.",
                code="saml.metadata_url_exists",
            )
        self._tx.put(self._x.sources, source.org_id, source)

    def update(self, source: SamlMetadataSource) -> SamlMetadataSource:
        current = self._x.sources.get(source.org_id)
        if current is None:
            raise NotFound(
                f"The saml_metadata_source {source.org_id} no longer exists.",
                code="saml_metadata_source.not_found",
            )
        if current.version != source.version:
            raise StaleWrite(
                f"The metadata URL settings of organization {source.org_id} were changed "
                f"by another request (version {current.version}, this write was based on "
                f"{source.version}). Reload them and try again."
            )
        stored = attrs.evolve(source, version=source.version + 1)
        self._tx.put(self._x.sources, source.org_id, stored)
        return stored

    def delete(self, org_id: str) -> None:
        self._tx.pop(self._x.sources, org_id)

    def due(self, now: datetime, limit: int) -> list[SamlMetadataSource]:
        due = [s for s in self._x.sources.values() if s.next_refresh_at <= now]
        due.sort(key=lambda s: (s.next_refresh_at, s.org_id))
        return due[:limit]

    def configurations(self, after: str | None, limit: int) -> list[SamlConfiguration]:
        configs = self._tx.state.saml.configs
        ids = sorted(configs)
        start = 0 if after is None else bisect.bisect_right(ids, after)
        return [configs[org_id] for org_id in ids[start : start + limit]]
