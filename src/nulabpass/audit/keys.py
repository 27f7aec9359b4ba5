"""Ed25519 keys for audit checkpoints and export manifests.

:class:`StaticKeyProvider` serves one current signing key and any number of retired
public keys, e.g. loaded from files a secrets manager mounts. Key ids are derived from
the public key (:func:`key_id_of`), so a recipient can tell which key signed what.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from nulabpass.errors import ConfigurationError
from nulabpass.ports import SamlSpKey, SigningKey

__all__ = ["StaticKeyProvider", "key_id_of", "public_key_of", "read_key_file"]


def key_id_of(public_key: bytes) -> str:
    """A key id derived from the public key: ``ed25519:`` and 16 hex digits of its hash."""
    return "ed25519:" + hashlib.sha256(public_key).hexdigest()[:16]


def public_key_of(private_key: bytes) -> bytes:
    """The 32-byte public key of a 32-byte Ed25519 private key."""
    return (
        Ed25519PrivateKey.from_private_bytes(private_key)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


def read_key_file(path: str | Path) -> bytes:
    """Read 32 key bytes written as 64 hexadecimal digits (white space ignored)."""
    text = Path(path).read_text(encoding="ascii").strip()
    try:
        raw = binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigurationError(
            f"The key file {path} must hold 64 hexadecimal digits (a 32-byte Ed25519 key).",
            code="audit.invalid_key_file",
        )
    return raw


class StaticKeyProvider:
    """A :class:`~nulabpass.ports.KeyProvider` over fixed keys: ``private_key`` signs;
    ``retired`` maps key ids to public keys that still verify older checkpoints.

    ``saml_sp_keys`` are host-wide SAML SP keys (build each with
    :func:`nulabpass.saml.sp_key`), the one in use first; every organization gets them.
    """

    def __init__(
        self,
        private_key: bytes,
        retired: Mapping[str, bytes] | None = None,
        *,
        saml_sp_keys: Sequence[SamlSpKey] = (),
    ) -> None:
        public = public_key_of(private_key)
        self._current = SigningKey(key_id_of(public), private_key)
        self._public = dict(retired or {})
        self._public[self._current.key_id] = public
        self._saml = tuple(saml_sp_keys)

    def audit_signing_key(self) -> SigningKey:
        """The current key."""
        return self._current

    def audit_public_key(self, key_id: str) -> bytes | None:
        """The public key of ``key_id``, current or retired."""
        return self._public.get(key_id)

    def saml_sp_keys(self, org_id: str) -> Sequence[SamlSpKey]:
        """The host-wide SAML SP keys, whatever the organization."""
        return self._saml
