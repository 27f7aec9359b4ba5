"""IdP metadata in, SP metadata out (SAML 2.0 Metadata, saml-metadata-2.0-os).

Parsing accepts an ``EntityDescriptor`` with one ``IDPSSODescriptor`` (or an
``EntitiesDescriptor`` holding exactly one such entity). Every problem raises
:class:`~nulabpass.errors.InvalidInput` with code ``saml.metadata_invalid`` and the
offending field in ``details["field"]``, so an admin knows which value to correct.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from datetime import datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from nulabpass.errors import InvalidInput
from nulabpass.saml._errors import SamlValidationError
from nulabpass.saml._model import BINDING_POST, BINDING_REDIRECT, NAMEID_EMAIL, IdpConfig
from nulabpass.saml._xml import DS, MD, NS, SAMLP, parse_xml

__all__ = [
    "certificate_from_pem",
    "idp_config_from_fields",
    "parse_idp_metadata",
    "sp_metadata",
]

_MAX_METADATA_BYTES = 1024 * 1024
_CODE = "saml.metadata_invalid"

_ENTITY = etree.XPath(
    "/md:EntityDescriptor | /md:EntitiesDescriptor/md:EntityDescriptor", namespaces=NS
)
_IDPSSO = etree.XPath("md:IDPSSODescriptor", namespaces=NS)
_KEYS = etree.XPath("md:KeyDescriptor", namespaces=NS)
_X509 = etree.XPath("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS)
_SSO = etree.XPath("md:SingleSignOnService", namespaces=NS)


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, code=_CODE, details={"field": field})


def parse_idp_metadata(data: bytes, *, now: datetime | None = None) -> IdpConfig:
    """Read an identity provider's configuration from its metadata document.

    ``now``, when given, refuses a document whose ``validUntil`` has passed.
    """
    try:
        root = parse_xml(data, what="IdP metadata", max_bytes=_MAX_METADATA_BYTES)
    except SamlValidationError as exc:
        raise _bad("metadata", exc.message) from None
    entities = _ENTITY(root)
    if not entities:
        raise _bad(
            "EntityDescriptor",
            "The IdP metadata has no md:EntityDescriptor at its root "
            f"(found {etree.QName(root).localname!r}).",
        )
    idp_entities = [e for e in entities if _IDPSSO(e)]
    if len(idp_entities) != 1:
        raise _bad(
            "IDPSSODescriptor",
            "The IdP metadata must describe exactly one identity provider "
            f"(md:IDPSSODescriptor); found {len(idp_entities)}.",
        )
    entity = idp_entities[0]
    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id:
        raise _bad("entityID", "The md:EntityDescriptor has no entityID attribute.")
    if now is not None:
        for element in (root, entity):
            valid_until = element.get("validUntil")
            if valid_until is None:
                continue
            until = _parse_time(valid_until, "validUntil")
            if until <= now:
                raise _bad(
                    "validUntil",
                    f"The IdP metadata expired at {until.isoformat()} (validUntil); "
                    "download a current copy from the identity provider.",
                )
    descriptors = _IDPSSO(entity)
    if len(descriptors) != 1:
        raise _bad(
            "IDPSSODescriptor",
            f"The entity has {len(descriptors)} md:IDPSSODescriptor elements; expected one.",
        )
    sso = descriptors[0]
    if SAMLP not in (sso.get("protocolSupportEnumeration") or "").split():
        raise _bad(
            "protocolSupportEnumeration",
            "The md:IDPSSODescriptor does not list the SAML 2.0 protocol "
            f"({SAMLP}) in protocolSupportEnumeration.",
        )
    certificates: list[bytes] = []
    for key in _KEYS(sso):
        if key.get("use") not in (None, "signing"):
            continue
        for cert in _X509(key):
            certificates.append(_der_from_base64(cert.text or "", "X509Certificate"))
    redirect_url = post_url = None
    for service in _SSO(sso):
        binding = service.get("Binding")
        location = (service.get("Location") or "").strip()
        if binding == BINDING_REDIRECT and redirect_url is None:
            redirect_url = _https_url(location, "SingleSignOnService@Location")
        elif binding == BINDING_POST and post_url is None:
            post_url = _https_url(location, "SingleSignOnService@Location")
    want_signed = (sso.get("WantAuthnRequestsSigned") or "false").strip() in ("true", "1")
    return idp_config_from_fields(
        entity_id=entity_id,
        signing_certificates=certificates,
        sso_redirect_url=redirect_url,
        sso_post_url=post_url,
        want_authn_requests_signed=want_signed,
    )


def idp_config_from_fields(
    *,
    entity_id: str,
    signing_certificates: Sequence[bytes],
    sso_redirect_url: str | None = None,
    sso_post_url: str | None = None,
    want_authn_requests_signed: bool = False,
) -> IdpConfig:
    """Validate hand-entered IdP settings (DER or PEM certificates) into an IdpConfig."""
    entity_id = entity_id.strip()
    if not entity_id or len(entity_id) > 1024:
        raise _bad("entityID", "The IdP entity ID must be 1 to 1024 characters.")
    ders: list[bytes] = []
    for raw in signing_certificates:
        der = certificate_from_pem(raw) if raw.lstrip().startswith(b"-----") else raw
        _check_certificate(der)
        if der not in ders:
            ders.append(der)
    if not ders:
        raise _bad(
            "KeyDescriptor",
            "No signing certificate: the IdP metadata needs a md:KeyDescriptor "
            '(use="signing" or no use) with a ds:X509Certificate.',
        )
    if sso_redirect_url is not None:
        sso_redirect_url = _https_url(sso_redirect_url, "SingleSignOnService@Location")
    if sso_post_url is not None:
        sso_post_url = _https_url(sso_post_url, "SingleSignOnService@Location")
    if sso_redirect_url is None and sso_post_url is None:
        raise _bad(
            "SingleSignOnService",
            "The IdP has no md:SingleSignOnService with the HTTP-Redirect or HTTP-POST "
            "binding, so users cannot be sent there to sign in.",
        )
    return IdpConfig(
        entity_id=entity_id,
        signing_certificates=tuple(ders),
        sso_redirect_url=sso_redirect_url,
        sso_post_url=sso_post_url,
        want_authn_requests_signed=want_authn_requests_signed,
    )


def certificate_from_pem(pem: bytes) -> bytes:
    """The DER bytes of one PEM certificate; ``saml.metadata_invalid`` otherwise."""
    try:
        return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    except ValueError:
        raise _bad(
            "certificate", "The certificate is not a valid PEM X.509 certificate."
        ) from None


def _der_from_base64(text: str, field: str) -> bytes:
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _bad(field, f"The {field} is not valid base64.") from None
    _check_certificate(der, field)
    return der


def _check_certificate(der: bytes, field: str = "X509Certificate") -> None:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise _bad(field, f"The {field} is not a DER X.509 certificate.") from None
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise _bad(
                field,
                f"The signing certificate has a {key.key_size}-bit RSA key; at least 2048 "
                "bits are required.",
            )
    elif not isinstance(key, ec.EllipticCurvePublicKey):
        raise _bad(field, "The signing certificate must carry an RSA or EC public key.")


def _https_url(value: str, field: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise _bad(field, f"The {field} must be an absolute https:// URL; got {value!r}.")
    return value


def _parse_time(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _bad(field, f"The {field} {value!r} is not an xs:dateTime.") from None
    if parsed.tzinfo is None:
        raise _bad(field, f"The {field} {value!r} has no time zone.")
    return parsed


_ENCRYPTION_METHODS = (
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
)


def sp_metadata(
    *,
    entity_id: str,
    acs_url: str,
    signing_certificates: Iterable[bytes] = (),
    encryption_certificates: Iterable[bytes] = (),
    authn_requests_signed: bool = False,
) -> bytes:
    """This service provider's metadata document (DER or PEM certificates).

    Publishes the entity id, the HTTP-POST assertion consumer service, the emailAddress
    NameID format, and every signing and encryption certificate (two of each while a key
    rotates). Assertions are always required to be signed.
    """
    root = etree.Element(f"{{{MD}}}EntityDescriptor", nsmap={"md": MD, "ds": DS})
    root.set("entityID", entity_id)
    sp = etree.SubElement(root, f"{{{MD}}}SPSSODescriptor")
    sp.set("AuthnRequestsSigned", "true" if authn_requests_signed else "false")
    sp.set("WantAssertionsSigned", "true")
    sp.set("protocolSupportEnumeration", SAMLP)
    for use, certs in (("signing", signing_certificates), ("encryption", encryption_certificates)):
        for raw in certs:
            der = certificate_from_pem(raw) if raw.lstrip().startswith(b"-----") else raw
            _check_certificate(der, "certificate")
            key = etree.SubElement(sp, f"{{{MD}}}KeyDescriptor", use=use)
            info = etree.SubElement(key, f"{{{DS}}}KeyInfo")
            data = etree.SubElement(info, f"{{{DS}}}X509Data")
            etree.SubElement(data, f"{{{DS}}}X509Certificate").text = base64.b64encode(der).decode(
                "ascii"
            )
            if use == "encryption":
                # Tells the IdP which algorithms to encrypt with: the strongest the
                # validator accepts first, and never RSA 1.5 or 3DES.
                for algorithm in _ENCRYPTION_METHODS:
                    etree.SubElement(key, f"{{{MD}}}EncryptionMethod", Algorithm=algorithm)
    etree.SubElement(sp, f"{{{MD}}}NameIDFormat").text = NAMEID_EMAIL
    acs = etree.SubElement(sp, f"{{{MD}}}AssertionConsumerService")
    acs.set("Binding", BINDING_POST)
    acs.set("Location", acs_url)
    acs.set("index", "0")
    acs.set("isDefault", "true")
    xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return xml
