"""The in-memory RecordingMailer that tests use in place of SMTP."""

from __future__ import annotations

import threading

import pytest

from nulabpass.errors import TransientError
from nulabpass.mail import RecordingMailer, render_email
from nulabpass.ports import EmailMessage, Mailer


def invitation(to: str, token: str, message_id: str = "m") -> EmailMessage:
    return render_email(
        "invitation",
        to=to,
        language="en",
        timezone="UTC",
        params={
            "org_name": "Acme",
            "inviter_name": "Hanako",
            "display_name": "Taro",
            "token": token,
            "expires_at": "2026-12-11T16:00:00+00:00",
        },
        base_url="https://app.example.com",
        message_id=message_id,
    )


def test_recording_mailer_is_a_mailer() -> None:
    """It satisfies the Mailer port."""
    assert isinstance(RecordingMailer(), Mailer)


def test_sent_messages_are_recorded_in_order() -> None:
    """``sent`` lists what was sent, oldest first, as a snapshot."""
    mailer = RecordingMailer()
    first = invitation("a@example.com", "t1")
    second = invitation("b@example.com", "t2")
    mailer.send(first)
    mailer.send(second)
    snapshot = mailer.sent
    assert snapshot == [first, second]
    snapshot.clear()
    assert len(mailer.sent) == 2


def test_last_to_matches_addresses_case_insensitively() -> None:
    """``last_to`` returns the newest message to an address, or None."""
    mailer = RecordingMailer()
    older = invitation("Taro@Example.com", "t1", "m1")
    newer = invitation("taro@example.com", "t2", "m2")
    mailer.send(older)
    mailer.send(newer)
    assert mailer.last_to("TARO@example.COM") is newer
    assert mailer.sent_to("taro@example.com") == [older, newer]
    assert mailer.last_to("nobody@example.com") is None


def test_tokens_for_decodes_tokens_from_links() -> None:
    """Tokens come back percent-decoded, oldest first, only for that recipient."""
    mailer = RecordingMailer()
    mailer.send(invitation("taro@example.com", "a+b/c=d&e"))
    mailer.send(invitation("hanako@example.com", "other"))
    mailer.send(invitation("taro@example.com", "second"))
    assert mailer.tokens_for("taro@example.com") == ["a+b/c=d&e", "second"]
    assert mailer.tokens_for("nobody@example.com") == []


def test_fail_next_raises_transient_errors_then_recovers() -> None:
    """``fail_next(n)`` simulates an outage of n sends; failed sends are not recorded."""
    mailer = RecordingMailer()
    mailer.fail_next(2)
    message = invitation("taro@example.com", "t")
    for _ in range(2):
        with pytest.raises(TransientError) as caught:
            mailer.send(message)
        assert caught.value.code == "mail.smtp_unavailable"
    mailer.send(message)
    assert mailer.sent == [message]
    assert mailer.attempts == 3


def test_fail_next_refuses_negative_counts() -> None:
    """A negative count is a test bug, reported at once."""
    with pytest.raises(ValueError, match="negative"):
        RecordingMailer().fail_next(-1)


def test_clear_forgets_messages_and_pending_failures() -> None:
    """``clear`` resets the mailer between test phases."""
    mailer = RecordingMailer()
    mailer.send(invitation("taro@example.com", "t"))
    mailer.fail_next(3)
    mailer.clear()
    mailer.send(invitation("taro@example.com", "t"))
    assert len(mailer.sent) == 1
    assert mailer.attempts == 1


def test_concurrent_sends_are_all_recorded_and_failures_counted_exactly() -> None:
    """Eight threads sending at once lose no message and fail exactly n times."""
    mailer = RecordingMailer()
    mailer.fail_next(10)
    message = invitation("taro@example.com", "t")
    failures: list[TransientError] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            try:
                mailer.send(message)
            except TransientError as exc:
                with lock:
                    failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(failures) == 10
    assert len(mailer.sent) == 8 * 50 - 10
    assert mailer.attempts == 8 * 50
