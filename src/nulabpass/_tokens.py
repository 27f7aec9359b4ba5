"""Single-use tokens sent by email (invitations, consent requests).

A token is ``<record id>.<mac>`` where the MAC is HMAC-SHA256 under the host's secret key
over the record id and a per-issue nonce. The store keeps only SHA-256 of the token, so a
database leak alone reveals no usable token, and the outbox never holds one: the
dispatcher derives it again just before sending. Issuing a new nonce (resend) makes
every earlier token for the record useless.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["derive_token", "hash_token", "new_nonce", "split_token", "token_matches"]


def new_nonce() -> str:
    """A fresh 128-bit nonce."""
    return secrets.token_hex(16)


def derive_token(secret_key: bytes, purpose: str, record_id: str, nonce: str) -> str:
    """Derive the token for one record and nonce."""
    mac = hmac.new(
        secret_key, f"nulabpass.{purpose}\n{record_id}\n{nonce}".encode(), hashlib.sha256
    ).digest()
    return f"{record_id}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode('ascii')}"


def hash_token(token: str) -> str:
    """SHA-256 of a token, as stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Compare a presented token with a stored hash in constant time."""
    return hmac.compare_digest(hash_token(token), stored_hash)


def split_token(token: str) -> str | None:
    """Return the record id a token names, or ``None`` when it is malformed."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    record_id, sep, mac = token.partition(".")
    if not sep or not record_id or not mac:
        return None
    return record_id
