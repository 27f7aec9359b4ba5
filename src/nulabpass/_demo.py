"""``nulabpass demo``: the product guide, walked step by step on the embedded store.

Every step calls the public API exactly as a host application would and prints what an
IT admin would see. Features that are not part of this release (SAML sign-in, DNS
domain verification) are not simulated: the walk-through records their outcome through
the documented test helpers and says so.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from nulabpass._context import Actor, RequestContext
from nulabpass._facade import NulabPass
from nulabpass.config import NulabPassConfig
from nulabpass.errors import NulabPassError
from nulabpass.mail import RecordingMailer
from nulabpass.testing._helpers import mark_domain_verified, mark_saml_configured

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
        np = NulabPass(
            store,
            config=NulabPassConfig(
                secret_key=SecretStr(secrets.token_urlsafe(32)),
                base_url="https://tracker.example.com",
                products=("tracker", "diagrams"),
            ),
            mailer=mailer,
        )
        _walk(np, mailer, p, language)
    finally:
        store.dispose()
    out.write(f"\nDone. The demo database is {db_url}\n")
    return 0


def _walk(np: NulabPass, mailer: RecordingMailer, p: _Printer, language: str) -> None:
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

    p.title("SAML SSO and the email domain (features of later releases)")
    p.line("SAML configuration and DNS domain verification are not in this release.")
    p.line("The walk-through records their outcome with nulabpass.testing helpers,")
    p.line("exactly as the test suite does; both are audited as such.")
    mark_saml_configured(np, org.id)
    mark_domain_verified(np, org.id, "acme.example")
    p.line("recorded: SAML configured; acme.example verified")

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
    carol = np.invitations.accept(token, ctx=RequestContext(ip="203.0.113.5", product="tracker"))
    decision = np.access.check(carol.id)
    p.line(f"status={carol.status.value}; access check: {decision.code}")

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
        by = entry.actor.name or entry.actor.display or entry.actor.type
        target = ", ".join(t.email or t.id for t in entry.targets) or "-"
        p.line(
            f"{entry.seq:>3}  {entry.occurred_at:%Y-%m-%d %H:%M:%S}  {entry.action:<37} "
            f"{entry.outcome.value:<8} {by:<14} {target}"
        )

    p.title("The chain is verified")
    result = np.audit.verify(org.id)
    p.line(f"ok={result.ok}: {result.message} head={result.head_hash[:16]}...")
