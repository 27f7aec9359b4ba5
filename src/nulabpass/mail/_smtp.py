"""The SMTP adapter: :class:`SmtpMailer` implements :class:`~nulabpass.ports.Mailer`.

Theory of operation
-------------------
Each :meth:`SmtpMailer.send` opens one connection, optionally upgrades it with STARTTLS
(RFC 3207) or starts in TLS (RFC 8314, section 3.3), authenticates (RFC 4954), sends one
message to one recipient and says QUIT. A connection per message keeps the mailer
stateless and therefore thread-safe; the outbox dispatches a handful of messages at a
time, so the handshake cost does not matter.

Every failure of ``smtplib``, ``ssl`` or the socket layer is translated here, at the
adapter boundary, into a nulabpass error:

- the recipient refused with a 5xx reply (RFC 5321, section 4.2.1): :class:`MailRejected`,
  permanent, so the outbox stops retrying;
- anything else (refused or dropped connections, timeouts, 4xx replies, TLS and
  authentication failures, 5xx replies to MAIL or DATA):
  :class:`~nulabpass.errors.TransientError`, so the outbox retries after an operator
  fixes the server or the settings.

Error messages and log records never contain the password, and log records never
contain a body or a full address: only the message id and the recipient's domain.
"""

from __future__ import annotations

import email.errors
import email.message
import email.policy
import email.utils
import logging
import re
import smtplib
import ssl
from email.headerregistry import Address
from typing import Any, Literal

import pydantic
from pydantic import ConfigDict, Field, FilePath, SecretStr

from nulabpass.errors import ConfigurationError, NulabPassError, TransientError
from nulabpass.mail._errors import MailRejected
from nulabpass.ports import Clock, EmailMessage

__all__ = ["SmtpMailer", "SmtpSettings"]

_log = logging.getLogger("nulabpass.mail")

_DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}

# Header names are printable ASCII without ":" (RFC 5322, section 2.2).
_HEADER_NAME = re.compile(r"[!-9;-~]+")
# dot-atom-text (RFC 5322, section 3.2.3), the form of both halves of a Message-ID.
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+"
_MESSAGE_ID = re.compile(rf"{_ATEXT}(?:@{_ATEXT})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")

# Headers the mailer writes itself. Letting a message set them would allow a second
# From or a Bcc that the envelope does not match.
_RESERVED_HEADERS = frozenset(
    {
        "bcc",
        "cc",
        "content-transfer-encoding",
        "content-type",
        "date",
        "from",
        "message-id",
        "mime-version",
        "return-path",
        "sender",
        "subject",
        "to",
    }
)


def _parse_address(value: str) -> Address:
    """Parse a bare ``local@domain`` address; raise ``ValueError`` if it is not one."""
    try:
        address = Address(addr_spec=value)
    except (ValueError, IndexError, email.errors.HeaderParseError) as exc:
        raise ValueError(f"{value!r} is not an email address") from exc
    if not address.username or not address.domain:
        raise ValueError(f"{value!r} is not an email address")
    return address


class SmtpSettings(pydantic.BaseModel):
    """How to reach the SMTP server. Immutable; the password never appears in ``repr``.

    ``port`` defaults to the port of the chosen ``security``: 465 for ``"ssl"``
    (implicit TLS), 587 for ``"starttls"`` and 25 for ``"none"``. Certificates are
    verified against the system's trust store, or against ``ca_file`` when given (a
    private CA, or a test server's self-signed certificate). Credentials are refused
    with ``security="none"``: they would cross the network in clear text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_address: str
    from_name: str | None = None
    timeout: float = Field(default=30.0, gt=0, description="seconds per network operation")
    ca_file: FilePath | None = None
    local_hostname: str | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("port") is None:
            security = data.get("security", "starttls")
            if security in _DEFAULT_PORTS:
                return {**data, "port": _DEFAULT_PORTS[security]}
        return data

    @pydantic.field_validator("host", "local_hostname")
    @classmethod
    def _no_spaces(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c.isspace() for c in value)):
            raise ValueError("must be a host name without spaces")
        return value

    @pydantic.field_validator("from_address")
    @classmethod
    def _check_from_address(cls, value: str) -> str:
        _parse_address(value)
        return value

    @pydantic.field_validator("from_name")
    @classmethod
    def _check_from_name(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL.search(value):
            raise ValueError("must be one line of text")
        return value

    @pydantic.model_validator(mode="after")
    def _check_credentials(self) -> SmtpSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        if self.username is not None and self.security == "none":
            raise ValueError(
                'credentials need security "ssl" or "starttls"; '
                'with "none" the password would be sent in clear text'
            )
        return self


class SmtpMailer:
    """Delivers :class:`~nulabpass.ports.EmailMessage` values through an SMTP server.

    ``clock``, when given, supplies the ``Date`` header; otherwise the system time at
    the moment of sending is used, which is what RFC 5322 (section 3.6.1) asks for.
    """

    def __init__(self, settings: SmtpSettings, *, clock: Clock | None = None) -> None:
        self._settings = settings
        self._clock = clock
        self._context: ssl.SSLContext | None = None
        if settings.security != "none":
            try:
                self._context = ssl.create_default_context(
                    cafile=str(settings.ca_file) if settings.ca_file is not None else None
                )
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(
                    f"cannot load the SMTP CA file {settings.ca_file}: {exc}",
                    code="mail.smtp_ca_file",
                ) from exc

    @property
    def settings(self) -> SmtpSettings:
        """The settings this mailer was built with."""
        return self._settings

    def __repr__(self) -> str:
        s = self._settings
        return f"SmtpMailer(host={s.host!r}, port={s.port}, security={s.security!r})"

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message``; return only once the server accepted it.

        Raises :class:`MailRejected` when the server refuses the recipient for good,
        :class:`~nulabpass.errors.TransientError` for every failure worth retrying,
        and :class:`~nulabpass.errors.ConfigurationError` for a message that cannot be
        encoded (an invalid Message-ID or a reserved extra header).
        """
        mime = self._build(message)
        # Only the domain is logged: the local part identifies a person.
        domain = message.to.rpartition("@")[2].lower()
        message_id = str(mime["Message-ID"])
        try:
            self._deliver(mime, message.to)
        except NulabPassError as exc:
            _log.warning("mail %s to domain %s not delivered: %s", message_id, domain, exc.code)
            raise
        _log.info("mail %s delivered to domain %s", message_id, domain)

    # -----------------------------------------------------------------------------------
    # Building the MIME message

    def _build(self, message: EmailMessage) -> email.message.EmailMessage:
        s = self._settings
        try:
            recipient = _parse_address(message.to)
        except ValueError:
            raise MailRejected(
                "the recipient is not a single email address",
                code="mail.invalid_recipient",
            ) from None
        # policy.SMTP folds headers and encodes non-ASCII text as RFC 2047 encoded
        # words, with CRLF line endings as SMTP requires (RFC 5321, section 2.3.8).
        mime = email.message.EmailMessage(policy=email.policy.SMTP)
        mime["From"] = Address(display_name=s.from_name or "", addr_spec=s.from_address)
        mime["To"] = recipient
        mime["Subject"] = _CONTROL.sub(" ", message.subject).strip()
        mime["Date"] = (
            email.utils.format_datetime(self._clock.now())
            if self._clock is not None
            else email.utils.formatdate(usegmt=True)
        )
        mime["Message-ID"] = _format_message_id(message.message_id, s.from_address)
        # RFC 3834, section 5: automatic replies (vacation notices) must not answer.
        mime["Auto-Submitted"] = "auto-generated"
        mime.set_content(message.text, subtype="plain", charset="utf-8", cte=_cte(message.text))
        mime.add_alternative(message.html, subtype="html", charset="utf-8", cte=_cte(message.html))
        # Content-* headers are written after the body: set_content() clears them and
        # add_alternative() moves them into the first part.
        if re.fullmatch(r"[A-Za-z0-9-]{1,35}", message.language):
            mime["Content-Language"] = message.language  # RFC 3282
        for name, value in message.headers.items():
            if not _HEADER_NAME.fullmatch(name) or name.lower() in _RESERVED_HEADERS:
                raise ConfigurationError(
                    f"the extra mail header {name!r} is not allowed",
                    code="mail.reserved_header",
                    details={"header": name},
                )
            del mime[name]
            mime[name] = _CONTROL.sub(" ", value).strip()
        return mime

    # -----------------------------------------------------------------------------------
    # Talking to the server

    def _deliver(self, mime: email.message.EmailMessage, to: str) -> None:
        s = self._settings
        step = "connect"
        client: smtplib.SMTP | None = None
        delivered = False
        try:
            if s.security == "ssl":
                client = smtplib.SMTP_SSL(
                    s.host,
                    s.port,
                    local_hostname=s.local_hostname,
                    timeout=s.timeout,
                    context=self._context,
                )
            else:
                client = smtplib.SMTP(
                    s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout
                )
            if s.security == "starttls":
                step = "starttls"
                client.starttls(context=self._context)
            if s.username is not None and s.password is not None:
                step = "login"
                client.login(s.username, s.password.get_secret_value())
            step = "send"
            client.send_message(mime, from_addr=s.from_address, to_addrs=[to])
            delivered = True
        except (OSError, smtplib.SMTPException) as exc:
            # Not chained: the server's reply, which the message deliberately leaves out,
            # can echo credentials and would be printed with the traceback.
            raise self._translate(exc, step) from None
        finally:
            if client is not None:
                _close(client, polite=delivered)

    def _translate(self, exc: BaseException, step: str) -> NulabPassError:
        s = self._settings
        server = f"{s.host}:{s.port}"
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, reply = next(iter(exc.recipients.values()), (0, b""))
            text = self._reply_text(reply)
            if 500 <= code < 600:
                return MailRejected(
                    f"the SMTP server {server} refused the recipient: {code} {text}",
                    details={"smtp_code": str(code)},
                )
            return _unavailable(f"the SMTP server {server} deferred the recipient: {code} {text}")
        # During login, smtplib raises a bare SMTPException when no mechanism fits and
        # SMTPNotSupportedError when the server offers no AUTH at all.
        if isinstance(exc, smtplib.SMTPAuthenticationError) or (
            step == "login" and type(exc) in {smtplib.SMTPException, smtplib.SMTPNotSupportedError}
        ):
            # The server's reply is left out: some servers echo what the client sent.
            return TransientError(
                f"the SMTP server {server} did not accept the login of user "
                f"{s.username!r}; check the SMTP user name and password",
                code="mail.smtp_auth_failed",
            )
        if isinstance(exc, ssl.SSLError) or (
            step == "starttls" and isinstance(exc, smtplib.SMTPNotSupportedError)
        ):
            return TransientError(
                f"TLS with the SMTP server {server} failed: {self._reply_text(str(exc))}; "
                "check the server's certificate, the CA file and the security setting",
                code="mail.smtp_tls_failed",
            )
        if isinstance(exc, smtplib.SMTPResponseException):
            text = self._reply_text(exc.smtp_error)
            if 500 <= exc.smtp_code < 600:
                return TransientError(
                    f"the SMTP server {server} refused the message during {step}: "
                    f"{exc.smtp_code} {text}",
                    code="mail.smtp_refused",
                    details={"smtp_code": str(exc.smtp_code)},
                )
            return _unavailable(
                f"the SMTP server {server} answered {exc.smtp_code} {text} during {step}"
            )
        # smtplib reports a timeout while reading a reply as SMTPServerDisconnected;
        # the TimeoutError survives as its context.
        if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
            return _unavailable(
                f"the SMTP server {server} did not answer within {s.timeout:g} s during {step}"
            )
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return _unavailable(f"the SMTP server {server} closed the connection during {step}")
        return _unavailable(f"cannot reach the SMTP server {server}: {self._reply_text(str(exc))}")

    def _reply_text(self, reply: bytes | str) -> str:
        """A server reply made safe for an error message: one short line, no secret."""
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
        text = _CONTROL.sub(" ", text).strip()[:300]
        password = self._settings.password
        if password is not None and password.get_secret_value():
            text = text.replace(password.get_secret_value(), "**********")
        return text


def _unavailable(message: str) -> TransientError:
    return TransientError(message, code="mail.smtp_unavailable")


def _close(client: smtplib.SMTP, *, polite: bool) -> None:
    """End the session. After a delivery say QUIT, but never let its failure count:
    the server has already taken responsibility for the message (RFC 5321, 6.1)."""
    try:
        if polite:
            client.quit()
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        client.close()


def _cte(body: str) -> str | None:
    """Choose a transfer encoding that needs no 8BITMIME support from the server.

    ASCII bodies are left to the email package (7bit, or quoted-printable for long
    lines); anything else is base64, which is compact for Japanese text.
    """
    return None if body.isascii() else "base64"


def _format_message_id(raw: str, from_address: str) -> str:
    """Return ``raw`` as an RFC 5322 msg-id (section 3.6.4), ``<left@right>``.

    A bare key gets the sender's domain as its right part, so ids stay globally unique
    and stable for the same outbox key.
    """
    value = raw.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    if not _MESSAGE_ID.fullmatch(value):
        raise ConfigurationError(
            f"the message id {raw!r} cannot be used as a Message-ID header",
            code="mail.invalid_message_id",
        )
    if "@" not in value:
        value = f"{value}@{from_address.rpartition('@')[2]}"
    return f"<{value}>"
