"""A :class:`~nulabpass.ports.Mailer` that keeps messages in memory, for tests."""

from __future__ import annotations

import re
import threading
from urllib.parse import parse_qs, urlsplit

from nulabpass.errors import TransientError
from nulabpass.mail._errors import MailRejected
from nulabpass.ports import EmailMessage

__all__ = ["RecordingMailer"]

# Links as the built-in templates print them: an http(s) URL ending at whitespace.
_URL = re.compile(r"https?://[^\s<>\"']+")


class RecordingMailer:
    """Records every message it is asked to send instead of delivering it.

    ``fail_next(n)`` makes the next ``n`` sends raise
    :class:`~nulabpass.errors.TransientError`, as an SMTP outage would, so tests can
    drive an outbox through retries; ``reject_next(n)`` makes them raise
    :class:`~nulabpass.mail.MailRejected`, as a server refusing the recipient would.
    Failed sends are not recorded. All methods are safe to call from several threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: list[EmailMessage] = []
        self._failures_left = 0
        self._rejections_left = 0
        self._attempts = 0

    @property
    def sent(self) -> list[EmailMessage]:
        """The messages sent so far, oldest first (a snapshot: a new list each time)."""
        with self._lock:
            return list(self._sent)

    @property
    def attempts(self) -> int:
        """How many times :meth:`send` was called, failed calls included."""
        with self._lock:
            return self._attempts

    def send(self, message: EmailMessage) -> None:
        """Record ``message``, or raise ``TransientError`` if a failure is pending."""
        with self._lock:
            self._attempts += 1
            if self._failures_left > 0:
                self._failures_left -= 1
                raise TransientError(
                    "the recording mailer was told to fail this send",
                    code="mail.smtp_unavailable",
                )
            if self._rejections_left > 0:
                self._rejections_left -= 1
                raise MailRejected(
                    "the recording mailer was told to reject this recipient",
                    code="mail.rejected",
                )
            self._sent.append(message)

    def reject_next(self, n: int = 1) -> None:
        """Make the next ``n`` calls to :meth:`send` raise ``MailRejected``."""
        if n < 0:
            raise ValueError("n must not be negative")
        with self._lock:
            self._rejections_left = n

    def fail_next(self, n: int = 1) -> None:
        """Make the next ``n`` calls to :meth:`send` fail (replacing any pending count)."""
        if n < 0:
            raise ValueError("n must not be negative")
        with self._lock:
            self._failures_left = n

    def clear(self) -> None:
        """Forget every recorded message and pending failure."""
        with self._lock:
            self._sent.clear()
            self._failures_left = 0
            self._rejections_left = 0
            self._attempts = 0

    def sent_to(self, address: str) -> list[EmailMessage]:
        """Messages sent to ``address`` (compared case-insensitively), oldest first."""
        wanted = address.strip().lower()
        with self._lock:
            return [m for m in self._sent if m.to.strip().lower() == wanted]

    def last_to(self, address: str) -> EmailMessage | None:
        """The most recent message sent to ``address``, or ``None``."""
        messages = self.sent_to(address)
        return messages[-1] if messages else None

    def tokens_for(self, address: str) -> list[str]:
        """Every ``token`` query value in links of the text parts sent to ``address``.

        Oldest message first; values are percent-decoded, ready to pass back to the
        SDK (for example to accept an invitation).
        """
        tokens: list[str] = []
        for message in self.sent_to(address):
            for url in _URL.findall(message.text):
                query = parse_qs(urlsplit(url).query, keep_blank_values=False)
                tokens.extend(query.get("token", []))
        return tokens
