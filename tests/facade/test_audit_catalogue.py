"""The catalogue guards completeness: no use case records an uncatalogued action, and
every mutating use case records exactly one event in each organization it changes.

How the guard works
-------------------
The facade's feature groups are discovered by introspection: every public attribute of a
:class:`NulabPass` whose class defines public methods, and the ``...API`` objects they
hold (``np.scim.tokens``). A method that takes a request context (``ctx``), or a protocol
request that carries one (``request``), is a mutating use case (the architecture gives
every mutating call an actor and a context); it must have a scenario in ``SCENARIOS``
below that calls it once on a prepared organization. Any other public method must be
listed in ``NOT_USE_CASES`` with the reason it records nothing of its own. A new group or
method therefore fails this test until it is classified, so coverage grows with the
facade.

Each scenario runs on a :class:`MonitoredStore`, a memory store that compares its state
before and after every committed transaction. The checks:

- the watched call commits at least one transaction and appends exactly one event in each
  expected scope and none elsewhere;
- every committed transaction (preparation included) that changes any non-audit state
  (anything but the audit tables and the outbox's delivery bookkeeping) appends at least
  one event, and never two in one scope.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from nulabpass import Actor, ConfigurationError, NulabPass, RequestContext, Role
from nulabpass._runtime import HOST_SCOPE
from nulabpass.ports import BillingEvent
from nulabpass.stores.memory import MemoryStore
from nulabpass.testing import (
    FakeBillingProvider,
    FrozenClock,
    RecordingMailer,
    make_nulabpass,
)

from .conftest import World

# State that records or delivers rather than changes: audit tables, failure counters,
# the outbox's queue and delivery bookkeeping.
_INFRASTRUCTURE = frozenset(
    {"events", "personal", "failures", "outbox", "outbox_keys", "outbox_pending"}
)

#: Public methods that are not mutating use cases, with the reason they record nothing.
NOT_USE_CASES: dict[str, str] = {
    "accounts.get": "read",
    "accounts.find_by_email": "read",
    "orgs.get": "read",
    "orgs.for_account": "read",
    "members.get": "read",
    "members.list": "read",
    "teams.list": "read",
    "teams.members": "read",
    "conversions.inspect": "read of a pending request by its token",
    "audit.verify": "read-only verification",
    "audit.verify_all": "read-only verification",
    "audit.inclusion_proof": "read of proof hashes",
    "audit.consistency_proof": "read of proof hashes",
    "audit.checkpoints": "read of stored checkpoints",
    "audit.retention": "read of the retention period",
    "access.check": "read",
    "outbox.dispatch_pending": "delivers queued messages of already-audited actions",
    "outbox.pending_count": "read",
    "outbox.subscribe": "registers an in-process listener",
    "plans.status": "read",
    "plans.process_due": "runs each due transition as its own audited use case",
    "domains.get": "read",
    "scim.tokens.list": "read",
    "domains.list": "read",
    "saml.get_configuration": "read",
    "saml.sp_metadata": "read",
    "saml.sp_keys": "read",
    "saml.home_realm": "read",
    "saml.metadata_status": "read",
    "saml.certificate_health": "read",
    "saml.expiring_certificates": "read",
    "saml.refresh_due": "runs each due refresh as its own audited use case",
    "saml.sp_entity_id": "derived from configuration",
    "saml.acs_url": "derived from configuration",
    "saml.login_url": "derived from configuration",
    "domains.check_record": "read of a DNS record, before any domain is added",
    "domains.reverify_due": "runs each due re-verification as its own audited use case",
}


def _snapshot(store: MemoryStore) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, table in vars(store._state).items():
        if name == "events":
            # Head positions, not lengths: a purge shortens a chain without unrecording.
            out[name] = {scope: chain[-1].seq if chain else 0 for scope, chain in table.items()}
        elif isinstance(table, dict):
            out[name] = {k: dict(v) if isinstance(v, dict) else v for k, v in table.items()}
    return out


class MonitoredStore(MemoryStore):
    """A memory store that records what each committed transaction changed."""

    def __init__(self) -> None:
        super().__init__()
        self.commits: list[tuple[frozenset[str], dict[str, int]]] = []

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        if getattr(self._local, "current", None) is not None:
            with super().transaction() as uow:
                yield uow
            return
        before = _snapshot(self)
        with super().transaction() as uow:
            yield uow
        after = _snapshot(self)
        changed = frozenset(name for name in after if after[name] != before.get(name))
        appended = {
            scope: count - before["events"].get(scope, 0)
            for scope, count in after["events"].items()
            if count != before["events"].get(scope, 0)
        }
        self.commits.append((changed, appended))


class Harness:
    """A prepared organization on a monitored store, and the watch over one call."""

    def __init__(self) -> None:
        self.store = MonitoredStore()
        self.clock = FrozenClock()
        self.mailer = RecordingMailer()
        self.billing = FakeBillingProvider()
        self.np: NulabPass = make_nulabpass(
            self.store,
            clock=self.clock,
            mailer=self.mailer,
            billing=self.billing,
        )
        self.world = World(self.np, self.mailer)
        self.org = self.world.org.id
        self.admin = self.world.admin
        self.called: list[str] = []
        self.watched: list[tuple[frozenset[str], dict[str, int]]] | None = None

    @contextmanager
    def watch(self) -> Iterator[None]:
        mark = len(self.store.commits)
        yield
        self.watched = self.store.commits[mark:]

    def token(self, address: str) -> str:
        self.np.outbox.dispatch_pending()
        return self.mailer.tokens_for(address)[-1]

    def account(self, email: str = "dave@partner.test") -> str:
        return self.np.accounts.register(email, "Dave").id

    def member(self, email: str = "dave@partner.test") -> str:
        account_id = self.account(email)
        self.np.members.add(self.admin, self.org, account_id)
        return account_id

    def paid(self) -> None:
        self.np.plans.upgrade(
            self.admin,
            self.org,
            plan_name="pro",
            period_ends_at=self.clock.now() + timedelta(days=30),
            start_now=True,
        )


Scenario = Callable[[Harness], dict[str, int] | None]


def _conversion(h: Harness) -> tuple[str, str]:
    dave = h.account("dave@example.com")
    h.np.conversions.request(h.admin, h.org, dave)
    return dave, h.token("dave@example.com")


def _accounts_register(h: Harness) -> dict[str, int]:
    with h.watch():
        h.np.accounts.register("erin@partner.test", "Erin")
    return {HOST_SCOPE: 1}


def _accounts_update_profile(h: Harness) -> dict[str, int]:
    with h.watch():
        h.np.accounts.update_profile(Actor.system(), h.world.founder.id, display_name="F")
    return {HOST_SCOPE: 1}


def _accounts_deactivate(h: Harness) -> dict[str, int]:
    dave = h.account()
    with h.watch():
        h.np.accounts.deactivate(Actor.system(), dave)
    return {HOST_SCOPE: 1}


def _accounts_reactivate(h: Harness) -> dict[str, int]:
    dave = h.account()
    h.np.accounts.deactivate(Actor.system(), dave)
    with h.watch():
        h.np.accounts.reactivate(Actor.system(), dave)
    return {HOST_SCOPE: 1}


def _orgs_create(h: Harness) -> dict[str, int] | None:
    with h.watch():
        org = h.np.orgs.create(h.admin, "Beta")
    return {org.id: 1}


def _orgs_rename(h: Harness) -> None:
    with h.watch():
        h.np.orgs.rename(h.admin, h.org, "Acme 2")


def _orgs_update_settings(h: Harness) -> None:
    with h.watch():
        h.np.orgs.update_settings(h.admin, h.org, break_glass_requires_admin=True)


def _members_add(h: Harness) -> None:
    dave = h.account()
    with h.watch():
        h.np.members.add(h.admin, h.org, dave)


def _members_create_managed(h: Harness) -> None:
    with h.watch():
        h.np.members.create_managed(
            h.admin, h.org, team_id=h.world.team.id, email="x@example.com", display_name="X"
        )


def _managed(h: Harness) -> str:
    return h.world.managed("carol")


def _members_deactivate(h: Harness) -> None:
    carol = _managed(h)
    with h.watch():
        h.np.members.deactivate(h.admin, h.org, carol)


def _members_reactivate(h: Harness) -> None:
    carol = _managed(h)
    h.np.members.deactivate(h.admin, h.org, carol)
    with h.watch():
        h.np.members.reactivate(h.admin, h.org, carol)


def _members_delete(h: Harness) -> None:
    carol = _managed(h)
    with h.watch():
        h.np.members.delete(h.admin, h.org, carol)


def _members_release(h: Harness) -> None:
    carol = _managed(h)
    with h.watch():
        h.np.members.release(h.admin, h.org, carol)


def _members_leave(h: Harness) -> None:
    dave = h.member()
    with h.watch():
        h.np.members.leave(Actor.account(dave), h.org)


def _members_remove(h: Harness) -> None:
    dave = h.member()
    with h.watch():
        h.np.members.remove(h.admin, h.org, dave)


def _members_set_privileges(h: Harness) -> None:
    dave = h.member()
    with h.watch():
        h.np.members.set_privileges(h.admin, h.org, dave, audit_log_admin=True)


def _members_set_role(h: Harness) -> None:
    dave = h.member()
    with h.watch():
        h.np.members.set_role(h.admin, h.org, dave, Role.ADMIN)


def _invitations_accept(h: Harness) -> None:
    h.world.managed("carol", accept=False)
    token = h.token("carol@example.com")
    with h.watch():
        h.np.invitations.accept(token)


def _invitations_resend(h: Harness) -> None:
    carol = h.world.managed("carol", accept=False)
    with h.watch():
        h.np.invitations.resend(h.admin, h.org, carol)


def _invitations_revoke(h: Harness) -> None:
    carol = h.world.managed("carol", accept=False)
    with h.watch():
        h.np.invitations.revoke(h.admin, h.org, carol)


def _conversions_request(h: Harness) -> None:
    dave = h.account("dave@example.com")
    with h.watch():
        h.np.conversions.request(h.admin, h.org, dave)


def _conversions_accept(h: Harness) -> dict[str, int]:
    dave, token = _conversion(h)
    other = h.np.orgs.create(Actor.account(h.world.founder.id), "Other")
    h.np.members.add(Actor.account(h.world.founder.id), other.id, dave)
    with h.watch():
        h.np.conversions.accept(token)
    # The other organization loses a member: it records that in its own chain.
    return {h.org: 1, other.id: 1}


def _conversions_decline(h: Harness) -> None:
    _, token = _conversion(h)
    with h.watch():
        h.np.conversions.decline(token)


def _conversions_cancel(h: Harness) -> None:
    dave, _ = _conversion(h)
    with h.watch():
        h.np.conversions.cancel(h.admin, h.org, dave)


def _teams_create(h: Harness) -> None:
    with h.watch():
        h.np.teams.create(h.admin, h.org, "Ops")


def _teams_rename(h: Harness) -> None:
    with h.watch():
        h.np.teams.rename(h.admin, h.org, h.world.team.id, "Platform")


def _teams_delete(h: Harness) -> None:
    with h.watch():
        h.np.teams.delete(h.admin, h.org, h.world.team.id)


def _teams_add_member(h: Harness) -> None:
    dave = h.member()
    with h.watch():
        h.np.teams.add_member(h.admin, h.org, h.world.team.id, dave)


def _teams_remove_member(h: Harness) -> None:
    dave = h.member()
    h.np.teams.add_member(h.admin, h.org, h.world.team.id, dave)
    with h.watch():
        h.np.teams.remove_member(h.admin, h.org, h.world.team.id, dave)


def _audit_query(h: Harness) -> None:
    with h.watch():
        h.np.audit.query(h.admin, h.org, limit=1)


def _audit_erase_person(h: Harness) -> dict[str, int]:
    with h.watch():
        h.np.audit.erase_person(Actor.system(), h.world.founder.id)
    return {HOST_SCOPE: 1}


def _audit_checkpoint(h: Harness) -> None:
    with h.watch():
        h.np.audit.checkpoint(Actor.system(), h.org)


def _audit_export(h: Harness) -> None:
    with h.watch():
        export = h.np.audit.export(h.admin, h.org, fmt="jsonl")
    # Streaming the file reads in their own transactions and records nothing more.
    assert sum(1 for _ in export.lines()) > 0


def _audit_set_retention(h: Harness) -> None:
    with h.watch():
        h.np.audit.set_retention(h.admin, h.org, months=24)


def _audit_purge(h: Harness) -> None:
    h.clock.advance(days=500)
    with h.watch():
        h.np.audit.purge(Actor.system(), h.org)


def _plans_start_trial(h: Harness) -> dict[str, int]:
    org = h.np.orgs.create(h.admin, "Beta")
    with h.watch():
        h.np.plans.start_trial(h.admin, org.id)
    return {org.id: 1}


def _plans_upgrade(h: Harness) -> None:
    with h.watch():
        h.paid()


def _plans_change_seats(h: Harness) -> None:
    h.paid()
    with h.watch():
        h.np.plans.change_seats(h.admin, h.org, 50)


def _plans_cancel(h: Harness) -> None:
    h.paid()
    with h.watch():
        h.np.plans.cancel(h.admin, h.org)


def _plans_resume(h: Harness) -> None:
    h.paid()
    h.np.plans.cancel(h.admin, h.org)
    with h.watch():
        h.np.plans.resume(h.admin, h.org)


def _plans_apply_billing_event(h: Harness) -> None:
    event = BillingEvent(
        id="evt_1",
        org_id=h.org,
        kind="upgrade",
        occurred_at=h.clock.now(),
        plan_name="pro",
        period_ends_at=h.clock.now() + timedelta(days=30),
        start_now=True,
    )
    body, headers = h.billing.webhook(event)
    with h.watch():
        h.np.plans.apply_billing_event(body, headers)


def _domain(h: Harness, name: str = "acme.test") -> str:
    h.np.domains.add(h.admin, h.org, name)
    return name


def _domains_add(h: Harness) -> None:
    with h.watch():
        h.np.domains.add(h.admin, h.org, "acme.test")


def _domains_verify(h: Harness) -> None:
    name = _domain(h)
    view = h.np.domains.get(Actor.system(), h.org, name)
    resolver = h.np.domains.resolvers[0]
    assert view.record_value is not None
    resolver.publish(view.record_name, view.record_value)  # type: ignore[attr-defined]
    with h.watch():
        assert h.np.domains.verify(h.admin, h.org, name).verified


def _domains_remove(h: Harness) -> None:
    name = _domain(h)
    with h.watch():
        h.np.domains.remove(h.admin, h.org, name)


def _domains_renew_challenge(h: Harness) -> None:
    name = _domain(h)
    with h.watch():
        h.np.domains.renew_challenge(h.admin, h.org, name)


def _domains_set_include_subdomains(h: Harness) -> None:
    name = _domain(h)
    with h.watch():
        h.np.domains.set_include_subdomains(h.admin, h.org, name, True)


def _scim_token(h: Harness) -> tuple[str, str]:
    token, secret = h.np.scim.tokens.create(h.admin, h.org, "Okta")
    return token.id, secret


def _scim_handle(h: Harness) -> None:
    from nulabpass.web import ScimTestClient

    _, secret = _scim_token(h)
    client = ScimTestClient(h.np, secret)
    with h.watch():
        reply = client.post(
            "/Users",
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "f@example.com",
            },
        )
    assert reply.status == 201


def _scim_tokens_create(h: Harness) -> None:
    with h.watch():
        _scim_token(h)


def _scim_tokens_rotate(h: Harness) -> None:
    token_id, _ = _scim_token(h)
    with h.watch():
        h.np.scim.tokens.rotate(h.admin, h.org, token_id)


def _scim_tokens_revoke(h: Harness) -> None:
    token_id, _ = _scim_token(h)
    with h.watch():
        h.np.scim.tokens.revoke(h.admin, h.org, token_id)


def _saml_configure(h: Harness) -> None:
    from nulabpass.saml.testing import TestIdentityProvider

    with h.watch():
        h.np.saml.configure(h.admin, h.org, metadata_xml=TestIdentityProvider().metadata())


def _saml_idp(h: Harness, *, allow_idp_initiated: bool = False) -> object:
    from nulabpass.saml.testing import TestIdentityProvider

    idp = TestIdentityProvider()
    h.np.saml.configure(
        h.admin, h.org, metadata_xml=idp.metadata(), allow_idp_initiated=allow_idp_initiated
    )
    h.world.managed("carol")
    return idp


def _saml_begin_login(h: Harness) -> None:
    _saml_idp(h)
    with h.watch():
        h.np.saml.begin_login(h.org)


def _saml_complete_login(h: Harness) -> None:
    from nulabpass.saml.testing import TestIdentityProvider

    idp = _saml_idp(h, allow_idp_initiated=True)
    assert isinstance(idp, TestIdentityProvider)
    xml = idp.response(
        sp_entity_id=h.np.saml.sp_entity_id(h.org),
        acs_url=h.np.saml.acs_url(h.org),
        name_id="carol@example.com",
        now=h.clock.now(),
    )
    with h.watch():
        h.np.saml.complete_login(h.org, TestIdentityProvider.post_value(xml))


_METADATA_URL = "https://idp.example.test/metadata"


def _saml_metadata_url(h: Harness) -> tuple[Any, Any]:
    from nulabpass.saml.testing import TestIdentityProvider
    from nulabpass.testing import StaticMetadataFetcher

    idp = TestIdentityProvider()
    h.np.saml.configure(h.admin, h.org, metadata_xml=idp.metadata())
    fetcher = h.np.saml.metadata_fetcher
    assert isinstance(fetcher, StaticMetadataFetcher)
    fetcher.publish(_METADATA_URL, idp.metadata())
    h.np.saml.set_metadata_url(h.admin, h.org, _METADATA_URL)
    return idp, fetcher


def _saml_set_metadata_url(h: Harness) -> None:
    from nulabpass.saml.testing import TestIdentityProvider

    h.np.saml.configure(h.admin, h.org, metadata_xml=TestIdentityProvider().metadata())
    with h.watch():
        h.np.saml.set_metadata_url(h.admin, h.org, _METADATA_URL)


def _saml_clear_metadata_url(h: Harness) -> None:
    _saml_metadata_url(h)
    with h.watch():
        h.np.saml.clear_metadata_url(h.admin, h.org)


def _saml_refresh_metadata(h: Harness) -> None:
    from nulabpass.saml.testing import TestIdentityProvider

    idp, fetcher = _saml_metadata_url(h)
    moved = TestIdentityProvider(sso_url="https://idp.example.test/sso2", keys=idp.keys)
    fetcher.publish(_METADATA_URL, moved.metadata())
    with h.watch():
        h.np.saml.refresh_metadata(h.org)


def _saml_pending_metadata(h: Harness) -> str:
    from nulabpass.saml.testing import TestIdentityProvider

    _, fetcher = _saml_metadata_url(h)
    fetcher.publish(_METADATA_URL, TestIdentityProvider().metadata())
    pending = h.np.saml.refresh_metadata(h.org)
    assert pending.sha256 is not None
    return pending.sha256


def _saml_approve_pending_metadata(h: Harness) -> None:
    digest = _saml_pending_metadata(h)
    with h.watch():
        h.np.saml.approve_pending_metadata(h.admin, h.org, sha256=digest)


def _saml_reject_pending_metadata(h: Harness) -> None:
    digest = _saml_pending_metadata(h)
    with h.watch():
        h.np.saml.reject_pending_metadata(h.admin, h.org, sha256=digest)


def _saml_recent_failures(h: Harness) -> None:
    with h.watch():
        h.np.saml.recent_failures(h.admin, h.org)


SCENARIOS: dict[str, Scenario] = {
    "saml.configure": _saml_configure,
    "saml.begin_login": _saml_begin_login,
    "saml.complete_login": _saml_complete_login,
    "saml.recent_failures": _saml_recent_failures,
    "saml.set_metadata_url": _saml_set_metadata_url,
    "saml.clear_metadata_url": _saml_clear_metadata_url,
    "saml.refresh_metadata": _saml_refresh_metadata,
    "saml.approve_pending_metadata": _saml_approve_pending_metadata,
    "saml.reject_pending_metadata": _saml_reject_pending_metadata,
    "scim.handle": _scim_handle,
    "scim.tokens.create": _scim_tokens_create,
    "scim.tokens.rotate": _scim_tokens_rotate,
    "scim.tokens.revoke": _scim_tokens_revoke,
    "domains.add": _domains_add,
    "domains.verify": _domains_verify,
    "domains.remove": _domains_remove,
    "domains.renew_challenge": _domains_renew_challenge,
    "domains.set_include_subdomains": _domains_set_include_subdomains,
    "accounts.register": _accounts_register,
    "accounts.update_profile": _accounts_update_profile,
    "accounts.deactivate": _accounts_deactivate,
    "accounts.reactivate": _accounts_reactivate,
    "orgs.create": _orgs_create,
    "orgs.rename": _orgs_rename,
    "orgs.update_settings": _orgs_update_settings,
    "members.add": _members_add,
    "members.create_managed": _members_create_managed,
    "members.deactivate": _members_deactivate,
    "members.reactivate": _members_reactivate,
    "members.delete": _members_delete,
    "members.release": _members_release,
    "members.leave": _members_leave,
    "members.remove": _members_remove,
    "members.set_privileges": _members_set_privileges,
    "members.set_role": _members_set_role,
    "invitations.accept": _invitations_accept,
    "invitations.resend": _invitations_resend,
    "invitations.revoke": _invitations_revoke,
    "conversions.request": _conversions_request,
    "conversions.accept": _conversions_accept,
    "conversions.decline": _conversions_decline,
    "conversions.cancel": _conversions_cancel,
    "teams.create": _teams_create,
    "teams.rename": _teams_rename,
    "teams.delete": _teams_delete,
    "teams.add_member": _teams_add_member,
    "teams.remove_member": _teams_remove_member,
    "audit.query": _audit_query,
    "audit.erase_person": _audit_erase_person,
    "audit.checkpoint": _audit_checkpoint,
    "audit.export": _audit_export,
    "audit.set_retention": _audit_set_retention,
    "audit.purge": _audit_purge,
    "plans.start_trial": _plans_start_trial,
    "plans.upgrade": _plans_upgrade,
    "plans.change_seats": _plans_change_seats,
    "plans.cancel": _plans_cancel,
    "plans.resume": _plans_resume,
    "plans.apply_billing_event": _plans_apply_billing_event,
}


def _api_methods(prefix: str, api: object, found: dict[str, bool], depth: int) -> None:
    """Public methods of ``api``, and of the API objects it holds (``np.scim.tokens``)."""
    methods = inspect.getmembers(type(api), inspect.isfunction)
    if not any(not name.startswith("_") for name, _ in methods):
        return
    for name, fn in methods:
        if not name.startswith("_"):
            # A request context, or a protocol request that carries one, marks a use case.
            params = inspect.signature(fn).parameters
            found[f"{prefix}.{name}"] = "ctx" in params or "request" in params
    if depth == 0 or not hasattr(api, "__dict__"):
        return
    for attr, value in vars(api).items():
        # Nested feature groups follow the facade's naming: ``...API`` classes.
        if not attr.startswith("_") and type(value).__name__.endswith("API"):
            _api_methods(f"{prefix}.{attr}", value, found, depth - 1)


def _public_methods() -> dict[str, bool]:
    """Every public method of every feature group, mapped to whether it is a use case."""
    np = make_nulabpass()
    found: dict[str, bool] = {}
    for group, api in vars(np).items():
        if group.startswith("_") or api is np.store or api is np.clock or api is np.config:
            continue
        _api_methods(group, api, found, depth=1)
    return found


METHODS = _public_methods()


def test_introspection_finds_the_feature_groups() -> None:
    groups = {name.split(".")[0] for name in METHODS}
    assert {"accounts", "orgs", "members", "teams", "plans", "audit"} <= groups


@pytest.mark.parametrize("method", sorted(m for m, takes_ctx in METHODS.items() if takes_ctx))
def test_every_mutating_use_case_records_one_event_per_organization_it_changes(
    method: str,
) -> None:
    scenario = SCENARIOS.get(method)
    if scenario is None:
        pytest.fail(
            f"{method} takes a request context, so it is a mutating use case, but "
            f"tests/facade/{__name__.rsplit('.', 1)[-1]}.py has no scenario for it: add one "
            "to SCENARIOS that calls it once inside h.watch()."
        )
    h = Harness()
    expected = scenario(h) or {h.org: 1}
    assert h.watched, f"the scenario for {method} committed nothing inside its watch"
    appended: dict[str, int] = {}
    for _, per_scope in h.watched:
        for scope, count in per_scope.items():
            appended[scope] = appended.get(scope, 0) + count
    assert appended == expected
    _assert_every_change_is_audited(h)


@pytest.mark.parametrize("method", sorted(m for m, takes_ctx in METHODS.items() if not takes_ctx))
def test_every_other_public_method_is_classified(method: str) -> None:
    assert method in NOT_USE_CASES, (
        f"{method} takes no request context; if it changes state it must take one and "
        "have a scenario, otherwise list it in NOT_USE_CASES with the reason."
    )


def _assert_every_change_is_audited(h: Harness) -> None:
    for changed, appended in h.store.commits:
        if changed - _INFRASTRUCTURE:
            assert appended, f"a transaction changed {sorted(changed)} without an audit event"
        assert all(count == 1 for count in appended.values()), appended


def test_the_monitor_catches_a_change_without_an_event() -> None:
    h = Harness()
    with h.np.store.transaction() as uow:
        org = uow.organizations.get(h.org)
        assert org is not None
        import attrs

        uow.organizations.update(attrs.evolve(org, name="Sneaky"))
    with pytest.raises(AssertionError, match="without an audit event"):
        _assert_every_change_is_audited(h)


def test_an_uncatalogued_action_fails_before_anything_is_written() -> None:
    h = Harness()
    before = len(h.store.commits)
    touched: list[bool] = []

    def body(rec: Any) -> None:
        touched.append(True)

    with pytest.raises(ConfigurationError) as err:
        h.np._runtime.run(
            scope=h.org,
            action="team.teleported",
            actor=h.admin,
            ctx=RequestContext(),
            body=body,
        )
    assert err.value.code == "audit.unknown_action"
    assert touched == []
    assert len(h.store.commits) == before
