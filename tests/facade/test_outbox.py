"""The durable outbox: written with the change, delivered after commit at least once;
an SMTP outage or a crash loses nothing."""

from __future__ import annotations

import pytest

from nulabpass import DomainEvent
from nulabpass.ports import EmailMessage
from nulabpass.testing import FrozenClock, RecordingMailer

from .conftest import World


def _create(world: World) -> str:
    return world.np.members.create_managed(
        world.admin,
        world.org.id,
        team_id=world.team.id,
        email="carol@example.com",
        display_name="Carol",
    ).id


def test_nothing_is_sent_before_dispatch_and_everything_after(
    world: World, mailer: RecordingMailer
) -> None:
    _create(world)
    assert mailer.sent == []
    assert world.np.outbox.pending_count() >= 1
    world.np.outbox.dispatch_pending()
    assert world.np.outbox.pending_count() == 0
    assert mailer.last_to("carol@example.com") is not None


def test_an_smtp_outage_is_retried_with_backoff_and_loses_nothing(
    world: World, mailer: RecordingMailer, clock: FrozenClock
) -> None:
    np = world.np
    _create(world)
    mailer.fail_next(2)
    first = np.outbox.dispatch_pending()
    assert first.retrying == 1
    assert mailer.sent == []
    # Not due again until the backoff passes.
    assert np.outbox.dispatch_pending().retrying == 0
    clock.advance(seconds=31)
    assert np.outbox.dispatch_pending().retrying == 1
    clock.advance(seconds=61)
    assert np.outbox.dispatch_pending().delivered == 1
    assert len(mailer.tokens_for("carol@example.com")) == 1
    assert np.outbox.pending_count() == 0


class _DiesAfterSending:
    """A mailer whose process dies right after the server accepted the message."""

    def __init__(self, inner: RecordingMailer) -> None:
        self.inner = inner

    def send(self, message: EmailMessage) -> None:
        self.inner.send(message)
        raise SystemExit("dispatcher process killed")


def test_a_crash_after_sending_redelivers_with_the_same_message_id(
    world: World, mailer: RecordingMailer, clock: FrozenClock
) -> None:
    np = world.np
    _create(world)
    np.outbox._mailer = _DiesAfterSending(mailer)
    with pytest.raises(SystemExit):
        np.outbox.dispatch_pending()
    first = mailer.last_to("carol@example.com")
    assert first is not None
    np.outbox._mailer = mailer
    # The dead dispatcher's lease still holds the message...
    assert np.outbox.dispatch_pending().delivered == 0
    assert np.outbox.pending_count() >= 1
    # ...until it runs out; then the message goes again, with the same Message-ID, so
    # the recipient's server can drop the duplicate.
    clock.advance(np.config.outbox_lease)
    assert np.outbox.dispatch_pending().delivered >= 1
    again = mailer.sent_to("carol@example.com")
    assert len(again) == 2
    assert again[0].message_id == again[1].message_id
    assert np.outbox.pending_count() == 0


def test_listeners_get_domain_events_and_failures_retry(world: World, clock: FrozenClock) -> None:
    np = world.np
    received: list[DomainEvent] = []
    calls = {"n": 0}

    def flaky(event: DomainEvent) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("host session store unavailable")
        received.append(event)

    np.outbox.subscribe("account.deactivated", flaky)
    carol = world.managed("carol")
    np.members.deactivate(world.admin, world.org.id, carol)
    report = np.outbox.dispatch_pending()
    assert report.retrying == 1
    assert received == []
    clock.advance(minutes=1)
    np.outbox.dispatch_pending()
    assert [e.payload["account_id"] for e in received] == [carol]
    assert received[0].key.startswith("event:account.deactivated:")


def test_rejected_email_is_not_retried_forever(world: World, mailer: RecordingMailer) -> None:
    _create(world)
    mailer.reject_next(1)
    report = world.np.outbox.dispatch_pending()
    assert report.rejected == 1
    assert world.np.outbox.pending_count() == 0


def test_without_a_mailer_emails_wait(store, clock) -> None:  # type: ignore[no-untyped-def]
    from nulabpass import Actor, NulabPass
    from nulabpass.testing import make_config, mark_domain_verified, mark_saml_configured

    np = NulabPass(store, config=make_config(), clock=clock)
    founder = np.accounts.register("f@partner.test", "F")
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, "Acme")
    np.plans.start_trial(admin, org.id)
    mark_saml_configured(np, org.id)
    mark_domain_verified(np, org.id, "example.com")
    team = np.teams.create(admin, org.id, "T")
    np.members.create_managed(
        admin, org.id, team_id=team.id, email="c@example.com", display_name="C"
    )
    report = np.outbox.dispatch_pending()
    assert report.retrying >= 1
    assert np.outbox.pending_count() >= 1
