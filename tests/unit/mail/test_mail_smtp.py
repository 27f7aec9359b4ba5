"""SmtpSettings validation, MIME construction and error translation, without a network.

``smtplib.SMTP`` is replaced by a scripted fake so every failure smtplib can raise is
exercised at each step of the session; ``tests/interop/test_smtp.py`` does the same
against a real server.
"""

from __future__ import annotations

import email
import email.policy
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any

import attrs
import pydantic
import pytest

from nulabpass.errors import ConfigurationError, TransientError
from nulabpass.mail import MailRejected, SmtpMailer, SmtpSettings, render_email
from nulabpass.ports import EmailMessage

PASSWORD = "s3cr3t-Pa55word"


class FakeSMTP:
    """Stands in for ``smtplib.SMTP``: records calls, raises what a test scripts."""

    instances: list[FakeSMTP] = []
    fail: dict[str, BaseException] = {}

    def __init__(self, host: str, port: int, **kwargs: Any) -> None:
        self.host = host
        self.port = port
        self.kwargs = kwargs
        self.calls: list[str] = []
        self.sent: list[tuple[bytes, str, list[str]]] = []
        self.closed = False
        FakeSMTP.instances.append(self)
        self._step("connect")

    def _step(self, name: str) -> None:
        self.calls.append(name)
        if name in FakeSMTP.fail:
            raise FakeSMTP.fail[name]

    def starttls(self, context: ssl.SSLContext | None = None) -> None:
        self._step("starttls")

    def login(self, user: str, password: str) -> None:
        self._step("login")

    def send_message(self, msg: MimeMessage, from_addr: str, to_addrs: list[str]) -> None:
        self._step("send")
        self.sent.append((msg.as_bytes(), from_addr, to_addrs))

    def quit(self) -> None:
        self._step("quit")

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_smtp(monkeypatch: pytest.MonkeyPatch) -> type[FakeSMTP]:
    FakeSMTP.instances = []
    FakeSMTP.fail = {}
    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    monkeypatch.setattr(smtplib, "SMTP_SSL", FakeSMTP)
    return FakeSMTP


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 12, 4, 7, 0, tzinfo=UTC)


def settings(**overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "smtp.example.com",
        "security": "starttls",
        "username": "mailer",
        "password": PASSWORD,
        "from_address": "no-reply@example.com",
        "from_name": "ヌーラボ Pass",
    }
    values.update(overrides)
    return SmtpSettings(**values)


def japanese_message(**overrides: Any) -> EmailMessage:
    message = render_email(
        "invitation",
        to="taro@example.jp",
        language="ja-JP",
        timezone="Asia/Tokyo",
        params={
            "org_name": "株式会社アクメ",
            "inviter_name": "山田花子",
            "display_name": "鈴木太郎",
            "token": "tok",
            "expires_at": "2026-12-11T16:00:00+00:00",
        },
        base_url="https://app.example.com",
        message_id="outbox-42",
    )
    return attrs.evolve(message, **overrides)


def crlf_to_lf(text: str) -> str:
    """Undo SMTP's CRLF line endings, as a receiving mail client does."""
    return text.replace("\r\n", "\n")


# ---------------------------------------------------------------------------------------
# Settings


def test_settings_default_to_starttls_on_the_submission_port() -> None:
    """Without a port, each security mode gets its standard port."""
    base = {"host": "smtp.example.com", "from_address": "a@example.com"}
    assert SmtpSettings(**base).security == "starttls"
    assert SmtpSettings(**base).port == 587
    assert SmtpSettings(**base, security="ssl").port == 465
    assert SmtpSettings(**base, security="none").port == 25
    assert SmtpSettings(**base, security="ssl", port=2465).port == 2465


def test_settings_never_show_the_password() -> None:
    """``repr``, ``str`` and a JSON dump all mask the password."""
    configured = settings()
    for shown in (repr(configured), str(configured), configured.model_dump_json()):
        assert PASSWORD not in shown
    assert configured.password is not None
    assert configured.password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(SmtpMailer(configured))


def test_settings_are_frozen() -> None:
    """Settings cannot change under a running mailer."""
    configured = settings()
    with pytest.raises(pydantic.ValidationError):
        configured.host = "elsewhere"  # type: ignore[misc]


@pytest.mark.parametrize(
    "overrides",
    [
        {"security": "none"},
        {"password": None},
        {"username": None},
        {"from_address": "not an address"},
        {"from_address": "a@"},
        {"from_address": "a@example.com\r\nBcc: b@example.com"},
        {"from_name": "Acme\r\nBcc: b@example.com"},
        {"host": "smtp example.com"},
        {"host": ""},
        {"port": 0},
        {"timeout": 0},
        {"security": "tls"},
        {"ca_file": "/nonexistent/ca.pem"},
        {"unexpected": 1},
    ],
)
def test_settings_refuse_unsafe_or_malformed_values(overrides: dict[str, Any]) -> None:
    """Clear-text credentials, half credentials and header injection are refused."""
    with pytest.raises(pydantic.ValidationError) as caught:
        settings(**overrides)
    assert PASSWORD not in str(caught.value)


def test_unreadable_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A CA file that is not PEM fails when the mailer is built, not on first send."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not a certificate")
    with pytest.raises(ConfigurationError) as caught:
        SmtpMailer(settings(ca_file=ca_file))
    assert caught.value.code == "mail.smtp_ca_file"


# ---------------------------------------------------------------------------------------
# The message on the wire


def test_message_is_multipart_alternative_utf8_with_encoded_headers(
    fake_smtp: type[FakeSMTP],
) -> None:
    """Japanese text survives encoding: ASCII headers on the wire, equal after parsing."""
    message = japanese_message()
    SmtpMailer(settings(), clock=FixedClock()).send(message)
    (client,) = fake_smtp.instances
    wire, envelope_from, envelope_to = client.sent[0]
    assert envelope_from == "no-reply@example.com"
    assert envelope_to == ["taro@example.jp"]

    head = wire.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    assert (
        parsed["Subject"]
        == message.subject
        == "山田花子さんから株式会社アクメへの招待が届いています"
    )
    assert parsed["From"].addresses[0].display_name == "ヌーラボ Pass"
    assert parsed["From"].addresses[0].addr_spec == "no-reply@example.com"
    assert parsed["To"] == "taro@example.jp"
    assert parsed["Message-ID"] == "<outbox-42@example.com>"
    assert parsed["Date"] == "Fri, 04 Dec 2026 07:00:00 +0000"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Content-Language"] == "ja"
    assert parsed.get_content_type() == "multipart/alternative"

    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content_charset() == "utf-8"
    assert text["Content-Transfer-Encoding"] == "base64"
    assert crlf_to_lf(text.get_content()) == message.text
    assert crlf_to_lf(html.get_content()) == message.html


def test_ascii_bodies_stay_readable_on_the_wire(fake_smtp: type[FakeSMTP]) -> None:
    """English mail is sent as 7bit or quoted-printable, never as raw 8-bit."""
    message = render_email(
        "plan_ended",
        to="admin@example.com",
        language="en",
        timezone="UTC",
        params={"org_name": "Acme"},
        base_url="https://app.example.com",
        message_id="<k@mail.example.com>",
    )
    SmtpMailer(settings()).send(message)
    wire = fake_smtp.instances[0].sent[0][0]
    assert wire.isascii()
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    assert parsed["Message-ID"] == "<k@mail.example.com>"
    assert parsed["Date"]
    body = parsed.get_body(("plain",))
    assert body is not None
    assert crlf_to_lf(body.get_content()) == message.text


def test_extra_headers_are_added_and_may_replace_auto_submitted(
    fake_smtp: type[FakeSMTP],
) -> None:
    """Hosts add headers such as Reply-To; Auto-Submitted may be overridden once."""
    message = japanese_message(
        headers={"Reply-To": "admin@acme.example", "Auto-Submitted": "auto-replied"}
    )
    SmtpMailer(settings()).send(message)
    parsed = email.message_from_bytes(
        fake_smtp.instances[0].sent[0][0], policy=email.policy.default
    )
    assert parsed["Reply-To"] == "admin@acme.example"
    assert parsed.get_all("Auto-Submitted") == ["auto-replied"]


@pytest.mark.parametrize("name", ["Bcc", "from", "Message-ID", "Content-Type", "X Bad", "X:Y"])
def test_reserved_or_malformed_extra_headers_are_refused(
    fake_smtp: type[FakeSMTP], name: str
) -> None:
    """Extra headers cannot add a recipient or replace what the mailer writes."""
    with pytest.raises(ConfigurationError) as caught:
        SmtpMailer(settings()).send(japanese_message(headers={name: "x@example.com"}))
    assert caught.value.code == "mail.reserved_header"
    assert fake_smtp.instances == []


@pytest.mark.parametrize("message_id", ["two words", "<a@b>c>", "", "a\r\nb", "日本"])
def test_unusable_message_ids_are_refused(fake_smtp: type[FakeSMTP], message_id: str) -> None:
    """A Message-ID must be a dot-atom, optionally with a domain, so it cannot inject."""
    with pytest.raises(ConfigurationError) as caught:
        SmtpMailer(settings()).send(japanese_message(message_id=message_id))
    assert caught.value.code == "mail.invalid_message_id"


@pytest.mark.parametrize("to", ["nobody", "a@b\r\nBcc: c@d", "a@", "two@x, three@y"])
def test_invalid_recipient_is_rejected_permanently(fake_smtp: type[FakeSMTP], to: str) -> None:
    """An address that cannot be one mailbox will never deliver: MailRejected."""
    with pytest.raises(MailRejected) as caught:
        SmtpMailer(settings()).send(japanese_message(to=to))
    assert caught.value.code == "mail.invalid_recipient"
    assert fake_smtp.instances == []


def test_subject_line_breaks_cannot_inject_headers(fake_smtp: type[FakeSMTP]) -> None:
    """A subject built elsewhere with CRLF still yields one Subject header."""
    SmtpMailer(settings()).send(japanese_message(subject="Hi\r\nBcc: victim@example.com"))
    parsed = email.message_from_bytes(
        fake_smtp.instances[0].sent[0][0], policy=email.policy.default
    )
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Hi Bcc: victim@example.com"


# ---------------------------------------------------------------------------------------
# The session


def test_starttls_then_login_then_send_then_quit(fake_smtp: type[FakeSMTP]) -> None:
    """A STARTTLS session upgrades before it authenticates."""
    SmtpMailer(settings(timeout=5, local_hostname="app.example.com")).send(japanese_message())
    (client,) = fake_smtp.instances
    assert client.calls == ["connect", "starttls", "login", "send", "quit"]
    assert client.kwargs == {"local_hostname": "app.example.com", "timeout": 5.0}
    assert client.closed


def test_plain_session_without_credentials(fake_smtp: type[FakeSMTP]) -> None:
    """``security="none"`` without credentials neither upgrades nor logs in."""
    SmtpMailer(settings(security="none", username=None, password=None)).send(japanese_message())
    assert fake_smtp.instances[0].calls == ["connect", "send", "quit"]
    assert fake_smtp.instances[0].port == 25


def test_ssl_session_passes_a_verifying_context(fake_smtp: type[FakeSMTP]) -> None:
    """Implicit TLS uses a context that checks the certificate and the host name."""
    SmtpMailer(settings(security="ssl")).send(japanese_message())
    (client,) = fake_smtp.instances
    context = client.kwargs["context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert client.calls == ["connect", "login", "send", "quit"]


def test_failed_quit_after_delivery_is_not_a_failure(fake_smtp: type[FakeSMTP]) -> None:
    """Once the server accepted the message, a broken QUIT must not cause a resend."""
    fake_smtp.fail["quit"] = smtplib.SMTPServerDisconnected("gone")
    SmtpMailer(settings()).send(japanese_message())
    assert fake_smtp.instances[0].closed


@pytest.mark.parametrize(
    ("step", "exc", "error", "code"),
    [
        ("connect", ConnectionRefusedError(111, "Connection refused"), TransientError,
         "mail.smtp_unavailable"),
        ("connect", TimeoutError("timed out"), TransientError, "mail.smtp_unavailable"),
        ("connect", smtplib.SMTPConnectError(421, b"busy"), TransientError,
         "mail.smtp_unavailable"),
        ("connect", ssl.SSLCertVerificationError("certificate verify failed"), TransientError,
         "mail.smtp_tls_failed"),
        ("starttls", smtplib.SMTPNotSupportedError("STARTTLS extension not supported"),
         TransientError, "mail.smtp_tls_failed"),
        ("starttls", ssl.SSLError("handshake failure"), TransientError, "mail.smtp_tls_failed"),
        ("login", smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"),
         TransientError, "mail.smtp_auth_failed"),
        ("login", smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported"),
         TransientError, "mail.smtp_auth_failed"),
        ("login", smtplib.SMTPException("No suitable authentication method found."),
         TransientError, "mail.smtp_auth_failed"),
        ("send", smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
         TransientError, "mail.smtp_unavailable"),
        ("send", smtplib.SMTPSenderRefused(451, b"try later", "no-reply@example.com"),
         TransientError, "mail.smtp_unavailable"),
        ("send", smtplib.SMTPSenderRefused(553, b"not allowed", "no-reply@example.com"),
         TransientError, "mail.smtp_refused"),
        ("send", smtplib.SMTPRecipientsRefused({"taro@example.jp": (450, b"busy")}),
         TransientError, "mail.smtp_unavailable"),
        ("send", smtplib.SMTPRecipientsRefused({"taro@example.jp": (550, b"no such user")}),
         MailRejected, "mail.rejected"),
        ("send", smtplib.SMTPDataError(451, b"4.3.0 try again"), TransientError,
         "mail.smtp_unavailable"),
        ("send", smtplib.SMTPDataError(554, b"5.6.0 content rejected"), TransientError,
         "mail.smtp_refused"),
    ],
)  # fmt: skip
def test_failures_are_translated_at_the_boundary(
    fake_smtp: type[FakeSMTP],
    step: str,
    exc: BaseException,
    error: type[Exception],
    code: str,
) -> None:
    """Each smtplib, ssl or socket failure becomes TransientError or MailRejected."""
    fake_smtp.fail[step] = exc
    with pytest.raises(error) as caught:
        SmtpMailer(settings()).send(japanese_message())
    assert getattr(caught.value, "code", None) == code
    assert "smtp.example.com:587" in str(caught.value)
    (client,) = fake_smtp.instances
    if step != "connect":
        # A session that failed is closed without QUIT: after a timeout, QUIT would
        # only wait for another one.
        assert client.closed
        assert "quit" not in client.calls


def test_error_messages_never_contain_the_password(fake_smtp: type[FakeSMTP]) -> None:
    """Even a server that echoes the password does not get it into an error message."""
    fake_smtp.fail["send"] = smtplib.SMTPDataError(554, f"echo {PASSWORD}".encode())
    with pytest.raises(TransientError) as caught:
        SmtpMailer(settings()).send(japanese_message())
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)
    assert "**********" in caught.value.message

    fake_smtp.fail = {"login": smtplib.SMTPAuthenticationError(535, PASSWORD.encode())}
    with pytest.raises(TransientError) as caught:
        SmtpMailer(settings()).send(japanese_message())
    assert PASSWORD not in str(caught.value)


def test_logs_name_only_the_message_id_and_the_recipient_domain(
    fake_smtp: type[FakeSMTP], caplog: pytest.LogCaptureFixture
) -> None:
    """Log records carry no body, no local part and no password."""
    caplog.set_level(logging.DEBUG, logger="nulabpass")
    message = japanese_message()
    mailer = SmtpMailer(settings())
    mailer.send(message)
    fake_smtp.fail["send"] = smtplib.SMTPDataError(451, b"later")
    with pytest.raises(TransientError):
        mailer.send(message)
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.WARNING]
    for record in caplog.records:
        shown = record.getMessage()
        assert record.name == "nulabpass.mail"
        assert "<outbox-42@example.com>" in shown
        assert "example.jp" in shown
        assert "taro" not in shown
        assert PASSWORD not in shown
        assert "鈴木" not in shown
        assert "tok" not in shown.replace("outbox", "")
