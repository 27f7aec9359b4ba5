"""Use cases of verified email domains: ``NulabPass.domains``.

Theory of operation
-------------------
An admin adds a domain and receives the TXT record to publish; ``verify`` looks the
record up through every configured :class:`~nulabpass.ports.TxtResolver` and, when all
of them found the exact value, marks the domain verified. DNS lookups never run inside
a store transaction: a slow name server must not hold the organization's lock. The
sequence is: read and authorize (one short transaction), count the attempt against the
rate limit, look up, then apply the outcome in one audited transaction that re-reads the
challenge and gives up if it changed meanwhile.

``reverify_due`` is driven by the host's scheduler. It reads due domains in batches,
looks them up on a thread pool (at most ``DomainPolicy.concurrency`` at once) and
applies each outcome in its own transaction. Routine successful re-checks only move the
schedule on; a record going missing, coming back or lapsing is a state change with its
audit event, an outbox event for the host and, when the grace period starts, an email
to the organization's admins.

Entitlement: adding and verifying domains belongs to configuring the identity add-on,
so it needs :attr:`~nulabpass.plans.Capability.CONFIGURE_SSO`; removing a domain and
re-verification by the system do not.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import attrs

from nulabpass._context import Actor, RequestContext
from nulabpass._gate import Capability
from nulabpass._ids import new_id
from nulabpass._runtime import Recorder, Runtime
from nulabpass.audit._model import Target
from nulabpass.domains._errors import DomainVerificationError, RateLimited
from nulabpass.domains._judge import combine, judge, new_token
from nulabpass.domains._lifecycle import Change, grace_ends_at, reassess
from nulabpass.domains._model import (
    CheckResult,
    DomainChallenge,
    DomainPolicy,
    LookupStatus,
    Outcome,
    TxtLookup,
)
from nulabpass.domains._names import check_claimable, normalize_domain
from nulabpass.errors import NotFound, NulabPassError
from nulabpass.org._model import AccountStatus, Domain, DomainStatus, Organization
from nulabpass.org._permissions import Permission
from nulabpass.ports import RateLimiter, TxtResolver, UnitOfWork

__all__ = ["DomainCheck", "DomainView", "DomainsAPI", "ReverifyReport"]

_log = logging.getLogger("nulabpass.domains")
_DEFAULT_CTX = RequestContext()


@attrs.frozen(slots=True)
class DomainView:
    """What an admin sees of one domain: its state and the record to publish."""

    name: str
    status: DomainStatus
    include_subdomains: bool
    verified_at: datetime | None
    record_name: str
    record_value: str | None
    challenge_expires_at: datetime | None
    last_checked_at: datetime | None = None
    last_outcome: str | None = None
    next_check_at: datetime | None = None
    missing_since: datetime | None = None
    grace_ends_at: datetime | None = None


@attrs.frozen(slots=True)
class DomainCheck:
    """The outcome of an admin's verification check and the domain afterwards."""

    result: CheckResult
    domain: DomainView

    @property
    def verified(self) -> bool:
        """Whether every resolver found the record."""
        return self.result.verified


@attrs.frozen(slots=True)
class ReverifyReport:
    """What one ``reverify_due`` run did."""

    checked: int = 0
    verified: int = 0
    record_missing: int = 0
    restored: int = 0
    lapsed: int = 0
    indeterminate: int = 0
    skipped: int = 0


def _domain_record(uow: UnitOfWork, org_id: str, name: str) -> Domain:
    domain = uow.domains.get(org_id, name)
    if domain is None:
        raise NotFound(
            f"The organization has not added the domain {name}; add it first.",
            code="domain.not_found",
            details={"domain": name},
        )
    return domain


def _organization(uow: UnitOfWork, org_id: str) -> Organization:
    org = uow.organizations.get(org_id)
    if org is None:
        raise NotFound(f"There is no organization {org_id!r}.", code="organization.not_found")
    return org


class DomainsAPI:
    """Email domains of organizations: add, verify, re-verify, list, remove."""

    def __init__(
        self,
        rt: Runtime,
        resolvers: Sequence[TxtResolver] | None,
        limiter: RateLimiter,
        policy: DomainPolicy,
    ) -> None:
        self._rt = rt
        self._resolvers = tuple(resolvers) if resolvers is not None else None
        self._limiter = limiter
        self.policy = policy

    @property
    def resolvers(self) -> tuple[TxtResolver, ...]:
        """The resolvers every check asks (the system's, unless the host gave some)."""
        if self._resolvers is None:
            from nulabpass.domains._dnspython import DnsPythonTxtResolver

            self._resolvers = (DnsPythonTxtResolver(),)
        return self._resolvers

    # -- views ---------------------------------------------------------------------------

    def _view(self, domain: Domain, challenge: DomainChallenge | None) -> DomainView:
        return DomainView(
            name=domain.name,
            status=domain.status,
            include_subdomains=domain.include_subdomains,
            verified_at=domain.verified_at,
            record_name=self.policy.record_name(domain.name),
            record_value=None if challenge is None else self.policy.record_value(challenge.token),
            challenge_expires_at=(
                None if challenge is None or challenge.verified_at else challenge.expires_at
            ),
            last_checked_at=None if challenge is None else challenge.last_checked_at,
            last_outcome=None if challenge is None else challenge.last_outcome,
            next_check_at=None if challenge is None else challenge.next_check_at,
            missing_since=None if challenge is None else challenge.missing_since,
            grace_ends_at=None if challenge is None else grace_ends_at(challenge, self.policy),
        )

    def _authorize(self, rec: Recorder, *, entitled: bool = True) -> Organization:
        org = _organization(rec.uow, rec.scope)
        rec.require(Permission.MANAGE_DOMAINS)
        if entitled:
            self._rt.gate.require(rec.uow, org.id, Capability.CONFIGURE_SSO, rec.now)
        return org

    # -- admin use cases -----------------------------------------------------------------

    def add(
        self,
        actor: Actor,
        org_id: str,
        domain: str,
        *,
        include_subdomains: bool = False,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> DomainView:
        """Add an email domain (admins) and issue its challenge: publish
        ``view.record_value`` as TXT at ``view.record_name``, then call :meth:`verify`.

        Refuses IP literals, public suffixes and free-mail domains
        (``domain.ip_literal``, ``domain.public_suffix``, ``domain.free_mail``).
        """
        name = check_claimable(domain, extra_free_mail=self.policy.extra_free_mail_domains)

        def body(rec: Recorder) -> DomainView:
            self._authorize(rec)
            record = Domain(
                id=new_id("dom"),
                org_id=org_id,
                name=name,
                status=DomainStatus.PENDING,
                include_subdomains=bool(include_subdomains),
                created_at=rec.now,
                updated_at=rec.now,
            )
            rec.uow.domains.add(record)
            challenge = self._new_challenge(record, rec.now)
            rec.uow.domain_challenges.add(challenge)
            rec.target("domain", name)
            rec.meta(domain=name, include_subdomains=record.include_subdomains)
            return self._view(record, challenge)

        return self._rt.run(
            scope=org_id,
            action="domain.added",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("domain", name),
        )

    def _new_challenge(self, domain: Domain, now: datetime) -> DomainChallenge:
        return DomainChallenge(
            domain_id=domain.id,
            org_id=domain.org_id,
            domain=domain.name,
            token=new_token(),
            issued_at=now,
            expires_at=now + self.policy.challenge_ttl,
        )

    def renew_challenge(
        self, actor: Actor, org_id: str, domain: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> DomainView:
        """Issue a fresh challenge for a pending or lapsed domain (admins); the previous
        token stops counting. A verified domain keeps its record and cannot renew."""
        name = normalize_domain(domain)

        def body(rec: Recorder) -> DomainView:
            self._authorize(rec)
            record = _domain_record(rec.uow, org_id, name)
            if record.status is DomainStatus.VERIFIED:
                raise DomainVerificationError(
                    f"{name} is verified; its TXT record must stay as it is. Remove the "
                    "domain first if you need to start over.",
                    code="domain.already_verified",
                )
            fresh = self._new_challenge(record, rec.now)
            current = rec.uow.domain_challenges.get(record.id)
            if current is None:
                rec.uow.domain_challenges.add(fresh)
            else:
                fresh = rec.uow.domain_challenges.update(
                    attrs.evolve(fresh, version=current.version)
                )
            rec.target("domain", name)
            rec.meta(domain=name)
            return self._view(record, fresh)

        return self._rt.run(
            scope=org_id,
            action="domain.challenge_renewed",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("domain", name),
        )

    def get(self, actor: Actor, org_id: str, domain: str) -> DomainView:
        """One domain of the organization (admins)."""
        name = normalize_domain(domain)
        with self._rt.store.transaction() as uow:
            _organization(uow, org_id)
            Recorder(uow, self._rt.now(), actor, _DEFAULT_CTX, org_id).require(
                Permission.MANAGE_DOMAINS
            )
            record = _domain_record(uow, org_id, name)
            return self._view(record, uow.domain_challenges.get(record.id))

    def list(self, actor: Actor, org_id: str) -> builtins.list[DomainView]:
        """The organization's domains, ordered by name (admins)."""
        with self._rt.store.transaction() as uow:
            _organization(uow, org_id)
            Recorder(uow, self._rt.now(), actor, _DEFAULT_CTX, org_id).require(
                Permission.MANAGE_DOMAINS
            )
            return [
                self._view(d, uow.domain_challenges.get(d.id))
                for d in uow.domains.list_for_org(org_id)
            ]

    def remove(
        self, actor: Actor, org_id: str, domain: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> None:
        """Remove a domain (admins). Managed accounts on it stay managed; no new ones
        can be created on it. Needs no plan, so an organization can always clean up."""
        name = normalize_domain(domain)

        def body(rec: Recorder) -> None:
            self._authorize(rec, entitled=False)
            record = _domain_record(rec.uow, org_id, name)
            rec.uow.domain_challenges.delete(record.id)
            rec.uow.domains.delete(org_id, name)
            rec.target("domain", name)
            rec.meta(domain=name, status=record.status.value)
            rec.emit("domain.removed", f"{record.id}:removed", org_id=org_id, domain=name)

        self._rt.run(
            scope=org_id,
            action="domain.removed",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("domain", name),
        )

    def set_include_subdomains(
        self,
        actor: Actor,
        org_id: str,
        domain: str,
        include: bool,
        *,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> DomainView:
        """Choose whether the domain also covers its subdomains (admins):
        ``eng.example.com`` addresses count as ``example.com`` when it does."""
        name = normalize_domain(domain)

        def body(rec: Recorder) -> DomainView:
            self._authorize(rec)
            record = _domain_record(rec.uow, org_id, name)
            if record.include_subdomains != bool(include):
                record = rec.uow.domains.update(
                    attrs.evolve(record, include_subdomains=bool(include), updated_at=rec.now)
                )
            rec.target("domain", name)
            rec.meta(domain=name, include_subdomains=bool(include))
            return self._view(record, rec.uow.domain_challenges.get(record.id))

        return self._rt.run(
            scope=org_id,
            action="domain.subdomains_changed",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("domain", name),
        )

    def verify(
        self, actor: Actor, org_id: str, domain: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> DomainCheck:
        """Look the domain's TXT record up now (admins) and record the outcome.

        A pending domain whose unexpired challenge every resolver confirms becomes
        verified (``domain.verified``); otherwise nothing changes and the check is
        recorded as ``domain.verification_failed``. On a verified domain the check
        counts as a re-check (it may restore a missing record, never lapse one early).
        Checks are rate-limited per organization and domain (``rate_limit.exceeded``).
        """
        name = normalize_domain(domain)
        target = Target("domain", name)
        try:
            with self._rt.store.transaction() as uow:
                now = self._rt.now()
                rec = Recorder(uow, now, actor, ctx, org_id)
                self._rt.check_context(ctx)
                self._authorize(rec)
                record = _domain_record(uow, org_id, name)
                challenge = self._require_checkable(
                    record, uow.domain_challenges.get(record.id), now
                )
            decision = self._limiter.acquire(
                f"domain-check:{org_id}:{name}",
                now,
                limit=self.policy.check_limit,
                window=self.policy.check_window,
            )
            if not decision.allowed:
                when = decision.retry_at.isoformat() if decision.retry_at else "later"
                raise RateLimited(
                    f"The DNS record of {name} was checked {self.policy.check_limit} times "
                    f"recently; try again after {when}. Publishing a record can take a "
                    "while to reach every name server.",
                    code="rate_limit.exceeded",
                    details={"retry_at": when},
                )
        except NulabPassError as exc:
            self._rt._record_failure(org_id, "domain.verified", actor, ctx, exc, target)
            raise
        result = self.check_record(name, challenge.token)
        if record.status is DomainStatus.VERIFIED:
            # An admin's check of a verified domain is a re-check the admin asked for:
            # audited even when it changes nothing, and never able to lapse the domain
            # before its grace period ends (reassess decides, as for scheduled ones).
            updated, change = reassess(challenge, result.verdict, self._rt.now(), self.policy)
            routine = "domain.verified" if result.verified else "domain.verification_failed"
            self._apply_change(
                challenge,
                updated,
                change,
                result,
                actor,
                ctx,
                action=routine if change is Change.NONE else None,
            )
            return DomainCheck(result, self.get(actor, org_id, name))
        action = "domain.verified" if result.verified else "domain.verification_failed"

        def body(rec: Recorder) -> DomainView:
            self._authorize(rec)
            current = _domain_record(rec.uow, org_id, name)
            fresh = rec.uow.domain_challenges.get(current.id)
            if fresh is None or fresh.token != challenge.token:
                raise DomainVerificationError(
                    f"The challenge of {name} changed while it was being checked; check "
                    "again with the record now shown.",
                    code="domain.challenge_changed",
                )
            rec.target("domain", name)
            rec.meta(domain=name, verdict=result.verdict.value)
            if not result.verified or current.status is DomainStatus.VERIFIED:
                return self._view(current, fresh)
            verified = rec.uow.domains.update(
                attrs.evolve(
                    current,
                    status=DomainStatus.VERIFIED,
                    verified_at=rec.now,
                    updated_at=rec.now,
                )
            )
            proved = rec.uow.domain_challenges.update(
                attrs.evolve(
                    fresh,
                    verified_at=rec.now,
                    last_checked_at=rec.now,
                    last_outcome=Outcome.VERIFIED.value,
                    next_check_at=rec.now + self.policy.recheck_interval,
                    missing_since=None,
                    indeterminate_since=None,
                )
            )
            rec.emit("domain.verified", f"{proved.domain_id}:{proved.token}", domain=name)
            return self._view(verified, proved)

        view = self._rt.run(
            scope=org_id, action=action, actor=actor, ctx=ctx, body=body, failure_target=target
        )
        return DomainCheck(result, view)

    def _require_checkable(
        self, record: Domain, challenge: DomainChallenge | None, now: datetime
    ) -> DomainChallenge:
        if record.status is DomainStatus.VERIFIED and challenge is not None:
            return challenge
        lapsed = record.status is DomainStatus.UNVERIFIED and (
            challenge is not None and challenge.last_checked_at is not None
        )
        if challenge is None or challenge.verified_at is not None or lapsed:
            raise DomainVerificationError(
                f"{record.name} has no pending challenge; ask for a fresh one and publish "
                "the record it shows.",
                code="domain.challenge_required",
                details={"domain": record.name},
            )
        if now >= challenge.expires_at:
            raise DomainVerificationError(
                f"The challenge of {record.name} expired on "
                f"{challenge.expires_at.isoformat()}; ask for a fresh one and publish the "
                "new record (the old token no longer counts).",
                code="domain.challenge_expired",
                details={"domain": record.name},
            )
        return challenge

    # -- checking ------------------------------------------------------------------------

    def check_record(self, domain: str, token: str) -> CheckResult:
        """Look up the challenge record of ``domain`` for ``token`` through every
        resolver and judge the answers; changes nothing."""
        name = normalize_domain(domain)
        record_name = self.policy.record_name(name)
        expected = self.policy.record_value(token)
        return check_txt(self.resolvers, record_name, expected)

    # -- re-verification -----------------------------------------------------------------

    def reverify_due(
        self, now: datetime | None = None, *, limit: int | None = None
    ) -> ReverifyReport:
        """Re-check every verified domain whose time has come (at most ``limit``).

        Lookups run on a thread pool of ``policy.concurrency`` threads, a batch of
        ``policy.batch_size`` domains at a time; each outcome is written in its own
        transaction. Safe to run often and from several schedulers: a domain changed
        by someone else meanwhile is skipped and picked up next time.
        """
        at = self._rt.now() if now is None else now
        counts: dict[str, int] = dict.fromkeys(attrs.fields_dict(ReverifyReport), 0)
        seen: set[str] = set()
        with ThreadPoolExecutor(
            max_workers=self.policy.concurrency, thread_name_prefix="nulabpass-dns"
        ) as pool:
            while limit is None or counts["checked"] + counts["skipped"] < limit:
                size = self.policy.batch_size
                if limit is not None:
                    size = min(size, limit - counts["checked"] - counts["skipped"])
                with self._rt.store.transaction() as uow:
                    batch = [
                        c for c in uow.domain_challenges.due(at, size) if c.domain_id not in seen
                    ]
                if not batch:
                    break
                seen.update(c.domain_id for c in batch)
                checks = pool.map(self._check_challenge, batch)
                for challenge, result in zip(batch, checks, strict=True):
                    change = self._apply_recheck(challenge, result, at)
                    if change is None:
                        counts["skipped"] += 1
                        continue
                    counts["checked"] += 1
                    if result.verdict is Outcome.VERIFIED:
                        counts["verified"] += 1
                    elif result.verdict is Outcome.INDETERMINATE:
                        counts["indeterminate"] += 1
                    if change is not Change.NONE:
                        counts[change.value] += 1
        return ReverifyReport(**counts)

    def _check_challenge(self, challenge: DomainChallenge) -> CheckResult:
        return check_txt(
            self.resolvers,
            self.policy.record_name(challenge.domain),
            self.policy.record_value(challenge.token),
        )

    def _apply_recheck(
        self,
        challenge: DomainChallenge,
        result: CheckResult,
        at: datetime,
    ) -> Change | None:
        """Write one re-check's outcome; ``None`` when the challenge changed meanwhile."""
        updated, change = reassess(challenge, result.verdict, at, self.policy)
        try:
            if change is Change.NONE:
                with self._rt.store.transaction() as uow:
                    current = uow.domain_challenges.get(challenge.domain_id)
                    if current is None or current.version != challenge.version:
                        return None
                    uow.domain_challenges.update(updated)
                return change
            return self._apply_change(challenge, updated, change, result, None, _DEFAULT_CTX)
        except NulabPassError:
            _log.warning("could not record the re-check of %s", challenge.domain, exc_info=True)
            return None

    def _apply_change(
        self,
        before: DomainChallenge,
        updated: DomainChallenge,
        change: Change,
        result: CheckResult,
        actor: Actor | None,
        ctx: RequestContext,
        *,
        action: str | None = None,
    ) -> Change | None:
        applied: list[Change] = []

        def body(rec: Recorder) -> None:
            org = _organization(rec.uow, before.org_id)
            current = rec.uow.domain_challenges.get(before.domain_id)
            if current is None or current.version != before.version:
                return
            record = _domain_record(rec.uow, before.org_id, before.domain)
            rec.uow.domain_challenges.update(updated)
            rec.target("domain", record.name)
            rec.meta(domain=record.name, verdict=result.verdict.value)
            checked = updated.last_checked_at or rec.now
            key = f"{record.id}:{change.value}:{checked.isoformat()}"
            if change is Change.RECORD_MISSING:
                ends = grace_ends_at(updated, self.policy)
                grace_end = (ends or rec.now).isoformat()
                rec.meta(grace_ends_at=grace_end)
                self._email_admins(rec, org, record.name, key, grace_end)
                rec.emit(
                    "domain.record_missing",
                    key,
                    org_id=org.id,
                    domain=record.name,
                    grace_ends_at=grace_end,
                )
            elif change is Change.RESTORED:
                rec.emit("domain.restored", key, org_id=org.id, domain=record.name)
            elif change is Change.LAPSED:
                rec.uow.domains.update(
                    attrs.evolve(
                        record,
                        status=DomainStatus.UNVERIFIED,
                        verified_at=None,
                        updated_at=rec.now,
                    )
                )
                rec.emit("domain.lapsed", key, org_id=org.id, domain=record.name)
            applied.append(change)

        self._rt.run(
            scope=before.org_id,
            action=action or f"domain.{change.value}",
            actor=actor or Actor.system(),
            ctx=ctx,
            body=body,
            failure_target=Target("domain", before.domain),
        )
        return applied[0] if applied else None

    @staticmethod
    def _email_admins(rec: Recorder, org: Organization, domain: str, key: str, ends: str) -> None:
        for membership in rec.uow.memberships.list_for_org(org.id):
            if not membership.can_break_glass:
                continue
            account = rec.uow.accounts.get(membership.account_id)
            if account is None or account.status is not AccountStatus.ACTIVE:
                continue
            rec.email(
                "domain_record_missing",
                account,
                f"{key}:{account.id}",
                org_name=org.name,
                domain=domain,
                grace_ends_at=ends,
            )


def check_txt(
    resolvers: Sequence[TxtResolver],
    record_name: str,
    expected: str,
) -> CheckResult:
    """Ask every resolver for ``record_name`` and judge the answers against
    ``expected``. A resolver that raises counts as an indeterminate answer: a bug or an
    outage in one adapter must never read as "the record is gone"."""
    wanted = expected.encode("utf-8")
    results = []
    for resolver in resolvers:
        lookup = _safe_lookup(resolver, record_name)
        results.append(judge(lookup, wanted))
    return combine(record_name, expected, results)


def _safe_lookup(resolver: TxtResolver, name: str) -> TxtLookup:
    label = str(getattr(resolver, "label", type(resolver).__name__))
    try:
        lookup = resolver.lookup(name)
    except Exception as exc:  # A failing adapter stays indeterminate (see check_txt).
        _log.warning("TXT lookup of %s through %s failed", name, label, exc_info=True)
        return TxtLookup(
            name=name,
            status=LookupStatus.ERROR,
            resolver=label,
            detail=f"the resolver failed: {type(exc).__name__}",
        )
    if not lookup.resolver:
        lookup = attrs.evolve(lookup, resolver=label)
    return lookup
