"""Errors specific to email delivery."""

from __future__ import annotations

from nulabpass.errors import NulabPassError

__all__ = ["MailRejected"]


# The name states the outcome, like the other errors of the tree (Conflict, NotFound).
class MailRejected(NulabPassError):
    """The mail server permanently refused the message (a 5xx reply to the recipient).

    Retrying cannot help: the address does not exist or the server will never accept
    mail for it. Transient failures raise :class:`~nulabpass.errors.TransientError`
    instead, so an outbox knows which messages to try again.
    """

    default_code = "mail.rejected"
    default_public_message = "The email could not be delivered to this address."
    # The failure is the upstream server's answer, not ours: a gateway error.
    http_status = 502
