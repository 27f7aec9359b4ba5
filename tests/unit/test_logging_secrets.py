"""Secrets stay secret: a whole flow on the memory store, with every logger at DEBUG,
never puts the host's secret key, an emailed token, a stored token hash or the SMTP
password into a log record or into an error raised to the caller; audit events carry
no token, token hash or email address outside the erasable personal data."""

from __future__ import annotations

import email.message
import functools
import logging
import re
import smtplib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest

from nulabpass import (
    Actor,
    BreakGlassViolation,
    Conflict,
    InvalidInput,
    NotFound,
    NulabPass,
    NulabPassError,
    PermissionDenied,
    RequestContext,
    TransientError,
)
from nulabpass.audit._chain import canonical_bytes
from nulabpass.audit._model import EventRecord, PersonalDatum
from nulabpass.mail import SmtpMailer, SmtpSettings
from nulabpass.outbox._model import OutboxMessage
from nulabpass.ports import EmailMessage
from nulabpass.testing import (
    FrozenClock,
    RecordingMailer,
    make_nulabpass,
    mark_domain_verified,
    mark_saml_configured,
)

SMTP_USER = "relay-user"
SMTP_PASSWORD = "smtp-Pa55word-that-must-never-leak"
LOGGERS = ("nulabpass", "nulabpass.audit", "nulabpass.outbox", "nulabpass.mail")
CTX = RequestContext(
    ip="198.51.100.7", user_agent="browser/1.0", request_id="req-42", product="tracker"
)


class _EchoingSmtp:
    """Stands in for ``smtplib.SMTP``: accepts STARTTLS, then fails the way the class
    attribute ``fail_at`` says, echoing the password in its reply as some servers do."""

    fail_at = "login"
    seen: ClassVar[list[email.message.EmailMessage]] = []

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def starttls(self, **_kwargs: Any) -> None:
        return None

    def login(self, user: str, password: str) -> None:
        if self.fail_at == "login":
            raise smtplib.SMTPAuthenticationError(
                535, f"5.7.8 credentials {user}:{password} rejected".encode()
            )

    def send_message(self, message: email.message.EmailMessage, **_kwargs: Any) -> None:
        _EchoingSmtp.seen.append(message)
        if self.fail_at == "data":
            raise smtplib.SMTPDataError(554, f"5.6.0 no thanks, {SMTP_PASSWORD}".encode())
        if self.fail_at == "disconnect":
            raise smtplib.SMTPServerDisconnected(f"lost while sending with {SMTP_PASSWORD}")

    def quit(self) -> None:
        return None

    def close(self) -> None:
        return None


def _tokens_in(message: email.message.EmailMessage) -> list[str]:
    body = message.get_body(("plain",))
    assert body is not None
    text = str(body.get_content())
    return [
        token
        for url in re.findall(r"https?://\S+", text)
        for token in parse_qs(urlsplit(url).query).get("token", [])
    ]


@attrs.define
class Flow:
    np: NulabPass
    mailer: RecordingMailer
    emails: set[str] = attrs.field(factory=set)
    errors: list[NulabPassError] = attrs.field(factory=list)
    tokens: list[str] = attrs.field(factory=list)
    outbox: list[OutboxMessage] = attrs.field(factory=list)

    def expect(self, kind: type[NulabPassError], call: Callable[[], object]) -> NulabPassError:
        with pytest.raises(kind) as info:
            call()
        self.errors.append(info.value)
        return info.value

    def dispatch(self, np: NulabPass | None = None) -> None:
        """Dispatch the outbox, remembering every message it held first."""
        target = np or self.np
        with target.store.transaction() as uow:
            self.outbox.extend(
                uow.outbox.claim_due(target.clock.now() + timedelta(days=3650), 1000)
            )
        target.outbox.dispatch_pending(limit=1000)

    def token(self, email: str) -> str:
        self.dispatch()
        token = self.mailer.tokens_for(email)[-1]
        self.tokens.append(token)
        return token

    def managed(self, admin: Actor, org_id: str, team_id: str, local: str) -> str:
        email = f"{local}@example.com"
        self.emails.add(email)
        account = self.np.members.create_managed(
            admin, org_id, team_id=team_id, email=email, display_name=local.title(), ctx=CTX
        )
        return account.id

    def token_hashes(self) -> list[str]:
        hashes: list[str] = []
        with self.np.store.transaction() as uow:
            for token in self.tokens:
                record_id = token.partition(".")[0]
                invitation = uow.invitations.get(record_id)
                conversion = uow.conversions.get(record_id)
                for record in (invitation, conversion):
                    if record is not None:
                        hashes.append(record.token_hash)
        return hashes

    def secrets(self) -> dict[str, str]:
        """Every secret of the flow, labelled for failure messages."""
        found: dict[str, str] = {
            "secret key": self.np.config.secret_key.get_secret_value(),
            "SMTP password": SMTP_PASSWORD,
        }
        for n, token in enumerate(self.tokens):
            found[f"token {n}"] = token
            found[f"token {n} MAC"] = token.partition(".")[2]
        for n, token_hash in enumerate(self.token_hashes()):
            found[f"token hash {n}"] = token_hash
        return found

    def events(self) -> list[tuple[EventRecord, tuple[PersonalDatum, ...]]]:
        with self.np.store.transaction() as uow:
            chains = [list(uow.audit.iter_chain(scope)) for scope in uow.audit.scopes()]
            events = [e for chain in chains for e in chain]
            personal = uow.audit.personal_for([e.id for e in events])
        return [(e, personal.get(e.id, ())) for e in events]


def _run_flow(monkeypatch: pytest.MonkeyPatch) -> Flow:
    clock = FrozenClock()
    mailer = RecordingMailer()
    np = make_nulabpass(clock=clock, mailer=mailer)
    flow = Flow(np, mailer)
    system = Actor.system()

    founder = np.accounts.register("founder@partner.test", "Founder", ctx=CTX)
    flow.emails.add(founder.email)
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, "Acme", ctx=CTX)
    np.plans.start_trial(admin, org.id, ctx=CTX)
    mark_saml_configured(np, org.id)
    mark_domain_verified(np, org.id, "example.com")
    team = np.teams.create(admin, org.id, "Engineering", ctx=CTX)

    # An invitation: tampered, accepted, replayed.
    carol = flow.managed(admin, org.id, team.id, "carol")
    carol_token = flow.token("carol@example.com")
    record_id, _, mac = carol_token.partition(".")
    flow.expect(NotFound, lambda: np.invitations.accept(f"{record_id}.{mac[::-1]}", ctx=CTX))
    flow.expect(NotFound, lambda: np.invitations.accept(carol_token + "x", ctx=CTX))
    np.invitations.accept(carol_token, ctx=CTX)
    flow.expect(Conflict, lambda: np.invitations.accept(carol_token, ctx=CTX))

    # A resent invitation: the first token is revoked, the second works.
    bob = flow.managed(admin, org.id, team.id, "bob")
    first_bob = flow.token("bob@example.com")
    np.invitations.resend(admin, org.id, bob, ctx=CTX)
    second_bob = flow.token("bob@example.com")
    assert first_bob != second_bob
    flow.expect(Conflict, lambda: np.invitations.accept(first_bob, ctx=CTX))
    np.invitations.accept(second_bob, ctx=CTX)

    # An invitation left to expire.
    flow.managed(admin, org.id, team.id, "dave")
    dave_token = flow.token("dave@example.com")
    clock.advance(days=8)
    flow.expect(Conflict, lambda: np.invitations.accept(dave_token, ctx=CTX))

    # A consent conversion: the wrong kind of link, accepted, replayed, declined late.
    dana = np.accounts.register("dana@example.com", "Dana", ctx=CTX)
    flow.emails.add(dana.email)
    np.conversions.request(admin, org.id, dana.id, ctx=CTX)
    dana_token = flow.token("dana@example.com")
    flow.expect(NotFound, lambda: np.invitations.accept(dana_token, ctx=CTX))
    flow.expect(NotFound, lambda: np.conversions.accept(carol_token, ctx=CTX))
    np.conversions.inspect(dana_token)
    np.conversions.accept(dana_token, ctx=CTX)
    flow.expect(Conflict, lambda: np.conversions.accept(dana_token, ctx=CTX))
    flow.expect(Conflict, lambda: np.conversions.decline(dana_token, ctx=CTX))

    # Refusals of every kind.
    flow.expect(
        Conflict,
        lambda: np.members.create_managed(
            admin, org.id, team_id=team.id, email="carol@example.com", display_name="C", ctx=CTX
        ),
    )
    flow.expect(PermissionDenied, lambda: np.audit.query(Actor.account(carol), org.id, ctx=CTX))
    flow.expect(BreakGlassViolation, lambda: np.members.leave(admin, org.id, ctx=CTX))
    flow.expect(InvalidInput, lambda: np.audit.query(admin, org.id, cursor="not-a-cursor"))
    flow.expect(InvalidInput, lambda: np.accounts.register("no-at-sign", "X"))
    flow.expect(PermissionDenied, lambda: np.audit.erase_person(admin, carol, ctx=CTX))
    np.audit.query(admin, org.id, ctx=CTX)
    np.audit.erase_person(system, carol, ctx=CTX)

    # Email outages through the recording mailer: retried, then delivered.
    flow.managed(admin, org.id, team.id, "erin")
    mailer.fail_next(2)
    for _ in range(2):
        flow.dispatch()
        clock.advance(hours=2)
    flow.token("erin@example.com")

    # Email through SMTP with a password, against servers that echo it back.
    monkeypatch.setattr(smtplib, "SMTP", _EchoingSmtp)
    _EchoingSmtp.seen.clear()
    smtp = SmtpMailer(
        SmtpSettings(
            host="127.0.0.1",
            port=2525,
            security="starttls",
            username=SMTP_USER,
            password=SMTP_PASSWORD,
            from_address="no-reply@app.example.test",
        )
    )
    np_smtp = NulabPass(np.store, config=np.config, mailer=smtp, clock=clock)
    for n, fail_at in enumerate(("login", "data", "disconnect")):
        _EchoingSmtp.fail_at = fail_at
        flow.managed(admin, org.id, team.id, f"frank{n}")
        flow.dispatch(np_smtp)
        clock.advance(hours=2)
    for message in _EchoingSmtp.seen:
        flow.tokens.extend(t for t in _tokens_in(message) if t not in flow.tokens)
    last = mailer.sent[-1]
    for fail_at in ("login", "data", "disconnect"):
        _EchoingSmtp.fail_at = fail_at
        flow.expect(TransientError, functools.partial(smtp.send, last))
    return flow


@pytest.fixture
def flow(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Flow:
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return _run_flow(monkeypatch)


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records of the flow (run while the fixture was set up) and of the test itself."""
    return caplog.get_records("setup") + caplog.get_records("call")


def _record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args), record.exc_text or "", repr(vars(record))]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def _error_text(error: NulabPassError) -> str:
    return "\n".join(
        [
            str(error),
            repr(error),
            repr(error.args),
            error.message,
            error.public_message,
            repr(dict(error.details)),
        ]
    )


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [label for label, value in secrets.items() if value and value in text]


def test_the_flow_exercises_tokens_failures_and_every_logger(
    flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    assert len(flow.tokens) >= 9
    assert len(flow.token_hashes()) == len(flow.tokens)
    assert len(flow.errors) >= 15
    records = _records(caplog)
    assert {"nulabpass.audit", "nulabpass.outbox", "nulabpass.mail"} <= {r.name for r in records}
    assert any(record.levelno == logging.DEBUG for record in records)
    assert any(record.levelno >= logging.WARNING for record in records)


def test_no_log_record_contains_a_secret(flow: Flow, caplog: pytest.LogCaptureFixture) -> None:
    secrets = flow.secrets()
    leaks = {
        f"{record.name}: {record.getMessage()[:120]}": found
        for record in _records(caplog)
        if (found := _leaks(_record_text(record), secrets))
    }
    assert leaks == {}


def test_no_error_raised_along_the_way_contains_a_secret(flow: Flow) -> None:
    secrets = flow.secrets()
    leaks = {
        f"{error.code}: {error.message[:120]}": found
        for error in flow.errors
        if (found := _leaks(_error_text(error), secrets))
    }
    assert leaks == {}
    for error in flow.errors:
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", error.code), error.code


def test_audit_events_hold_no_token_token_hash_or_email_outside_personal_data(
    flow: Flow,
) -> None:
    secrets = flow.secrets()
    events = flow.events()
    assert len(events) >= 25
    for event, personal in events:
        chained = canonical_bytes(event).decode("utf-8")
        assert _leaks(chained, secrets) == [], (event.action, event.seq)
        assert _leaks(repr(personal), secrets) == [], (event.action, event.seq)
        for key, value in event.metadata.items():
            text = str(value)
            assert "@" not in text, (event.action, key, text)
            assert not any(email in text for email in flow.emails), (event.action, key)
        assert not any(email in chained for email in flow.emails), (event.action, event.seq)


def test_outbox_messages_hold_no_token_or_token_hash(flow: Flow) -> None:
    secrets = flow.secrets()
    assert len(flow.outbox) >= 20
    for message in flow.outbox:
        text = repr(attrs.asdict(message))
        assert _leaks(text, secrets) == [], (message.topic, message.id)


def test_a_failed_smtp_login_keeps_an_echoed_password_out_of_the_logged_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(smtplib, "SMTP", _EchoingSmtp)
    monkeypatch.setattr(_EchoingSmtp, "fail_at", "login")
    smtp = SmtpMailer(
        SmtpSettings(
            host="127.0.0.1",
            port=2525,
            security="starttls",
            username=SMTP_USER,
            password=SMTP_PASSWORD,
            from_address="no-reply@app.example.test",
        )
    )
    message = EmailMessage(
        to="carol@example.com",
        subject="Welcome",
        text="Hello",
        html="<p>Hello</p>",
        message_id="welcome-1",
        language="en",
    )
    host_log = logging.getLogger("host.app")
    with caplog.at_level(logging.ERROR, logger="host.app"):
        try:
            smtp.send(message)
        except TransientError:
            host_log.exception("sending mail failed")
    (record,) = [r for r in caplog.records if r.name == "host.app"]
    assert record.exc_info is not None
    assert SMTP_PASSWORD not in logging.Formatter().formatException(record.exc_info)
