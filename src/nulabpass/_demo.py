"""``nulabpass demo``: the product guide, walked step by step on the embedded store.

Every step calls the public API exactly as a host application would and prints what an
IT admin would see. Two outside parties are stood in for, and the output says so: the
customer's DNS (an in-process resolver holding the published record) and the
customer's identity provider (a test IdP that signs real SAML responses, and whose SCIM
requests go through the WSGI adapter in-process).
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from nulabpass._context import Actor, RequestContext
from nulabpass._facade import NulabPass
from nulabpass.audit.keys import StaticKeyProvider
from nulabpass.audit.verifier import verify_inclusion_proof
from nulabpass.config import NulabPassConfig
from nulabpass.domains import StaticTxtResolver
from nulabpass.errors import NulabPassError
from nulabpass.mail import RecordingMailer
from nulabpass.saml.testing import TestIdentityProvider

__all__ = ["run_demo"]


class _Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.step = 0

    def title(self, text: str) -> None:
        self.step += 1
        self.out.write(f"\n== Step {self.step}. {text}\n")

    def line(self, text: str = "") -> None:
        self.out.write(f"   {text}\n")

    def block(self, text: str) -> None:
        self.out.write(textwrap.indent(text.rstrip() + "\n", "   | ", lambda _line: True))


def run_demo(db_url: str | None, *, language: str = "en", out: TextIO) -> int:
    """Run the walk-through; return the process exit code."""
    import secrets

    from nulabpass.cli import default_demo_path
    from nulabpass.stores.sql import SqlStore

    if db_url is None:
        path: Path = default_demo_path()
        db_url = f"sqlite:///{path}"
    store = SqlStore.from_url(db_url)
    p = _Printer(out)
    try:
        store.upgrade()
        mailer = RecordingMailer()
        dns = StaticTxtResolver()
        # The audit checkpoint key; a host keeps its own in a secrets manager.
        keys = StaticKeyProvider(secrets.token_bytes(32))
        np = NulabPass(
            store,
            config=NulabPassConfig(
                secret_key=SecretStr(secrets.token_urlsafe(32)),
                base_url="https://tracker.example.com",
                products=("tracker", "diagrams"),
            ),
            mailer=mailer,
            resolver=dns,
            keys=keys,
        )
        _walk(np, mailer, dns, TestIdentityProvider(), keys, p, language)
    finally:
        store.dispose()
    out.write(f"\nDone. The demo database is {db_url}\n")
    return 0


def _walk(
    np: NulabPass,
    mailer: RecordingMailer,
    dns: StaticTxtResolver,
    idp: TestIdentityProvider,
    keys: StaticKeyProvider,
    p: _Printer,
    language: str,
) -> None:
    ctx = RequestContext(ip="198.51.100.20", user_agent="demo-browser/1.0", product="tracker")

    p.title("An IT admin signs up with a regular (non-managed) account")
    aiko = np.accounts.register("aiko@partner.example", "Aiko Tanaka", timezone="Asia/Tokyo")
    admin = Actor.account(aiko.id)
    p.line(f"account {aiko.id}  {aiko.email}  ({aiko.display_name})")

    p.title("She creates the organization")
    org = np.orgs.create(admin, "Acme Corp", ctx=ctx)
    membership = np.members.get(org.id, aiko.id)
    p.line(f"organization {org.id}  {org.name!r}")
    p.line(
        f"Aiko is {membership.role.value}, plan admin={membership.plan_admin}, "
        f"audit log admin={membership.audit_log_admin}: the break-glass account"
    )

    p.title("She starts the 30-day free trial")
    status = np.plans.start_trial(admin, org.id, ctx=ctx)
    trial_ends_at = status.record.trial_ends_at or org.created_at
    p.line(f"plan state: {status.state.value}; trial ends {trial_ends_at:%Y-%m-%d %H:%M} UTC")
    p.line("entitled to: " + ", ".join(sorted(c.value for c in status.capabilities)))

    p.title("She verifies the company's email domain")
    view = np.domains.add(admin, org.id, "acme.example", ctx=ctx)
    p.line(f"publish a TXT record at {view.record_name}")
    p.line(f"  with the value {view.record_value}")
    if view.record_value is not None:
        dns.publish(view.record_name, view.record_value)
    p.line("(this walk-through's DNS is an in-process StaticTxtResolver holding the record;")
    p.line(" in production nulabpass asks real name servers through dnspython)")
    check = np.domains.verify(admin, org.id, "acme.example", ctx=ctx)
    p.line(f"check: {check.result.verdict}; domain status: {check.domain.status.value}")

    p.title("She configures SAML single sign-on with the IdP's metadata")
    p.line("(the IdP here is nulabpass.saml.testing.TestIdentityProvider, standing in for")
    p.line(" Okta or Entra ID: it signs real SAML responses with its own key)")
    saml = np.saml.configure(admin, org.id, metadata_xml=idp.metadata(), ctx=ctx)
    p.line(f"IdP entity id: {saml.idp_entity_id}")
    p.line(f"our entity id: {np.saml.sp_entity_id(org.id)}")
    p.line(f"our ACS URL:   {np.saml.acs_url(org.id)}")

    p.title("She creates a team")
    team = np.teams.create(admin, org.id, "Engineering", ctx=ctx)
    p.line(f"team {team.id}  {team.name!r}")

    p.title("She creates a managed account in the team: an invitation is emailed")
    carol = np.members.create_managed(
        admin,
        org.id,
        team_id=team.id,
        email="carol@acme.example",
        display_name="Carol Sato",
        language=language,
        timezone="Asia/Tokyo",
        ctx=ctx,
    )
    p.line(f"managed account {carol.id}  {carol.email}  status={carol.status.value}")
    report = np.outbox.dispatch_pending()
    p.line(f"outbox dispatched: {report.delivered} delivered")
    email = mailer.last_to("carol@acme.example")
    if email is not None:
        p.line(f"To: {email.to}")
        p.line(f"Subject: {email.subject}")
        p.block(email.text)

    p.title("Carol opens the link and accepts")
    token = mailer.tokens_for("carol@acme.example")[-1]
    carol_ctx = RequestContext(ip="203.0.113.5", product="tracker")
    carol = np.invitations.accept(token, ctx=carol_ctx)
    decision = np.access.check(carol.id)
    p.line(f"status={carol.status.value}; access check: {decision.code}")

    p.title("Carol signs in through SAML (SP-initiated)")
    redirect = np.saml.begin_login(org.id, relay_state="/projects", ctx=carol_ctx)
    p.line(f"redirect to the IdP: {redirect.url[:72]}...")
    xml = idp.response(
        sp_entity_id=np.saml.sp_entity_id(org.id),
        acs_url=np.saml.acs_url(org.id),
        name_id="carol@acme.example",
        now=np.clock.now(),
        in_response_to=redirect.request_id,
    )
    login = np.saml.complete_login(
        org.id, TestIdentityProvider.post_value(xml), state=redirect.state, ctx=carol_ctx
    )
    p.line(f"signed in: account {login.account_id} as {login.name_id}")
    p.line(f"back to {login.relay_state}; IdP session {login.session_index}")

    p.title("The IdP provisions Dan through SCIM 2.0")
    from nulabpass.web import ScimTestClient

    scim_token, secret = np.scim.tokens.create(admin, org.id, "Identity provider", ctx=ctx)
    p.line(f"SCIM token {scim_token.id} created (its secret is shown once, stored hashed)")
    p.line("(the IdP's requests go through nulabpass.web.scim_wsgi_app in-process)")
    scim = ScimTestClient(np, secret)
    created = scim.post(
        "/Users",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "dan@acme.example",
            "name": {"givenName": "Dan", "familyName": "Ito"},
            "displayName": "Dan Ito",
            "emails": [{"value": "dan@acme.example", "type": "work", "primary": True}],
            "active": True,
        },
    )
    dan = created.json
    p.line(f"POST /Users -> {created.status}; id {dan['id']}; ETag {created.headers.get('etag')}")
    found = scim.get("/Users?filter=userName%20eq%20%22DAN%40acme.example%22").json
    p.line(f'GET /Users?filter=userName eq "DAN@acme.example" -> {found["totalResults"]} found')
    p.line(f"access check for Dan: {np.access.check(dan['id']).code}")

    p.title("The break-glass rule protects the organization")
    p.line("Aiko tries to leave the organization while she is its only non-managed admin:")
    try:
        np.members.leave(admin, org.id, ctx=ctx)
    except NulabPassError as exc:
        p.line(f"refused [{exc.code}]")
        p.block(exc.message)

    p.title("Aiko upgrades to a paid plan with 10 seats during the trial")
    status = np.plans.upgrade(
        admin,
        org.id,
        plan_name="business",
        period_ends_at=trial_ends_at + timedelta(days=365),
        seats=10,
        ctx=ctx,
    )
    p.line(
        f"plan state: {status.state.value}; the paid period starts when the trial ends "
        f"({status.record.paid_starts_at:%Y-%m-%d}); "
        f"seats {status.managed_accounts}/{status.seats}"
    )

    p.title("Carol leaves the company: her account is deactivated")
    np.members.deactivate(admin, org.id, carol.id, ctx=ctx)
    p.line(f"access check: {np.access.check(carol.id).code}")
    delivered = np.outbox.dispatch_pending()
    p.line(
        f"outbox: {delivered.delivered} delivered, including the account.deactivated event "
        "the host uses to end her sessions"
    )

    p.title("Aiko reads the audit log")
    page = np.audit.query(admin, org.id, newest_first=False, limit=50, ctx=ctx)
    p.line(f"{'#':>3}  {'when (UTC)':<19}  {'action':<37} {'outcome':<8} {'by':<14} target")
    for entry in page.entries:
        by = (entry.actor.name or entry.actor.display or entry.actor.type)[:14]
        target = ", ".join(t.email or t.id for t in entry.targets) or "-"
        p.line(
            f"{entry.seq:>3}  {entry.occurred_at:%Y-%m-%d %H:%M:%S}  {entry.action:<37} "
            f"{entry.outcome.value:<8} {by:<14} {target}"
        )

    p.title("A signed checkpoint lets an auditor check an event offline")
    checkpoint = np.audit.checkpoint(Actor.system("nightly job"), org.id)
    p.line(
        f"checkpoint over {checkpoint.tree_size} events, root {checkpoint.root_hash[:16]}..., "
        f"signed by {checkpoint.key_id}"
    )
    signed_in = next(e for e in page.entries if e.action == "saml.login_succeeded")
    proof = np.audit.inclusion_proof(org.id, signed_in.seq)
    verify_inclusion_proof(proof, keys.audit_public_key)
    p.line(
        f"event #{signed_in.seq} ({signed_in.action}) is in it: a proof of "
        f"{len(proof.path)} hashes, checked with only the public key"
    )

    p.title("The chain is verified")
    result = np.audit.verify(org.id)
    p.line(f"ok={result.ok}: {result.message} head={result.head_hash[:16]}...")
