"""An in-memory :class:`~nulabpass.ports.KeyProvider` with rotation, for tests and demos."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nulabpass.audit.keys import key_id_of, public_key_of
from nulabpass.ports import SigningKey

__all__ = ["MemoryKeyProvider", "key_id_of"]


class MemoryKeyProvider:
    """Holds Ed25519 keys in memory; :meth:`rotate` makes a new current key and keeps the
    old ones for verification."""

    def __init__(self, seed: bytes | None = None) -> None:
        self._public: dict[str, bytes] = {}
        self._current = self._add(seed)

    def _add(self, seed: bytes | None) -> SigningKey:
        raw = seed if seed is not None else Ed25519PrivateKey.generate().private_bytes_raw()
        public = public_key_of(raw)
        key = SigningKey(key_id_of(public), raw)
        self._public[key.key_id] = public
        return key

    def rotate(self, seed: bytes | None = None) -> str:
        """Make a new current key; return its id."""
        self._current = self._add(seed)
        return self._current.key_id

    def audit_signing_key(self) -> SigningKey:
        """The current key."""
        return self._current

    def audit_public_key(self, key_id: str) -> bytes | None:
        """The public key of ``key_id``, current or retired."""
        return self._public.get(key_id)

    def public_keys(self) -> dict[str, bytes]:
        """Every public key by id (what a recipient of exports is given)."""
        return dict(self._public)

    def forget(self, key_id: str) -> None:
        """Drop a key entirely, as if it had never been issued here."""
        self._public.pop(key_id, None)
