"""Service-provider keys: checking a key and certificate pair before it is used.

A host hands its SP keys to nulabpass through :meth:`KeyProvider.saml_sp_keys
<nulabpass.ports.KeyProvider.saml_sp_keys>`. :func:`sp_key` builds one from PEM bytes
and refuses what would only fail later, at an IdP, with a vaguer message: a key that is
not RSA (the SAML bindings nulabpass signs with are RSA-SHA256 and RSA-OAEP), one under
2048 bits, or a certificate whose public key is not the key's.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nulabpass.errors import ConfigurationError
from nulabpass.ports import SamlSpKey

__all__ = ["MIN_RSA_BITS", "sp_key", "sp_key_id"]

#: The smallest RSA modulus accepted for an SP key.
MIN_RSA_BITS = 2048


def _bad(message: str) -> ConfigurationError:
    return ConfigurationError(message, code="saml.sp_key_invalid")


def sp_key_id(certificate_der: bytes) -> str:
    """The id of an SP key: ``sha256:`` and 16 hex digits of its certificate's hash."""
    return "sha256:" + hashlib.sha256(certificate_der).hexdigest()[:16]


def sp_key(private_key_pem: bytes, certificate_pem: bytes) -> SamlSpKey:
    """Check an SP key pair and return it as a :class:`~nulabpass.ports.SamlSpKey`.

    Raises :class:`~nulabpass.errors.ConfigurationError` (``saml.sp_key_invalid``) for an
    unreadable or encrypted key, a non-RSA or short key, an unreadable certificate, or a
    certificate that does not belong to the key.
    """
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError):
        raise _bad(
            "The SAML SP key must be an unencrypted PEM private key (PKCS#8 or PKCS#1)."
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _bad("The SAML SP key must be an RSA key (RSA-SHA256 and RSA-OAEP need one).")
    if key.key_size < MIN_RSA_BITS:
        raise _bad(f"The SAML SP key has {key.key_size} bits; use at least {MIN_RSA_BITS}.")
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError:
        raise _bad("The SAML SP certificate must be a PEM X.509 certificate.") from None
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers() != (
        key.public_key().public_numbers()
    ):
        raise _bad("The SAML SP certificate does not belong to the SP key.")
    der = cert.public_bytes(serialization.Encoding.DER)
    return SamlSpKey(
        key_id=sp_key_id(der),
        private_key_pem=private_key_pem,
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
    )
