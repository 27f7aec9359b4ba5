"""The XML signature of an IdP metadata document, checked against trusted certificates.

A refreshed metadata document may change the IdP's signing certificates only when it
is signed by a certificate the organization already trusts (or an admin approves it).
The rules are those of response signatures (see :mod:`nulabpass.saml._validate`): the
document is parsed by the hardened parser; the one ``ds:Signature`` that counts is a
direct child of the root element (``md:EntityDescriptor`` or ``md:EntitiesDescriptor``)
and references the root by its ``ID`` with one enveloped, canonicalised reference; only
allow-listed algorithms are accepted; keys come from the trusted certificates only.
Because the signature covers the whole root, everything the metadata parser reads from
the document is covered by it.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from nulabpass.saml._errors import SamlValidationError
from nulabpass.saml._model import IdpConfig, SamlPolicy
from nulabpass.saml._validate import SamlValidator
from nulabpass.saml._xml import DS, MD, parse_xml

__all__ = ["verify_metadata_signature"]

_MAX_BYTES = 1024 * 1024
_ROOTS = frozenset({f"{{{MD}}}EntityDescriptor", f"{{{MD}}}EntitiesDescriptor"})
_SIGNATURE = f"{{{DS}}}Signature"
_ALL_IDS = etree.XPath("//@ID")
# The validator's signature checks need a policy; none of its fields is read by them.
_POLICY = SamlPolicy(sp_entity_id="urn:nulabpass:metadata", acs_url="urn:nulabpass:metadata")


def verify_metadata_signature(data: bytes, trusted_certificates: Sequence[bytes]) -> None:
    """Check that ``data`` carries a valid signature by one of ``trusted_certificates``
    (DER) over its root element; raise :class:`SamlValidationError` otherwise.

    Codes: ``saml.metadata_unsigned`` (no signature on the root), ``saml.malformed``,
    ``saml.duplicate_id``, ``saml.reference_invalid``, ``saml.algorithm_refused``,
    ``saml.signature_invalid``.
    """
    root = parse_xml(data, what="IdP metadata", max_bytes=_MAX_BYTES)
    if root.tag not in _ROOTS:
        raise SamlValidationError(
            "saml.malformed",
            "The metadata's root element is not md:EntityDescriptor or md:EntitiesDescriptor.",
        )
    signatures = list(root.iterchildren(_SIGNATURE))
    if not signatures:
        raise SamlValidationError(
            "saml.metadata_unsigned",
            "The metadata document is not signed (no ds:Signature on its root element).",
        )
    if len(signatures) > 1:
        raise SamlValidationError(
            "saml.signature_misplaced", "The metadata's root element carries two signatures."
        )
    if not root.get("ID"):
        raise SamlValidationError(
            "saml.reference_invalid",
            "The signed metadata's root element has no ID attribute for the signature to "
            "reference.",
        )
    ids = [str(value) for value in _ALL_IDS(root)]
    if len(ids) != len(set(ids)):
        raise SamlValidationError(
            "saml.duplicate_id",
            "An ID appears on more than one element of the metadata; the signature "
            "reference would be ambiguous.",
        )
    if not trusted_certificates:
        raise SamlValidationError(
            "saml.signature_invalid", "No trusted certificate to check the signature with."
        )
    checker = SamlValidator(
        IdpConfig(entity_id="metadata", signing_certificates=tuple(trusted_certificates)),
        _POLICY,
    )
    checker._verify(signatures[0], root, "metadata")
