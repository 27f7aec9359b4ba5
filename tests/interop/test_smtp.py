"""SmtpMailer against a real SMTP server (aiosmtpd) on loopback.

Each test starts its own server in a thread: plain, STARTTLS with a certificate made
here by a throwaway CA, implicit TLS, with and without authentication, and handlers
that defer (451) or refuse (550) to simulate outages and unknown recipients.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import attrs
import pytest

from nulabpass.errors import TransientError
from nulabpass.mail import MailRejected, SmtpMailer, SmtpSettings, render_email
from nulabpass.ports import EmailMessage

from .smtp_server import Server, StartServer, free_port, start_server

aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")

pytestmark = pytest.mark.smtp

__all__ = ["start_server"]  # the fixture, imported for pytest to find

USER = "mailer"
PASSWORD = "Pa55-w0rd-never-logged"
FROM = "no-reply@nulabpass.test"


class Authenticator:
    """Accepts exactly one user name and password, and counts attempts."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, bool]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        ok = (
            isinstance(auth_data, aiosmtpd_smtp.LoginPassword)
            and auth_data.login == USER.encode()
            and auth_data.password == PASSWORD.encode()
        )
        self.attempts.append((mechanism, ok))
        return aiosmtpd_smtp.AuthResult(success=ok, handled=False)


@attrs.frozen
class Tls:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    # Imported here so that the tests needing no TLS still run without cryptography.
    pytest.importorskip("cryptography")
    from _pki import make_test_pki

    pki = make_test_pki(tmp_path_factory.mktemp("smtp-tls"), common_name="127.0.0.1")
    return Tls(ca_file=pki.ca_file, server_context=pki.server_context())


def mailer_for(port: int, **overrides: Any) -> SmtpMailer:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_address": FROM,
        "from_name": "ヌーラボ パス",
        "timeout": 5,
        "local_hostname": "app.nulabpass.test",
    }
    values.update(overrides)
    return SmtpMailer(SmtpSettings(**values))


def invitation(to: str = "taro@example.jp", message_id: str = "outbox-7") -> EmailMessage:
    return render_email(
        "invitation",
        to=to,
        language="ja-JP",
        timezone="Asia/Tokyo",
        params={
            "org_name": "株式会社アクメ <Acme>",
            "inviter_name": "山田花子",
            "display_name": "鈴木太郎",
            "token": "tok/en+=",
            "expires_at": "2026-12-11T16:00:00+00:00",
        },
        base_url="https://app.example.com",
        message_id=message_id,
    )


def received(server: Server, index: int = -1) -> email.message.EmailMessage:
    envelope = server.handler.received[index]
    parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def assert_no_password(caplog: pytest.LogCaptureFixture, *errors: BaseException) -> None:
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()
        assert PASSWORD not in str(record.args)
    assert PASSWORD not in caplog.text
    for error in errors:
        assert PASSWORD not in str(error)
        assert PASSWORD not in repr(error)


# ---------------------------------------------------------------------------------------
# Delivery


def test_japanese_invitation_arrives_intact(start_server: StartServer) -> None:
    """Headers, both parts and the Message-ID arrive and decode to what was rendered."""
    server = start_server()
    message = invitation()
    mailer_for(server.port).send(message)

    (envelope,) = server.handler.received
    assert envelope.mail_from == FROM
    assert envelope.rcpt_tos == ["taro@example.jp"]
    parsed = received(server)
    assert parsed["Subject"] == message.subject
    assert parsed["Subject"] == "山田花子さんから株式会社アクメ <Acme>への招待が届いています"
    sender = parsed["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("ヌーラボ パス", FROM)
    assert parsed["To"] == "taro@example.jp"
    assert parsed["Message-ID"] == "<outbox-7@nulabpass.test>"
    assert parsed["Date"].datetime.tzinfo is not None
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Content-Language"] == "ja"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert lf(text.get_content()) == message.text
    assert lf(html.get_content()) == message.html
    assert "https://app.example.com/invitations/accept?token=tok%2Fen%2B%3D" in message.text
    assert "&lt;Acme&gt;" in message.html


def test_same_message_id_on_redelivery(start_server: StartServer) -> None:
    """A resent outbox message keeps its Message-ID, so receivers can drop duplicates."""
    server = start_server()
    mailer = mailer_for(server.port)
    mailer.send(invitation(message_id="<key-1@outbox.nulabpass.test>"))
    mailer.send(invitation(message_id="<key-1@outbox.nulabpass.test>"))
    ids = {received(server, i)["Message-ID"] for i in range(2)}
    assert ids == {"<key-1@outbox.nulabpass.test>"}


def test_starttls_and_login_with_a_password(
    start_server: StartServer, tls: Tls, caplog: pytest.LogCaptureFixture
) -> None:
    """STARTTLS is negotiated before AUTH, which the server refuses over clear text."""
    caplog.set_level(logging.DEBUG)
    authenticator = Authenticator()
    server = start_server(
        tls_context=tls.server_context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
        auth_required=True,
    )
    mailer = mailer_for(
        server.port,
        security="starttls",
        ca_file=tls.ca_file,
        username=USER,
        password=PASSWORD,
    )
    message = invitation()
    mailer.send(message)
    assert authenticator.attempts[-1][1] is True
    assert received(server)["Message-ID"] == "<outbox-7@nulabpass.test>"
    assert any(
        r.name == "nulabpass.mail" and "example.jp" in r.getMessage() for r in caplog.records
    )
    assert_no_password(caplog)


def test_implicit_tls_with_login(start_server: StartServer, tls: Tls) -> None:
    """``security="ssl"`` speaks TLS from the first byte (RFC 8314)."""
    authenticator = Authenticator()
    # aiosmtpd counts only STARTTLS as TLS when deciding whether to offer AUTH, so
    # auth_require_tls is lifted; this connection is encrypted from its first byte.
    server = start_server(
        ssl_context=tls.server_context, authenticator=authenticator, auth_require_tls=False
    )
    mailer = mailer_for(
        server.port, security="ssl", ca_file=tls.ca_file, username=USER, password=PASSWORD
    )
    mailer.send(invitation())
    assert len(server.handler.received) == 1
    assert authenticator.attempts == [(authenticator.attempts[0][0], True)]


# ---------------------------------------------------------------------------------------
# Failures


def test_wrong_password_is_transient_and_never_echoed(
    start_server: StartServer, tls: Tls, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused login is retryable (an operator fixes it) and the password stays hidden."""
    caplog.set_level(logging.DEBUG)
    server = start_server(
        tls_context=tls.server_context, require_starttls=True, authenticator=Authenticator()
    )
    wrong = PASSWORD + "-typo"
    mailer = mailer_for(
        server.port, security="starttls", ca_file=tls.ca_file, username=USER, password=wrong
    )
    with pytest.raises(TransientError) as caught:
        mailer.send(invitation())
    assert caught.value.code == "mail.smtp_auth_failed"
    assert server.handler.received == []
    assert_no_password(caplog, caught.value)
    assert wrong not in str(caught.value)
    assert wrong not in caplog.text


def test_untrusted_certificate_is_a_tls_failure(start_server: StartServer, tls: Tls) -> None:
    """Without the test CA, the server's certificate is not trusted: nothing is sent."""
    server = start_server(tls_context=tls.server_context, require_starttls=True)
    mailer = mailer_for(server.port, security="starttls")
    with pytest.raises(TransientError) as caught:
        mailer.send(invitation())
    assert caught.value.code == "mail.smtp_tls_failed"
    assert server.handler.received == []


def test_server_without_starttls_is_a_tls_failure(start_server: StartServer, tls: Tls) -> None:
    """A server that does not offer STARTTLS is not silently used in clear text."""
    server = start_server()
    mailer = mailer_for(server.port, security="starttls", ca_file=tls.ca_file)
    with pytest.raises(TransientError) as caught:
        mailer.send(invitation())
    assert caught.value.code == "mail.smtp_tls_failed"
    assert server.handler.received == []


def test_outage_then_recovery(start_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    """A 451 at DATA is a TransientError; once the server recovers, the next send works."""
    caplog.set_level(logging.INFO, logger="nulabpass")
    server = start_server()
    server.handler.data_reply = "451 4.3.0 Mail system temporarily unavailable"
    mailer = mailer_for(server.port)
    with pytest.raises(TransientError) as caught:
        mailer.send(invitation())
    assert caught.value.code == "mail.smtp_unavailable"
    assert "451" in caught.value.message
    assert server.handler.received == []

    server.handler.data_reply = None
    mailer.send(invitation())
    assert len(server.handler.received) == 1
    levels = [r.levelname for r in caplog.records if r.name == "nulabpass.mail"]
    assert levels == ["WARNING", "INFO"]


def test_closing_service_421_is_transient(start_server: StartServer) -> None:
    """421 (service closing) is the other way servers say "later"."""
    server = start_server()
    server.handler.data_reply = "421 4.3.2 Shutting down"
    with pytest.raises(TransientError) as caught:
        mailer_for(server.port).send(invitation())
    assert caught.value.code == "mail.smtp_unavailable"


def test_unknown_recipient_is_rejected_for_good(start_server: StartServer) -> None:
    """A 550 to RCPT raises MailRejected, which the outbox does not retry."""
    server = start_server()
    server.handler.refused_recipients["ghost@example.jp"] = "550 5.1.1 No such user"
    with pytest.raises(MailRejected) as caught:
        mailer_for(server.port).send(invitation(to="ghost@example.jp"))
    assert caught.value.code == "mail.rejected"
    assert caught.value.details["smtp_code"] == "550"
    assert server.handler.received == []


def test_recipient_deferred_with_450_is_transient(start_server: StartServer) -> None:
    """A 4xx to RCPT (greylisting, full mailbox) is worth retrying."""
    server = start_server()
    server.handler.refused_recipients["busy@example.jp"] = "450 4.2.1 Mailbox busy"
    with pytest.raises(TransientError) as caught:
        mailer_for(server.port).send(invitation(to="busy@example.jp"))
    assert caught.value.code == "mail.smtp_unavailable"


def test_nothing_listening_is_transient() -> None:
    """A refused connection is a TransientError naming the server."""
    port = free_port()
    with pytest.raises(TransientError) as caught:
        mailer_for(port).send(invitation())
    assert caught.value.code == "mail.smtp_unavailable"
    assert f"127.0.0.1:{port}" in caught.value.message


def test_silent_server_times_out() -> None:
    """A server that accepts the connection but never greets times out as transient."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(TransientError) as caught:
            mailer_for(port, timeout=0.5).send(invitation())
    assert caught.value.code == "mail.smtp_unavailable"
    assert "did not answer within 0.5 s" in caught.value.message
