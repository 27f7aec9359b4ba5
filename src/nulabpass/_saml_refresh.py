"""Refreshing an organization's IdP configuration from its metadata URL.

Theory of operation
-------------------
An admin gives the URL where the identity provider publishes its metadata
(:meth:`SamlMetadataService.set_url`); a scheduler calls :meth:`refresh_due` (or an
admin :meth:`refresh`) and each due organization's document is fetched through the
:class:`~nulabpass.ports.MetadataFetcher` port, outside any store transaction. What
happens next depends on the document and on the configuration in force:

- it does not parse or validate (``saml.metadata_invalid``), or the fetch failed: the
  configuration stays; the failure is audited (``saml.metadata_refresh_failed``, outcome
  failure, with its code), the next attempt backs off (15 minutes, doubling, at most the
  refresh interval) and the admins get one email per streak of failures;
- it describes the configuration in force: nothing is recorded but the schedule;
- it changes only endpoints or flags (same entity id, same set of signing
  certificates): it replaces the configuration (``saml.metadata_updated``);
- it changes the entity id or the set of signing certificates: it replaces the
  configuration only when the document carries a valid XML signature over its root by
  one of the *currently trusted* certificates (a rollover the IdP vouches for with its
  old key). Otherwise it is kept as *pending* (``saml.metadata_pending``) and the
  configuration in force stays until an admin approves it
  (``saml.metadata_approved``, which applies it) or rejects it
  (``saml.metadata_rejected``; the same document is then not proposed again).

Every change, pending document, approval, rejection and failure streak is emailed to the
organization's admins through the outbox. Classification is pure (:func:`classify`);
it runs again inside the writing transaction, so a configuration changed meanwhile is
never overwritten on the strength of a stale comparison.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import attrs

from nulabpass._context import Actor, RequestContext
from nulabpass._runtime import Recorder, Runtime, email_message
from nulabpass._saml_metadata_model import SamlMetadataSource
from nulabpass._saml_model import SamlConfiguration
from nulabpass.audit._model import Outcome
from nulabpass.domains._errors import RateLimited
from nulabpass.errors import Conflict, InvalidInput, NotFound, NulabPassError
from nulabpass.org._model import Account, AccountStatus, Organization, Role
from nulabpass.org._permissions import Permission
from nulabpass.outbox._model import JsonScalar, OutboxMessage
from nulabpass.plans import Capability
from nulabpass.ports import MetadataFetcher, RateLimiter, UnitOfWork
from nulabpass.saml import IdpConfig, SamlValidationError, parse_idp_metadata
from nulabpass.saml._fetch import HttpsMetadataFetcher, MetadataFetchError, check_metadata_url
from nulabpass.saml._metadata_signature import verify_metadata_signature
from nulabpass.stores.ratelimit import MemoryRateLimiter

__all__ = [
    "DEFAULT_REFRESH_INTERVAL",
    "MetadataRefresh",
    "MetadataStatus",
    "PendingMetadata",
    "RefreshOutcome",
    "RefreshReport",
    "SamlMetadataService",
    "classify",
    "retry_delay",
]

_log = logging.getLogger("nulabpass.saml")
_DEFAULT_CTX = RequestContext()
_SYSTEM = Actor.system("SAML metadata refresh")

#: How often a metadata URL is fetched unless the admin chose otherwise.
DEFAULT_REFRESH_INTERVAL = timedelta(hours=24)
MIN_REFRESH_INTERVAL = timedelta(hours=1)
MAX_REFRESH_INTERVAL = timedelta(days=30)
#: The first retry after a failure; each further failure doubles it, up to the interval.
FIRST_RETRY = timedelta(minutes=15)
_MAX_URL = 2048
_BATCH = 50
#: Refreshes an admin (or the host) may ask for, per organization and window; each one
#: is a request to a server the admin chose.
MANUAL_REFRESH_LIMIT = 10
MANUAL_REFRESH_WINDOW = timedelta(hours=1)


class RefreshOutcome(enum.StrEnum):
    """What one refresh did."""

    UNCHANGED = "unchanged"
    UPDATED = "updated"
    PENDING = "pending"
    FAILED = "failed"
    SKIPPED = "skipped"


@attrs.frozen(slots=True)
class MetadataRefresh:
    """The result of refreshing one organization's metadata.

    ``sha256`` is the fetched document's digest (``None`` when nothing was fetched);
    ``error_code`` is set when the outcome is ``failed``; ``signed`` tells whether an
    update of the signing certificates was applied on the strength of the document's
    signature by a trusted certificate.
    """

    org_id: str
    outcome: RefreshOutcome
    sha256: str | None = None
    error_code: str | None = None
    certificates_changed: bool = False
    signed: bool = False


@attrs.frozen(slots=True)
class PendingMetadata:
    """A fetched document that waits for an admin: its digest (pass it to approve or
    reject), when it was fetched, why it was not applied (the signature check's code,
    e.g. ``saml.metadata_unsigned``) and what it would configure."""

    sha256: str
    fetched_at: datetime
    reason: str
    entity_id: str
    signing_certificates: tuple[bytes, ...]
    added_certificates: tuple[bytes, ...]
    removed_certificates: tuple[bytes, ...]


@attrs.frozen(slots=True)
class MetadataStatus:
    """An organization's metadata URL and how its refreshes have gone."""

    org_id: str
    url: str
    refresh_interval: timedelta
    next_refresh_at: datetime
    last_checked_at: datetime | None
    last_success_at: datetime | None
    last_error_code: str | None
    consecutive_failures: int
    pending: PendingMetadata | None


@attrs.frozen(slots=True)
class RefreshReport:
    """What :meth:`SamlMetadataService.refresh_due` did, by outcome."""

    checked: int = 0
    unchanged: int = 0
    updated: int = 0
    pending: int = 0
    failed: int = 0
    skipped: int = 0


@attrs.frozen(slots=True)
class _Decision:
    outcome: RefreshOutcome
    sha256: str
    idp: IdpConfig
    reason: str | None = None
    certificates_changed: bool = False
    signed: bool = False


def retry_delay(failures: int, interval: timedelta) -> timedelta:
    """How long to wait after the ``failures``-th consecutive failure."""
    delay = FIRST_RETRY * (1 << min(max(failures - 1, 0), 20))
    return min(delay, interval)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def classify(
    data: bytes,
    config: SamlConfiguration,
    source: SamlMetadataSource,
    now: datetime,
) -> _Decision:
    """Decide what a fetched document does to ``config`` (pure; see the module
    docstring). Raises ``InvalidInput`` (``saml.metadata_invalid``) when it does not
    parse or validate."""
    digest = _sha256(data)
    idp = parse_idp_metadata(data, now=now)
    same = (
        idp.entity_id == config.idp_entity_id
        and idp.signing_certificates == config.signing_certificates
        and idp.sso_redirect_url == config.sso_redirect_url
        and idp.sso_post_url == config.sso_post_url
        and idp.want_authn_requests_signed == config.want_authn_requests_signed
    )
    if same:
        return _Decision(RefreshOutcome.UNCHANGED, digest, idp)
    trust_changed = idp.entity_id != config.idp_entity_id or set(idp.signing_certificates) != set(
        config.signing_certificates
    )
    if not trust_changed:
        return _Decision(RefreshOutcome.UPDATED, digest, idp)
    try:
        verify_metadata_signature(data, config.signing_certificates)
    except SamlValidationError as exc:
        if digest in (source.pending_sha256, source.rejected_sha256):
            # Already waiting for an admin, or refused by one: nothing new to record.
            return _Decision(RefreshOutcome.UNCHANGED, digest, idp)
        return _Decision(
            RefreshOutcome.PENDING, digest, idp, reason=exc.code, certificates_changed=True
        )
    return _Decision(RefreshOutcome.UPDATED, digest, idp, certificates_changed=True, signed=True)


def _org(uow: UnitOfWork, org_id: str) -> Organization:
    org = uow.organizations.get(org_id)
    if org is None:
        raise NotFound(f"There is no organization {org_id!r}.", code="organization.not_found")
    return org


def _not_set(org_id: str) -> NotFound:
    return NotFound(
        f"Organization {org_id!r} has no IdP metadata URL; an admin sets one first.",
        code="saml.metadata_url_not_set",
    )


def _applied(config: SamlConfiguration, idp: IdpConfig, now: datetime) -> SamlConfiguration:
    return attrs.evolve(
        config,
        idp_entity_id=idp.entity_id,
        signing_certificates=idp.signing_certificates,
        sso_redirect_url=idp.sso_redirect_url,
        sso_post_url=idp.sso_post_url,
        want_authn_requests_signed=idp.want_authn_requests_signed,
        updated_at=now,
        version=config.version + 1,
    )


def _settled(source: SamlMetadataSource, **changes: Any) -> SamlMetadataSource:
    """``source`` with ``changes`` and no pending document (applied or rejected)."""
    return attrs.evolve(
        source,
        pending_document=None,
        pending_sha256=None,
        pending_fetched_at=None,
        pending_reason=None,
        **changes,
    )


def _fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _admins(uow: UnitOfWork, org_id: str) -> list[Account]:
    """The organization's active admins, who are told about its IdP configuration."""
    found = []
    for membership in uow.memberships.list_for_org(org_id):
        if membership.role is not Role.ADMIN:
            continue
        account = uow.accounts.get(membership.account_id)
        if account is not None and account.status is AccountStatus.ACTIVE:
            found.append(account)
    return found


class _Raced(Exception):
    """The configuration or the source changed between classification and writing."""


class SamlMetadataService:
    """Metadata URLs, their refresh and the approval of pending documents (``np.saml``
    delegates here)."""

    def __init__(
        self,
        rt: Runtime,
        fetcher: MetadataFetcher | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._rt = rt
        self.fetcher: MetadataFetcher = fetcher if fetcher is not None else HttpsMetadataFetcher()
        self._limiter: RateLimiter = limiter if limiter is not None else MemoryRateLimiter()

    # -- settings -------------------------------------------------------------------------

    def set_url(
        self,
        actor: Actor,
        org_id: str,
        url: str,
        *,
        refresh_interval: timedelta = DEFAULT_REFRESH_INTERVAL,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> MetadataStatus:
        """See :meth:`nulabpass._saml_service.SamlAPI.set_metadata_url`."""
        url = url.strip() if isinstance(url, str) else url
        if not isinstance(url, str) or not url or len(url) > _MAX_URL:
            raise InvalidInput(
                f"The metadata URL must be 1 to {_MAX_URL} characters.",
                code="saml.metadata_url_invalid",
                details={"field": "url"},
            )
        try:
            check_metadata_url(url)
        except MetadataFetchError as exc:
            raise InvalidInput(
                exc.message, code="saml.metadata_url_invalid", details={"field": "url"}
            ) from None
        if not MIN_REFRESH_INTERVAL <= refresh_interval <= MAX_REFRESH_INTERVAL:
            raise InvalidInput(
                "The refresh interval must be between one hour and 30 days.",
                code="saml.refresh_interval_invalid",
                details={"field": "refresh_interval"},
            )

        def body(rec: Recorder) -> MetadataStatus:
            self._authorize(rec, org_id)
            current = rec.uow.saml_metadata.get(org_id)
            if current is None:
                source = SamlMetadataSource(
                    org_id=org_id,
                    url=url,
                    refresh_interval=refresh_interval,
                    next_refresh_at=rec.now,
                    created_at=rec.now,
                    updated_at=rec.now,
                )
                rec.uow.saml_metadata.add(source)
            elif current.url != url:
                # A new address starts afresh: what was pending came from the old one.
                source = rec.uow.saml_metadata.update(
                    SamlMetadataSource(
                        org_id=org_id,
                        url=url,
                        refresh_interval=refresh_interval,
                        next_refresh_at=rec.now,
                        created_at=current.created_at,
                        updated_at=rec.now,
                        version=current.version,
                    )
                )
            else:
                source = rec.uow.saml_metadata.update(
                    attrs.evolve(
                        current,
                        refresh_interval=refresh_interval,
                        next_refresh_at=min(current.next_refresh_at, rec.now + refresh_interval),
                        updated_at=rec.now,
                    )
                )
            rec.target("organization", org_id)
            rec.meta(url=url, refresh_interval_seconds=int(refresh_interval.total_seconds()))
            return self._status(source)

        return self._rt.run(
            scope=org_id, action="saml.metadata_url_set", actor=actor, ctx=ctx, body=body
        )

    def clear_url(self, actor: Actor, org_id: str, *, ctx: RequestContext = _DEFAULT_CTX) -> None:
        """See :meth:`nulabpass._saml_service.SamlAPI.clear_metadata_url`."""

        def body(rec: Recorder) -> None:
            _org(rec.uow, org_id)
            rec.require(Permission.CONFIGURE_SSO)
            current = rec.uow.saml_metadata.get(org_id)
            if current is None:
                raise _not_set(org_id)
            rec.uow.saml_metadata.delete(org_id)
            rec.target("organization", org_id)
            rec.meta(url=current.url, pending_discarded=current.pending_sha256 is not None)

        self._rt.run(
            scope=org_id, action="saml.metadata_url_cleared", actor=actor, ctx=ctx, body=body
        )

    def status(self, org_id: str) -> MetadataStatus | None:
        """See :meth:`nulabpass._saml_service.SamlAPI.metadata_status`."""
        with self._rt.store.transaction() as uow:
            source = uow.saml_metadata.get(org_id)
            config = uow.saml.get_config(org_id)
        if source is None:
            return None
        return self._status(source, config)

    def _authorize(self, rec: Recorder, org_id: str) -> tuple[Organization, SamlConfiguration]:
        org = _org(rec.uow, org_id)
        rec.require(Permission.CONFIGURE_SSO)
        self._rt.gate.require(rec.uow, org_id, Capability.CONFIGURE_SSO, rec.now)
        config = rec.uow.saml.get_config(org_id)
        if config is None:
            raise InvalidInput(
                f"SAML single sign-on is not configured for organization {org_id!r}; "
                "configure the identity provider before giving its metadata URL.",
                code="saml.not_configured",
            )
        return org, config

    def _status(
        self, source: SamlMetadataSource, config: SamlConfiguration | None = None
    ) -> MetadataStatus:
        pending = None
        if source.pending_document is not None and source.pending_sha256 is not None:
            pending = self._pending_view(
                source, source.pending_document, source.pending_sha256, config
            )
        return MetadataStatus(
            org_id=source.org_id,
            url=source.url,
            refresh_interval=source.refresh_interval,
            next_refresh_at=source.next_refresh_at,
            last_checked_at=source.last_checked_at,
            last_success_at=source.last_success_at,
            last_error_code=source.last_error_code,
            consecutive_failures=source.consecutive_failures,
            pending=pending,
        )

    @staticmethod
    def _pending_view(
        source: SamlMetadataSource,
        document: bytes,
        digest: str,
        config: SamlConfiguration | None,
    ) -> PendingMetadata | None:
        try:
            # No time check: an expired pending document is still shown (approval
            # refuses it), so the admin sees what waits.
            idp = parse_idp_metadata(document)
        except InvalidInput:
            return None
        trusted = config.signing_certificates if config is not None else ()
        return PendingMetadata(
            sha256=digest,
            fetched_at=source.pending_fetched_at or source.updated_at,
            reason=source.pending_reason or "",
            entity_id=idp.entity_id,
            signing_certificates=idp.signing_certificates,
            added_certificates=tuple(c for c in idp.signing_certificates if c not in trusted),
            removed_certificates=tuple(c for c in trusted if c not in idp.signing_certificates),
        )

    # -- refresh --------------------------------------------------------------------------

    def refresh(
        self,
        org_id: str,
        *,
        actor: Actor | None = None,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> MetadataRefresh:
        """See :meth:`nulabpass._saml_service.SamlAPI.refresh_metadata`."""
        who = actor if actor is not None else _SYSTEM
        self._rt.check_context(ctx)
        try:
            with self._rt.store.transaction() as uow:
                rec = Recorder(uow, self._rt.now(), who, ctx, org_id)
                _org(uow, org_id)
                rec.require(Permission.CONFIGURE_SSO)
                source = uow.saml_metadata.get(org_id)
                if source is None:
                    raise _not_set(org_id)
            decision = self._limiter.acquire(
                f"saml-metadata-refresh:{org_id}",
                rec.now,
                limit=MANUAL_REFRESH_LIMIT,
                window=MANUAL_REFRESH_WINDOW,
            )
            if not decision.allowed:
                when = decision.retry_at.isoformat() if decision.retry_at else "later"
                raise RateLimited(
                    f"The metadata of organization {org_id!r} was refreshed "
                    f"{MANUAL_REFRESH_LIMIT} times within the hour; try again after {when}. "
                    "The scheduled refresh keeps running meanwhile.",
                    code="rate_limit.exceeded",
                    details={"retry_at": when},
                )
        except NulabPassError as exc:
            if not isinstance(exc, NotFound):
                self._rt._record_failure(
                    org_id, "saml.metadata_refresh_failed", who, ctx, exc, None
                )
            raise
        return self._refresh_source(source, who, ctx, raise_errors=True)

    def refresh_due(
        self, now: datetime | None = None, *, limit: int | None = None, concurrency: int = 8
    ) -> RefreshReport:
        """See :meth:`nulabpass._saml_service.SamlAPI.refresh_due`."""
        if not 1 <= concurrency <= 64:
            raise InvalidInput(
                "concurrency must be between 1 and 64.", code="saml.refresh_concurrency_invalid"
            )
        at = self._rt.now() if now is None else now
        counts: dict[str, int] = dict.fromkeys(attrs.fields_dict(RefreshReport), 0)
        seen: set[str] = set()
        # Downloads overlap on a pool (each waits on a remote server); the results are
        # applied one at a time in this thread, in the order the batch was read.
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            while limit is None or counts["checked"] < limit:
                size = _BATCH if limit is None else min(_BATCH, limit - counts["checked"])
                with self._rt.store.transaction() as uow:
                    batch = [s for s in uow.saml_metadata.due(at, size) if s.org_id not in seen]
                if not batch:
                    break
                downloads: list[tuple[SamlMetadataSource, Future[bytes]]] = [
                    (source, pool.submit(self._fetch, source.url)) for source in batch
                ]
                for source, download in downloads:
                    seen.add(source.org_id)
                    result = self._refresh_source(
                        source, _SYSTEM, _DEFAULT_CTX, raise_errors=False, download=download
                    )
                    counts["checked"] += 1
                    counts[result.outcome.value] += 1
        return RefreshReport(**counts)

    def _refresh_source(
        self,
        source: SamlMetadataSource,
        actor: Actor,
        ctx: RequestContext,
        *,
        raise_errors: bool,
        download: Future[bytes] | None = None,
    ) -> MetadataRefresh:
        org_id = source.org_id
        try:
            data = self._fetch(source.url) if download is None else download.result()
            for _attempt in range(3):
                try:
                    return self._apply(source, data, actor, ctx)
                except _Raced:
                    continue
            raise Conflict(
                "The SAML configuration kept changing while the metadata was applied; "
                "refresh again.",
                code="saml.metadata_conflict",
            )
        except NulabPassError as exc:
            self._record_refresh_failure(source, exc, actor, ctx)
            if raise_errors:
                raise
            return MetadataRefresh(org_id, RefreshOutcome.FAILED, error_code=exc.code)

    def _fetch(self, url: str) -> bytes:
        try:
            data = self.fetcher.fetch(url)
        except MetadataFetchError:
            raise
        except Exception as exc:  # An adapter's bug must read as a failed fetch, not crash.
            _log.warning("metadata fetch from %s failed", url, exc_info=True)
            raise MetadataFetchError(
                "saml.fetch_failed",
                f"The metadata fetcher failed ({type(exc).__name__}).",
            ) from None
        if not isinstance(data, bytes):
            raise MetadataFetchError(
                "saml.fetch_failed", "The metadata fetcher did not return bytes."
            )
        return data

    def _apply(
        self, source: SamlMetadataSource, data: bytes, actor: Actor, ctx: RequestContext
    ) -> MetadataRefresh:
        org_id = source.org_id
        now = self._rt.now()
        with self._rt.store.transaction() as uow:
            current = uow.saml_metadata.get(org_id)
            config = uow.saml.get_config(org_id)
            if current is not None and current.url == source.url:
                # Checked here rather than in the writing transaction, whose failures the
                # runner records under the action's own name: a lapsed plan is one
                # ``saml.metadata_refresh_failed``, like any other failed refresh.
                self._rt.gate.require(uow, org_id, Capability.CONFIGURE_SSO, now)
        if current is None or current.url != source.url:
            return MetadataRefresh(org_id, RefreshOutcome.SKIPPED)
        if config is None:
            raise InvalidInput(
                f"SAML single sign-on is not configured for organization {org_id!r}.",
                code="saml.not_configured",
            )
        decision = classify(data, config, current, now)
        if decision.outcome is RefreshOutcome.UNCHANGED:
            return self._record_unchanged(current, decision)
        action = (
            "saml.metadata_updated"
            if decision.outcome is RefreshOutcome.UPDATED
            else "saml.metadata_pending"
        )

        def body(rec: Recorder) -> MetadataRefresh:
            org = _org(rec.uow, org_id)
            fresh = rec.uow.saml_metadata.get(org_id)
            fresh_config = rec.uow.saml.get_config(org_id)
            if fresh is None or fresh_config is None or fresh.url != source.url:
                raise _Raced()
            again = classify(data, fresh_config, fresh, rec.now)
            if again.outcome is not decision.outcome or again.sha256 != decision.sha256:
                raise _Raced()
            rec.target("organization", org_id)
            rec.meta(
                sha256=again.sha256,
                idp_entity_id=again.idp.entity_id,
                signing_certificates=len(again.idp.signing_certificates),
                certificates_changed=again.certificates_changed,
            )
            base = attrs.evolve(
                fresh,
                last_checked_at=rec.now,
                last_success_at=rec.now,
                last_error_code=None,
                consecutive_failures=0,
                next_refresh_at=rec.now + fresh.refresh_interval,
                updated_at=rec.now,
            )
            if again.outcome is RefreshOutcome.UPDATED:
                rec.uow.saml.put_config(_applied(fresh_config, again.idp, rec.now))
                rec.uow.saml_metadata.update(_settled(base, document_sha256=again.sha256))
                rec.meta(signed=again.signed, via="refresh")
                self._email(
                    rec, org, "saml_metadata_updated", again.sha256, metadata_url=source.url
                )
            else:
                rec.uow.saml_metadata.update(
                    attrs.evolve(
                        base,
                        pending_document=data,
                        pending_sha256=again.sha256,
                        pending_fetched_at=rec.now,
                        pending_reason=again.reason,
                    )
                )
                rec.meta(reason=again.reason)
                self._email(
                    rec,
                    org,
                    "saml_metadata_pending",
                    again.sha256,
                    metadata_url=source.url,
                    reason=again.reason,
                )
            return MetadataRefresh(
                org_id,
                again.outcome,
                sha256=again.sha256,
                certificates_changed=again.certificates_changed,
                signed=again.signed,
            )

        return self._rt.run(scope=org_id, action=action, actor=actor, ctx=ctx, body=body)

    def _record_unchanged(
        self, source: SamlMetadataSource, decision: _Decision
    ) -> MetadataRefresh:
        # Only the schedule moves: no configuration change, nothing to audit.
        with self._rt.store.transaction() as uow:
            now = self._rt.now()
            current = uow.saml_metadata.get(source.org_id)
            if current is None or current.version != source.version:
                raise _Raced()
            uow.saml_metadata.update(
                attrs.evolve(
                    current,
                    last_checked_at=now,
                    last_success_at=now,
                    last_error_code=None,
                    consecutive_failures=0,
                    next_refresh_at=now + current.refresh_interval,
                    document_sha256=(
                        decision.sha256
                        if decision.sha256 not in (current.pending_sha256, current.rejected_sha256)
                        else current.document_sha256
                    ),
                )
            )
        return MetadataRefresh(source.org_id, RefreshOutcome.UNCHANGED, sha256=decision.sha256)

    def _record_refresh_failure(
        self,
        source: SamlMetadataSource,
        exc: NulabPassError,
        actor: Actor,
        ctx: RequestContext,
    ) -> None:
        """Back off, audit the failure and, on the first of a streak, email the admins:
        one transaction, so the schedule, the event and the email agree."""
        try:
            with self._rt.store.transaction() as uow:
                now = self._rt.now()
                org = uow.organizations.lock(source.org_id)
                current = uow.saml_metadata.get(source.org_id)
                if org is None or current is None or current.url != source.url:
                    return
                failures = current.consecutive_failures + 1
                uow.saml_metadata.update(
                    attrs.evolve(
                        current,
                        last_checked_at=now,
                        last_error_code=exc.code,
                        consecutive_failures=failures,
                        next_refresh_at=now + retry_delay(failures, current.refresh_interval),
                    )
                )
                metadata: dict[str, JsonScalar] = {
                    "error_code": exc.code,
                    "consecutive_failures": failures,
                }
                self._rt._append(
                    uow,
                    now,
                    source.org_id,
                    "saml.metadata_refresh_failed",
                    Outcome.FAILURE,
                    actor,
                    ctx,
                    [],
                    metadata,
                )
                if failures == 1:
                    key = f"{source.org_id}:{now.isoformat()}"
                    for message in self._admin_messages(
                        uow,
                        org,
                        "saml_metadata_refresh_failed",
                        key,
                        now,
                        metadata_url=source.url,
                        error_code=exc.code,
                    ):
                        uow.outbox.add(message)
        except NulabPassError:
            # Recording a failure must never mask the failure being reported.
            _log.warning("could not record the failed refresh of %s", source.org_id, exc_info=True)

    # -- approval -------------------------------------------------------------------------

    def approve(
        self,
        actor: Actor,
        org_id: str,
        *,
        sha256: str,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> SamlConfiguration:
        """See :meth:`nulabpass._saml_service.SamlAPI.approve_pending_metadata`."""

        def body(rec: Recorder) -> SamlConfiguration:
            org, config = self._authorize(rec, org_id)
            source, document = self._pending(rec.uow, org_id, sha256)
            idp = parse_idp_metadata(document, now=rec.now)
            applied = _applied(config, idp, rec.now)
            rec.uow.saml.put_config(applied)
            rec.uow.saml_metadata.update(
                _settled(source, document_sha256=sha256, updated_at=rec.now)
            )
            rec.target("organization", org_id)
            rec.meta(
                sha256=sha256,
                idp_entity_id=idp.entity_id,
                signing_certificates=len(idp.signing_certificates),
                via="approval",
            )
            self._email(rec, org, "saml_metadata_updated", sha256, metadata_url=source.url)
            return applied

        return self._rt.run(
            scope=org_id, action="saml.metadata_approved", actor=actor, ctx=ctx, body=body
        )

    def reject(
        self,
        actor: Actor,
        org_id: str,
        *,
        sha256: str,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> None:
        """See :meth:`nulabpass._saml_service.SamlAPI.reject_pending_metadata`."""

        def body(rec: Recorder) -> None:
            org = _org(rec.uow, org_id)
            rec.require(Permission.CONFIGURE_SSO)
            source, _ = self._pending(rec.uow, org_id, sha256)
            rec.uow.saml_metadata.update(
                _settled(source, rejected_sha256=sha256, updated_at=rec.now)
            )
            rec.target("organization", org_id)
            rec.meta(sha256=sha256)
            self._email(rec, org, "saml_metadata_rejected", sha256, metadata_url=source.url)

        self._rt.run(
            scope=org_id, action="saml.metadata_rejected", actor=actor, ctx=ctx, body=body
        )

    @staticmethod
    def _pending(uow: UnitOfWork, org_id: str, sha256: str) -> tuple[SamlMetadataSource, bytes]:
        source = uow.saml_metadata.get(org_id)
        if source is None:
            raise _not_set(org_id)
        if source.pending_document is None or source.pending_sha256 is None:
            raise NotFound(
                "No fetched metadata document is waiting for approval.",
                code="saml.metadata_not_pending",
            )
        if source.pending_sha256 != sha256:
            raise Conflict(
                "The document waiting for approval is not the one reviewed (its SHA-256 "
                f"is {source.pending_sha256}); review the current one and try again.",
                code="saml.metadata_pending_changed",
                details={"expected": sha256, "received": source.pending_sha256},
            )
        return source, source.pending_document

    # -- email ----------------------------------------------------------------------------

    def _email(
        self, rec: Recorder, org: Organization, template: str, key: str, **params: JsonScalar
    ) -> None:
        for account in _admins(rec.uow, org.id):
            rec.email(
                template,
                account,
                f"{org.id}:{key}:{rec.now.isoformat()}:{account.id}",
                org_name=org.name,
                **params,
            )

    @staticmethod
    def _admin_messages(
        uow: UnitOfWork,
        org: Organization,
        template: str,
        key: str,
        now: datetime,
        **params: JsonScalar,
    ) -> list[OutboxMessage]:
        return [
            email_message(
                template, account, f"{key}:{account.id}", org.id, now, org_name=org.name, **params
            )
            for account in _admins(uow, org.id)
        ]
