"""An in-memory :class:`~nulabpass.ports.KeyProvider` with rotation, for tests and demos."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nulabpass.audit.keys import key_id_of, public_key_of
from nulabpass.ports import SamlSpKey, SigningKey
from nulabpass.saml._spkeys import sp_key
from nulabpass.saml.testing import make_key_pair

__all__ = ["MemoryKeyProvider", "key_id_of"]


class MemoryKeyProvider:
    """Holds Ed25519 keys in memory; :meth:`rotate` makes a new current key and keeps the
    old ones for verification.

    It starts with no SAML SP key: :meth:`add_saml_key` adds one, host-wide or for one
    organization (an organization's own keys replace the host-wide ones), and
    :meth:`retire_saml_key` ends a rotation.
    """

    def __init__(self, seed: bytes | None = None) -> None:
        self._public: dict[str, bytes] = {}
        self._current = self._add(seed)
        self._saml: dict[str | None, list[SamlSpKey]] = {}

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

    def add_saml_key(
        self, org_id: str | None = None, *, key: SamlSpKey | None = None
    ) -> SamlSpKey:
        """Add a SAML SP key (a fresh RSA-2048 key and self-signed certificate unless
        ``key`` is given) for ``org_id``, or host-wide when ``org_id`` is ``None``.

        The first key of a scope is the one in use; a later one is the next key of a
        rotation until :meth:`retire_saml_key` removes the first.
        """
        if key is None:
            pair = make_key_pair(f"nulabpass SP {org_id or 'host'}")
            key = sp_key(pair.key_pem, pair.cert_pem)
        self._saml.setdefault(org_id, []).append(key)
        return key

    def retire_saml_key(self, key_id: str) -> None:
        """Remove the SAML SP key ``key_id`` from every scope."""
        for keys in self._saml.values():
            keys[:] = [key for key in keys if key.key_id != key_id]

    def saml_sp_keys(self, org_id: str) -> Sequence[SamlSpKey]:
        """The organization's own SP keys, else the host-wide ones (possibly none)."""
        return tuple(self._saml.get(org_id) or self._saml.get(None) or ())
