"""Stored state of an organization's IdP metadata URL: where the metadata is fetched
from, when next, how the last attempts went, and a document held for approval."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

__all__ = ["SamlMetadataSource"]


@attrs.frozen(slots=True)
class SamlMetadataSource:
    """The metadata URL of one organization and its refresh state.

    ``document_sha256`` is the SHA-256 (hex) of the last document applied or found
    unchanged. A document whose signing certificates differ from the trusted ones and
    that is not signed by one of them waits in ``pending_document`` (with its digest,
    fetch time and ``pending_reason``) until an admin approves or rejects it; a rejected
    document's digest is kept in ``rejected_sha256`` so that it is not proposed again.
    ``consecutive_failures`` drives the backoff of ``next_refresh_at``.
    """

    org_id: str
    url: str
    refresh_interval: timedelta
    next_refresh_at: datetime
    created_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error_code: str | None = None
    consecutive_failures: int = 0
    document_sha256: str | None = None
    pending_document: bytes | None = attrs.field(default=None, repr=False)
    pending_sha256: str | None = None
    pending_fetched_at: datetime | None = None
    pending_reason: str | None = None
    rejected_sha256: str | None = None
    version: int = 1
