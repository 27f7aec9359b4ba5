"""The outbox through a real SMTP server: an outage delays invitations, loses none."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest

from nulabpass import Actor, NulabPass
from nulabpass.mail import SmtpMailer, SmtpSettings
from nulabpass.stores.sql import SqlStore
from nulabpass.testing import (
    FrozenClock,
    make_config,
    mark_domain_verified,
    mark_saml_configured,
)

from .smtp_server import StartServer, start_server

pytestmark = pytest.mark.smtp

__all__ = ["start_server"]  # the fixture, imported for pytest to find


def _body(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def test_an_smtp_outage_delays_the_invitation_and_loses_nothing(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    server.handler.data_reply = "451 4.3.0 Mail system temporarily unavailable"
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'np.sqlite3'}")
    store.upgrade()
    clock = FrozenClock()
    mailer = SmtpMailer(
        SmtpSettings(
            host="127.0.0.1",
            port=server.port,
            security="none",
            from_address="no-reply@nulabpass.test",
            timeout=5,
        )
    )
    np = NulabPass(store, config=make_config(), clock=clock, mailer=mailer)
    founder = np.accounts.register("founder@partner.test", "Founder")
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, "Acme")
    np.plans.start_trial(admin, org.id)
    mark_saml_configured(np, org.id)
    mark_domain_verified(np, org.id, "example.com")
    team = np.teams.create(admin, org.id, "Eng")
    carol = np.members.create_managed(
        admin, org.id, team_id=team.id, email="carol@example.com", display_name="Carol"
    )

    assert np.outbox.dispatch_pending().retrying >= 1
    assert server.handler.received == []
    server.handler.data_reply = None  # the server recovers
    clock.advance(minutes=1)
    report = np.outbox.dispatch_pending()
    assert report.delivered >= 1
    assert np.outbox.pending_count() == 0
    (envelope,) = server.handler.received
    assert envelope.rcpt_tos == ["carol@example.com"]
    match = re.search(r"token=([A-Za-z0-9_.%-]+)", _body(envelope.content))
    assert match is not None
    from urllib.parse import unquote

    accepted = np.invitations.accept(unquote(match.group(1)))
    assert accepted.id == carol.id
    assert np.access.check(carol.id).allowed
    store.dispose()
