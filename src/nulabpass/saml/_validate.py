"""Strict validation of SAML 2.0 Responses (Web Browser SSO profile).

Theory of operation
-------------------
1. The POSTed value is base64-decoded and parsed by the hardened parser (no DTD, no
   entities, no network, bounded size and depth; never recovered).
2. The document's shape is pinned down before any cryptography: the root is one
   ``samlp:Response``; the document holds exactly one ``saml:Assertion`` or
   ``saml:EncryptedAssertion`` in the whole tree, and it is a direct child of the
   Response; every ``ID`` value is unique and no ``xml:id`` exists; a ``ds:Signature``
   may only be the direct child of the Response or of that one assertion. These rules
   defeat the XML signature wrapping family by construction: there is no second place
   where an unsigned copy could hide.
3. Each signature must name, through exactly one ``ds:Reference`` whose URI is
   ``#`` + the parent's ``ID``, the element that encloses it, and use only allow-listed
   algorithms (RSA or ECDSA with SHA-2; enveloped-signature and canonicalisation
   transforms; SHA-1, HMAC, XPath and XSLT refused). libxmlsec1 (python-xmlsec) then
   verifies it with keys built from the configured certificates only; ``KeyInfo`` at
   most chooses which configured certificate to try first.
4. An ``EncryptedAssertion`` is decrypted after the Response signature (when present)
   was checked: RSA-OAEP key transport with the SP key, AES-GCM or AES-CBC content.
   The plaintext is parsed by the same hardened parser. Every decryption problem has
   the one code ``saml.decryption_failed``.
5. A valid signature must cover the assertion used (the Response's or its own). Every
   value of the result is then read from that element: Status, Issuer, Destination,
   Conditions (time window and audience), the bearer SubjectConfirmation (Recipient,
   NotOnOrAfter, InResponseTo), NameID, AuthnStatement and attributes
   (saml-profiles-2.0-os section 4.1.4). Text is the XPath string value, so a comment or
   CDATA section inside NameID cannot truncate it.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Final
from xml.sax.saxutils import quoteattr

import pybase64
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from nulabpass.saml._errors import SamlValidationError
from nulabpass.saml._model import IdpConfig, LazyAttributes, SamlLogin, SamlPolicy
from nulabpass.saml._xml import DS, NS, SAML, SAMLP, XENC, XENC11, parse_xml
from nulabpass.saml._xmlsec import xmlsec

__all__ = ["SamlValidator", "validate_response"]

STATUS_SUCCESS: Final = "urn:oasis:names:tc:SAML:2.0:status:Success"
BEARER: Final = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
ENTITY_FORMAT: Final = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

_MORE: Final = "http://www.w3.org/2001/04/xmldsig-more#"
SIGNATURE_ALGORITHMS: Final = frozenset(
    {
        _MORE + "rsa-sha256",
        _MORE + "rsa-sha384",
        _MORE + "rsa-sha512",
        _MORE + "ecdsa-sha256",
        _MORE + "ecdsa-sha384",
        _MORE + "ecdsa-sha512",
    }
)
DIGEST_ALGORITHMS: Final = frozenset(
    {
        "http://www.w3.org/2001/04/xmlenc#sha256",
        _MORE + "sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)
C14N_ALGORITHMS: Final = frozenset(
    {
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
        "http://www.w3.org/2006/12/xml-c14n11",
        "http://www.w3.org/2006/12/xml-c14n11#WithComments",
    }
)
ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
TRANSFORM_ALGORITHMS: Final = C14N_ALGORITHMS | {ENVELOPED}
KEY_TRANSPORT_ALGORITHMS: Final = frozenset({XENC + "rsa-oaep-mgf1p", XENC11 + "rsa-oaep"})
CONTENT_ALGORITHMS: Final = frozenset(
    {
        XENC + "aes128-cbc",
        XENC + "aes192-cbc",
        XENC + "aes256-cbc",
        XENC11 + "aes128-gcm",
        XENC11 + "aes192-gcm",
        XENC11 + "aes256-gcm",
    }
)
_XMLSEC_TRANSFORMS: Final = (
    xmlsec.Transform.ENVELOPED,
    xmlsec.Transform.EXCL_C14N,
    xmlsec.Transform.EXCL_C14N_COMMENTS,
    xmlsec.Transform.C14N,
    xmlsec.Transform.C14N_COMMENTS,
    xmlsec.Transform.C14N11,
    xmlsec.Transform.C14N11_COMMENTS,
    # libxmlsec1 applies the reference's DigestMethod as one more reference transform.
    xmlsec.Transform.SHA256,
    xmlsec.Transform.SHA384,
    xmlsec.Transform.SHA512,
)
_XMLSEC_SIGNATURE_TRANSFORMS: Final = (
    *_XMLSEC_TRANSFORMS[1:7],
    xmlsec.Transform.RSA_SHA256,
    xmlsec.Transform.RSA_SHA384,
    xmlsec.Transform.RSA_SHA512,
    xmlsec.Transform.ECDSA_SHA256,
    xmlsec.Transform.ECDSA_SHA384,
    xmlsec.Transform.ECDSA_SHA512,
)

_RESPONSE: Final = f"{{{SAMLP}}}Response"
_ASSERTION: Final = f"{{{SAML}}}Assertion"
_ENCRYPTED_ASSERTION: Final = f"{{{SAML}}}EncryptedAssertion"
_SIGNATURE: Final = f"{{{DS}}}Signature"


def _xp(path: str) -> etree.XPath:
    # Plain strings: no result needs its parent, and "smart" strings cost an object each.
    return etree.XPath(path, namespaces=NS, smart_strings=False)


# Attributes belong to elements: "//*/@ID" skips the text nodes "//@ID" would visit.
_ALL_IDS = _xp("//*/@ID")
_HAS_XML_ID = _xp("boolean(//*/@xml:id)")
_STRING = _xp("string()")
_HAS_ELEMENT_CHILD = _xp("boolean(*)")
_STATUS_MESSAGE = _xp("string(samlp:Status/samlp:StatusMessage)")
_KEYINFO_CERT = _xp("string(ds:KeyInfo/ds:X509Data/ds:X509Certificate)")

# Child lookups go through lxml's C-level tag filter (iterchildren), about twice as fast
# as evaluating a compiled XPath per lookup; they run a few dozen times per response.
_ISSUER_TAG: Final = f"{{{SAML}}}Issuer"
_STATUS_TAG: Final = f"{{{SAMLP}}}Status"
_STATUS_CODE_TAG: Final = f"{{{SAMLP}}}StatusCode"
_SIGNED_INFO_TAG: Final = f"{{{DS}}}SignedInfo"
_C14N_TAG: Final = f"{{{DS}}}CanonicalizationMethod"
_SIG_METHOD_TAG: Final = f"{{{DS}}}SignatureMethod"
_REFERENCE_TAG: Final = f"{{{DS}}}Reference"
_TRANSFORMS_TAG: Final = f"{{{DS}}}Transforms"
_TRANSFORM_TAG: Final = f"{{{DS}}}Transform"
_DIGEST_METHOD_TAG: Final = f"{{{DS}}}DigestMethod"
_OBJECT_TAG: Final = f"{{{DS}}}Object"
_SUBJECT_TAG: Final = f"{{{SAML}}}Subject"
_NAME_ID_TAG: Final = f"{{{SAML}}}NameID"
_ANY_ID_TAGS: Final = (_NAME_ID_TAG, f"{{{SAML}}}EncryptedID", f"{{{SAML}}}BaseID")
_CONFIRMATION_TAG: Final = f"{{{SAML}}}SubjectConfirmation"
_CONFIRMATION_DATA_TAG: Final = f"{{{SAML}}}SubjectConfirmationData"
_CONDITIONS_TAG: Final = f"{{{SAML}}}Conditions"
_AUDIENCE_RESTRICTION_TAG: Final = f"{{{SAML}}}AudienceRestriction"
_AUDIENCE_TAG: Final = f"{{{SAML}}}Audience"
_CONDITION_TAG: Final = f"{{{SAML}}}Condition"
_AUTHN_STATEMENT_TAG: Final = f"{{{SAML}}}AuthnStatement"


def _kids(element: etree._Element, *tags: str) -> list[etree._Element]:
    return list(element.iterchildren(*tags))


def _algorithms(element: etree._Element, tag: str) -> list[str]:
    return [child.get("Algorithm") or "" for child in element.iterchildren(tag)]


_ATTRIBUTE_STATEMENT: Final = f"{{{SAML}}}AttributeStatement"
_ATTRIBUTE: Final = f"{{{SAML}}}Attribute"
_ATTRIBUTE_VALUE: Final = f"{{{SAML}}}AttributeValue"
# Checked in C during validation; cheap because neither needs a predicate per node.
_ORPHAN_VALUES = _xp("boolean(saml:AttributeStatement/saml:AttributeValue)")
_UNNAMED_ATTRIBUTES = _xp(
    "count(saml:AttributeStatement/saml:Attribute)"
    " - count(saml:AttributeStatement/saml:Attribute/@Name)"
)
# Name tests cost libxml2's XPath more than wildcards: when every child of every
# AttributeStatement has a Name, so has every saml:Attribute, and the exact count above
# is needed only otherwise.
_STATEMENT_CHILDREN_UNNAMED = _xp(
    "count(saml:AttributeStatement/*) - count(saml:AttributeStatement/*/@Name)"
)
_ENCRYPTED_DATA = _xp("xenc:EncryptedData")
_ENCRYPTED_KEYS = _xp("xenc:EncryptedData/ds:KeyInfo/xenc:EncryptedKey | xenc:EncryptedKey")
_ENC_METHOD = _xp("xenc:EncryptionMethod/@Algorithm")

_XSI_NIL: Final = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_SHOWN: Final = 200


def _shown(value: str | None) -> str:
    """A received value as it appears in an admin message: quoted and bounded."""
    if value is None:
        return "(absent)"
    return repr(value if len(value) <= _SHOWN else value[: _SHOWN - 1] + "…")


def _err(code: str, message: str, **details: str) -> SamlValidationError:
    # Received values come from the untrusted message: keep them bounded.
    bounded = {k: v if len(v) <= _SHOWN else v[: _SHOWN - 1] + "…" for k, v in details.items()}
    return SamlValidationError(code, message, details=bounded or None)


def _seconds(delta: timedelta) -> str:
    total = abs(delta.total_seconds())
    if total < 120:
        return f"{total:.0f} seconds"
    if total < 7200:
        return f"{total / 60:.1f} minutes"
    return f"{total / 3600:.1f} hours"


class SamlValidator:
    """Validates responses for one (IdP, policy, SP keys) configuration.

    Build it once per configuration: it parses the certificates and SP keys into
    libxmlsec1 keys up front. :meth:`validate` is safe to call from several threads.
    """

    __slots__ = ("_cert_keys", "_decryption_keys", "idp", "policy")

    def __init__(
        self, idp: IdpConfig, policy: SamlPolicy, sp_private_keys: Sequence[bytes] = ()
    ) -> None:
        self.idp = idp
        self.policy = policy
        # Keys are built from the certificates' public keys alone: libxmlsec1 copies a key
        # into every context, and a key carrying its certificate costs about 0.1 ms more
        # per verification without adding any check (the certificate is trusted because
        # the organization configured it, not through a chain).
        self._cert_keys: tuple[tuple[bytes, xmlsec.Key], ...] = tuple(
            (der, xmlsec.Key.from_memory(_public_key_pem(der), xmlsec.KeyFormat.PEM, None))
            for der in idp.signing_certificates
        )
        keys = []
        for pem in sp_private_keys:
            try:
                keys.append(xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM, None))
            except xmlsec.Error:
                raise ValueError("an SP private key is not a PEM private key") from None
        self._decryption_keys: tuple[xmlsec.Key, ...] = tuple(keys)

    # -- entry point ---------------------------------------------------------------

    def validate(
        self, response: bytes | str, *, now: datetime, request_id: str | None = None
    ) -> SamlLogin:
        """Return the verified login, or raise :class:`SamlValidationError`.

        ``response`` is the POSTed ``SAMLResponse`` value (base64) or the XML bytes.
        ``request_id`` is the ID of the AuthnRequest this browser was sent with; ``None``
        means the response must be unsolicited (IdP-initiated).
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        root = parse_xml(
            self._decode(response), what="SAML response", max_bytes=self.policy.max_response_bytes
        )
        if root.tag != _RESPONSE:
            raise _err(
                "saml.malformed",
                f"Expected a samlp:Response document; received {_shown(root.tag)}.",
            )
        self._check_version(root, "Response")
        response_id = self._required_id(root, "Response")
        self._check_status(root)

        assertion, response_sig, assertion_sig = self._structure(root)
        signed: list[str] = []
        if response_sig is not None:
            self._verify(response_sig, root, "Response")
            signed.append("response")
        encrypted = assertion.tag == _ENCRYPTED_ASSERTION
        if encrypted:
            assertion, assertion_sig = self._decrypt(assertion, response_id)
        if assertion_sig is not None:
            if signed:
                # The verified Response signature already authenticates every byte of
                # the assertion (its ciphertext, when encrypted), including this
                # signature; a second verification could only refuse what the IdP
                # itself sent. Its algorithms must still be on the allow-list.
                self._check_signature_shape(assertion_sig, assertion, "Assertion")
            else:
                self._verify(assertion_sig, assertion, "Assertion")
                signed.append("assertion")
        if not signed:
            raise _err(
                "saml.signature_missing",
                "Neither the Response nor the Assertion is signed. Configure the identity "
                "provider to sign the assertion (or the response) with its SHA-256 key.",
            )
        return self._read(root, assertion, response_id, now, request_id, tuple(signed), encrypted)

    # -- decoding and shape --------------------------------------------------------

    def _decode(self, response: bytes | str) -> bytes:
        raw = response.encode("utf-8", "replace") if isinstance(response, str) else response
        # Base64 never contains "<": a "<" near the start means XML was passed directly.
        if raw.find(b"<", 0, 64) != -1:
            return raw
        # Base64 of max_response_bytes is 4/3 as long; allow as much again for line
        # breaks and refuse anything longer before decoding it.
        limit = (self.policy.max_response_bytes * 4 // 3 + 4) * 2
        if len(raw) > limit:
            raise _err(
                "saml.too_large",
                f"The SAMLResponse value is {len(raw)} characters; the limit is {limit}.",
            )
        try:
            # Fast path: one strict pass when the value carries no line breaks, with
            # pybase64's vectorised decoder (a 160 KB value in microseconds, where the
            # standard library takes a third of a millisecond).
            return pybase64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            pass
        try:
            return pybase64.b64decode(b"".join(raw.split()), validate=True)
        except (binascii.Error, ValueError):
            raise _err(
                "saml.malformed",
                "The SAMLResponse value is not valid base64; the form must post the "
                "identity provider's value unchanged.",
            ) from None

    @staticmethod
    def _check_version(element: etree._Element, what: str) -> None:
        version = element.get("Version")
        if version != "2.0":
            raise _err(
                "saml.malformed",
                f"The {what} has Version {_shown(version)}; only SAML 2.0 is supported.",
                expected="2.0",
                received=version or "",
            )

    @staticmethod
    def _required_id(element: etree._Element, what: str) -> str:
        value: str | None = element.get("ID")
        if not value:
            raise _err("saml.malformed", f"The {what} has no ID attribute.")
        return value

    @staticmethod
    def _check_status(root: etree._Element) -> None:
        codes = [c for st in _kids(root, _STATUS_TAG) for c in _kids(st, _STATUS_CODE_TAG)]
        if len(codes) != 1:
            raise _err("saml.malformed", "The Response must carry exactly one samlp:Status.")
        value = codes[0].get("Value")
        if value == STATUS_SUCCESS:
            return
        inner = codes[0].find(f"{{{SAMLP}}}StatusCode")
        detail = inner.get("Value") if inner is not None else None
        message = _STATUS_MESSAGE(root).strip()
        raise _err(
            "saml.status_not_success",
            f"The identity provider answered with status {_shown(value)}"
            + (f" / {_shown(detail)}" if detail else "")
            + (f" and message {_shown(message)}" if message else "")
            + " instead of Success; the IdP's own logs say why (often: the user is not "
            "assigned to this application).",
            expected=STATUS_SUCCESS,
            received=value or "",
        )

    def _structure(
        self, root: etree._Element
    ) -> tuple[etree._Element, etree._Element | None, etree._Element | None]:
        assertions = _all_assertions(root)
        if len(assertions) != 1:
            raise _err(
                "saml.assertion_count",
                f"The Response contains {len(assertions)} assertions; exactly one "
                "(signed) Assertion or EncryptedAssertion is accepted.",
                expected="1",
                received=str(len(assertions)),
            )
        assertion = assertions[0]
        if assertion.getparent() is not root:
            raise _err(
                "saml.malformed",
                "The assertion is not a direct child of the Response (a signature wrapping "
                "attempt or a non-standard layout).",
            )
        ids = _ALL_IDS(root)
        if len(ids) != len(set(ids)):
            seen: set[str] = set()
            duplicate = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise _err(
                "saml.duplicate_id",
                f"The ID {_shown(str(duplicate))} appears on more than one element; "
                "signature references would be ambiguous.",
            )
        if _HAS_XML_ID(root):
            raise _err("saml.malformed", "The Response uses xml:id attributes; SAML never does.")
        response_sig = assertion_sig = None
        for sig in root.iter(_SIGNATURE):
            parent = sig.getparent()
            if parent is root and response_sig is None:
                response_sig = sig
            elif parent is assertion and assertion_sig is None:
                assertion_sig = sig
            else:
                raise _err(
                    "saml.signature_misplaced",
                    "A ds:Signature appears somewhere other than directly inside the "
                    "Response or the Assertion (or twice there); such documents are "
                    "refused as signature wrapping attempts.",
                )
        return assertion, response_sig, assertion_sig

    # -- signatures ----------------------------------------------------------------

    def _check_signature_shape(
        self, sig: etree._Element, element: etree._Element, what: str
    ) -> None:
        signed_infos = _kids(sig, _SIGNED_INFO_TAG)
        if len(signed_infos) != 1 or _first_element(sig) is not signed_infos[0]:
            raise _err(
                "saml.signature_invalid", f"The {what} signature has no single ds:SignedInfo."
            )
        if _kids(sig, _OBJECT_TAG):
            raise _err(
                "saml.signature_invalid", f"The {what} signature carries a ds:Object; refused."
            )
        info = signed_infos[0]
        c14n = _algorithms(info, _C14N_TAG)
        if len(c14n) != 1 or c14n[0] not in C14N_ALGORITHMS:
            raise _err(
                "saml.algorithm_refused",
                f"The {what} signature uses canonicalisation {_shown(_first(c14n))}; "
                "allowed are exclusive or inclusive C14N 1.0/1.1.",
                received=_first(c14n) or "",
            )
        method = _algorithms(info, _SIG_METHOD_TAG)
        if len(method) != 1 or method[0] not in SIGNATURE_ALGORITHMS:
            raise _err(
                "saml.algorithm_refused",
                f"The {what} signature uses {_shown(_first(method))}; only RSA or ECDSA "
                "with SHA-256, SHA-384 or SHA-512 is accepted (SHA-1 and HMAC are refused). "
                "Set the identity provider's signature algorithm to RSA-SHA256.",
                received=_first(method) or "",
            )
        references = _kids(info, _REFERENCE_TAG)
        if len(references) != 1:
            raise _err(
                "saml.reference_invalid",
                f"The {what} signature has {len(references)} references; exactly one, to "
                f"the signed {what}, is accepted.",
            )
        reference = references[0]
        expected_uri = "#" + (element.get("ID") or "")
        uri = reference.get("URI")
        if uri != expected_uri:
            raise _err(
                "saml.reference_invalid",
                f"The {what} signature references {_shown(uri)}, not the {what} that "
                f"contains it ({expected_uri!r}).",
                expected=expected_uri,
                received=uri or "",
            )
        transforms = [
            t for ts in _kids(reference, _TRANSFORMS_TAG) for t in _kids(ts, _TRANSFORM_TAG)
        ]
        if len(transforms) > 2:
            raise _err(
                "saml.algorithm_refused",
                f"The {what} signature applies {len(transforms)} transforms; at most the "
                "enveloped-signature transform and one canonicalisation are accepted.",
            )
        for transform in transforms:
            algorithm = transform.get("Algorithm")
            if algorithm not in TRANSFORM_ALGORITHMS or len(transform):
                raise _err(
                    "saml.algorithm_refused",
                    f"The {what} signature uses transform {_shown(algorithm)}; only "
                    "enveloped-signature and canonicalisation are accepted (XPath and XSLT "
                    "are refused).",
                    received=algorithm or "",
                )
        digest = _algorithms(reference, _DIGEST_METHOD_TAG)
        if len(digest) != 1 or digest[0] not in DIGEST_ALGORITHMS:
            raise _err(
                "saml.algorithm_refused",
                f"The {what} signature uses digest {_shown(_first(digest))}; only SHA-256, "
                "SHA-384 or SHA-512 is accepted.",
                received=_first(digest) or "",
            )

    def _verify(self, sig: etree._Element, element: etree._Element, what: str) -> None:
        self._check_signature_shape(sig, element, what)
        candidates = self._cert_keys
        hint = "".join(_KEYINFO_CERT(sig).split()) if len(candidates) > 1 else ""
        if hint:
            try:
                hinted = base64.b64decode(hint, validate=True)
            except (binascii.Error, ValueError):
                hinted = b""
            candidates = tuple(sorted(candidates, key=lambda pair: pair[0] != hinted))
        for _der, key in candidates:
            ctx = xmlsec.SignatureContext()
            ctx.register_id(element, "ID")
            for transform in _XMLSEC_TRANSFORMS:
                ctx.enable_reference_transform(transform)
            for transform in _XMLSEC_SIGNATURE_TRANSFORMS:
                ctx.enable_signature_transform(transform)
            ctx.key = key
            try:
                ctx.verify(sig)
            except xmlsec.Error:
                continue
            return
        raise _err(
            "saml.signature_invalid",
            f"The {what} signature does not verify with any of the "
            f"{len(self._cert_keys)} configured IdP signing certificate(s). The identity "
            "provider may have rotated its certificate (update the metadata) or the message "
            "was altered in transit.",
        )

    # -- decryption ----------------------------------------------------------------

    def _decrypt(
        self, encrypted: etree._Element, response_id: str
    ) -> tuple[etree._Element, etree._Element | None]:
        def fail(reason: str) -> SamlValidationError:
            return _err(
                "saml.decryption_failed",
                f"The EncryptedAssertion could not be decrypted: {reason}",
            )

        generic = (
            "check that the identity provider encrypts with this service provider's current "
            "encryption certificate, using RSA-OAEP and AES-GCM or AES-CBC."
        )
        if not self._decryption_keys:
            raise fail("no SP private key is configured for decryption.")
        data_nodes = _ENCRYPTED_DATA(encrypted)
        if len(data_nodes) != 1:
            raise fail("it must hold exactly one xenc:EncryptedData.")
        data = data_nodes[0]
        content_alg = _ENC_METHOD(data)
        if len(content_alg) != 1 or content_alg[0] not in CONTENT_ALGORITHMS:
            raise fail(
                f"content algorithm {_shown(_first(content_alg))} is refused; use "
                "AES-GCM or AES-CBC."
            )
        enc_keys = _ENCRYPTED_KEYS(encrypted)
        if not enc_keys or len(enc_keys) > 4:
            raise fail("it must carry one xenc:EncryptedKey for this service provider.")
        for enc_key in enc_keys:
            transport = _ENC_METHOD(enc_key)
            if len(transport) != 1 or transport[0] not in KEY_TRANSPORT_ALGORITHMS:
                raise fail(
                    f"key transport {_shown(_first(transport))} is refused (RSA 1.5 is "
                    "vulnerable to padding oracles); use RSA-OAEP."
                )
        key_size = {"128": 16, "192": 24, "256": 32}[content_alg[0].rsplit("aes", 1)[1][:3]]
        plaintext = self._decrypt_content(enc_keys, data, key_size)
        if plaintext is None:
            raise fail(generic)
        return self._parse_plaintext(encrypted, plaintext, response_id, fail)

    def _decrypt_content(
        self, enc_keys: list[etree._Element], data: etree._Element, key_size: int
    ) -> bytes | None:
        for enc_key in enc_keys:
            for sp_key in self._decryption_keys:
                try:
                    ctx = xmlsec.EncryptionContext()
                    ctx.key = sp_key
                    session = ctx.decrypt(enc_key)
                except xmlsec.Error:
                    continue
                if not isinstance(session, bytes) or len(session) != key_size:
                    continue
                try:
                    data_ctx = xmlsec.EncryptionContext()
                    data_ctx.key = xmlsec.Key.from_binary_data(xmlsec.KeyData.AES, session)
                    # Without Type, libxmlsec1 returns the plaintext instead of parsing it
                    # with its own options: the hardened parser reads it instead.
                    detached = copy.deepcopy(data)
                    detached.attrib.pop("Type", None)
                    result = data_ctx.decrypt(detached)
                except xmlsec.Error:
                    continue
                if isinstance(result, bytes):
                    return result
        return None

    def _parse_plaintext(
        self,
        encrypted: etree._Element,
        plaintext: bytes,
        response_id: str,
        fail: Callable[[str], SamlValidationError],
    ) -> tuple[etree._Element, etree._Element | None]:
        # Parse in the namespace context of the EncryptedAssertion, as the plaintext
        # would be if it had been sent in clear.
        declarations = " ".join(
            ("xmlns" if prefix is None else f"xmlns:{prefix}") + "=" + quoteattr(uri)
            for prefix, uri in encrypted.nsmap.items()
        )
        try:
            wrapper = parse_xml(
                b"<w " + declarations.encode() + b">" + plaintext + b"</w>",
                what="decrypted assertion",
                max_bytes=self.policy.max_response_bytes,
            )
        except SamlValidationError:
            raise fail("the plaintext is not a well-formed assertion.") from None
        children = [c for c in wrapper if isinstance(c.tag, str)]
        if (
            len(children) != 1
            or children[0].tag != _ASSERTION
            or (wrapper.text or "").strip()
            or (children[0].tail or "").strip()
        ):
            raise fail("the plaintext is not exactly one saml:Assertion.")
        assertion = children[0]
        ids = _ALL_IDS(wrapper)
        if len(ids) != len(set(ids)) or response_id in ids or _HAS_XML_ID(wrapper):
            raise _err(
                "saml.duplicate_id",
                "The decrypted assertion repeats an ID (or uses xml:id); signature "
                "references would be ambiguous.",
            )
        if len(_all_assertions(wrapper)) != 1:
            raise _err(
                "saml.assertion_count",
                "The decrypted assertion contains another assertion.",
            )
        assertion_sig = None
        for sig in wrapper.iter(_SIGNATURE):
            if sig.getparent() is assertion and assertion_sig is None:
                assertion_sig = sig
            else:
                raise _err(
                    "saml.signature_misplaced",
                    "A ds:Signature in the decrypted assertion is not its direct child "
                    "(or appears twice); refused as a signature wrapping attempt.",
                )
        return assertion, assertion_sig

    # -- reading the signed assertion ----------------------------------------------

    def _time(self, element: etree._Element, name: str, what: str) -> datetime | None:
        value = element.get(name)
        if value is None:
            return None
        try:
            if len(value) < 20 or value[10] != "T":
                raise ValueError
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _err(
                "saml.malformed", f"{what}@{name} {_shown(value)} is not an xs:dateTime."
            ) from None
        if parsed.tzinfo is None:
            raise _err(
                "saml.malformed",
                f"{what}@{name} {_shown(value)} has no time zone; SAML times are UTC.",
            )
        return parsed

    def _not_before(self, element: etree._Element, what: str, now: datetime) -> None:
        not_before = self._time(element, "NotBefore", what)
        skew = self.policy.clock_skew
        if not_before is not None and now < not_before - skew:
            raise _err(
                "saml.not_yet_valid",
                f"{what} is valid only from {not_before.isoformat()} (NotBefore); this "
                f"server's time is {now.isoformat()}, {_seconds(not_before - now)} earlier, "
                f"beyond the allowed clock skew of {_seconds(skew)}. Synchronise the "
                "clocks of the identity provider and this server (NTP).",
                expected=not_before.isoformat(),
                received=now.isoformat(),
            )

    def _not_on_or_after(
        self, element: etree._Element, what: str, now: datetime, *, required: bool
    ) -> datetime | None:
        limit = self._time(element, "NotOnOrAfter", what)
        if limit is None:
            if required:
                raise _err(
                    "saml.malformed", f"{what} has no NotOnOrAfter; the SAML profile requires one."
                )
            return None
        skew = self.policy.clock_skew
        if now >= limit + skew:
            raise _err(
                "saml.expired",
                f"{what} expired at {limit.isoformat()} (NotOnOrAfter); this server's time "
                f"is {now.isoformat()}, {_seconds(now - limit)} later, beyond the allowed "
                f"clock skew of {_seconds(skew)}. Either the response was replayed or held "
                "too long, or the clocks of the identity provider and this server differ.",
                expected=limit.isoformat(),
                received=now.isoformat(),
            )
        return limit

    def _read(
        self,
        root: etree._Element,
        assertion: etree._Element,
        response_id: str,
        now: datetime,
        request_id: str | None,
        signed: tuple[str, ...],
        encrypted: bool,
    ) -> SamlLogin:
        self._check_envelope(root, signed)
        self._check_version(assertion, "Assertion")
        assertion_id = self._required_id(assertion, "Assertion")
        issuer = self._check_assertion_head(assertion, now)
        conditions_limit = self._check_conditions(assertion, now)
        in_response_to = self._check_solicitation(root, request_id)
        name_id_el, confirmation_limit = self._check_subject(assertion, now, request_id)
        statement, authn_instant, session_limit = self._check_authn(assertion, now)
        attributes = self._attributes(assertion)
        expires_at = confirmation_limit
        if conditions_limit is not None and conditions_limit < expires_at:
            expires_at = conditions_limit
        return SamlLogin(
            issuer=issuer,
            name_id=_text(name_id_el).strip(),
            name_id_format=name_id_el.get("Format"),
            session_index=statement.get("SessionIndex"),
            authn_instant=authn_instant,
            session_not_on_or_after=session_limit,
            attributes=attributes,
            assertion_id=assertion_id,
            response_id=response_id,
            in_response_to=in_response_to,
            expires_at=expires_at,
            signed=signed,
            encrypted=encrypted,
        )

    def _check_envelope(self, root: etree._Element, signed: tuple[str, ...]) -> None:
        # Response-level fields are trusted only when the Response itself is signed;
        # otherwise they are checked for consistency but never returned.
        policy = self.policy
        response_issuers = _kids(root, _ISSUER_TAG)
        if len(response_issuers) > 1:
            raise _err("saml.malformed", "The Response has more than one saml:Issuer.")
        if response_issuers:
            self._check_issuer(response_issuers[0], "Response")
        destination = root.get("Destination")
        if destination is None and "response" in signed:
            raise _err(
                "saml.destination_mismatch",
                "The signed Response has no Destination; SAML bindings (3.5.5.2) require it. "
                f"Expected {policy.acs_url!r}.",
                expected=policy.acs_url,
                received="",
            )
        if destination is not None and destination != policy.acs_url:
            raise _err(
                "saml.destination_mismatch",
                f"The Response was sent to Destination {_shown(destination)}; this service "
                f"provider's ACS URL is {policy.acs_url!r}. Set the identity provider's ACS / "
                "reply URL to exactly that value.",
                expected=policy.acs_url,
                received=destination,
            )
        self._time(root, "IssueInstant", "Response")

    def _check_assertion_head(self, assertion: etree._Element, now: datetime) -> str:
        policy = self.policy
        issue_instant = self._time(assertion, "IssueInstant", "Assertion")
        if issue_instant is None:
            raise _err("saml.malformed", "The Assertion has no IssueInstant.")
        if issue_instant > now + policy.clock_skew:
            raise _err(
                "saml.not_yet_valid",
                f"The Assertion was issued at {issue_instant.isoformat()}, "
                f"{_seconds(issue_instant - now)} after this server's time "
                f"{now.isoformat()}, beyond the allowed clock skew of "
                f"{_seconds(policy.clock_skew)}. Synchronise the clocks (NTP).",
                expected=now.isoformat(),
                received=issue_instant.isoformat(),
            )
        issuers = _kids(assertion, _ISSUER_TAG)
        if len(issuers) != 1 or _first_element(assertion) is not issuers[0]:
            raise _err("saml.malformed", "The Assertion must begin with one saml:Issuer.")
        return self._check_issuer(issuers[0], "Assertion")

    def _check_conditions(self, assertion: etree._Element, now: datetime) -> datetime | None:
        policy = self.policy
        # Conditions: time window and audience (core 2.5.1).
        conditions = _kids(assertion, _CONDITIONS_TAG)
        if len(conditions) != 1:
            raise _err(
                "saml.malformed",
                "The Assertion must carry one saml:Conditions with an AudienceRestriction.",
            )
        cond = conditions[0]
        if _kids(cond, _CONDITION_TAG):
            # saml-core 2.5.1.1: a condition the relying party does not understand makes
            # the assertion Indeterminate; this SP refuses such assertions.
            raise _err(
                "saml.malformed",
                "The assertion's Conditions carry a custom saml:Condition this service "
                "provider cannot evaluate; only time, audience, OneTimeUse and "
                "ProxyRestriction conditions are accepted.",
            )
        self._not_before(cond, "The assertion's Conditions", now)
        conditions_limit = self._not_on_or_after(
            cond, "The assertion's Conditions", now, required=False
        )
        restrictions = _kids(cond, _AUDIENCE_RESTRICTION_TAG)
        if not restrictions:
            raise _err(
                "saml.audience_mismatch",
                "The Assertion has no AudienceRestriction; it must name this service "
                f"provider's entity ID {policy.sp_entity_id!r}.",
                expected=policy.sp_entity_id,
                received="",
            )
        for restriction in restrictions:
            audiences = [_text(a).strip() for a in _kids(restriction, _AUDIENCE_TAG)]
            if policy.sp_entity_id not in audiences:
                raise _err(
                    "saml.audience_mismatch",
                    f"The assertion is for audience {_shown(', '.join(audiences))}; this "
                    f"service provider's entity ID is {policy.sp_entity_id!r}. Set the "
                    "identity provider's Audience / SP Entity ID to exactly that value.",
                    expected=policy.sp_entity_id,
                    received=", ".join(audiences),
                )

        return conditions_limit

    def _check_solicitation(self, root: etree._Element, request_id: str | None) -> str | None:
        policy = self.policy
        # InResponseTo on the Response (profiles 4.1.4.2).
        in_response_to: str | None = root.get("InResponseTo")
        if request_id is None:
            if in_response_to is not None:
                raise _err(
                    "saml.unexpected_in_response_to",
                    f"The response answers request {_shown(in_response_to)}, but no "
                    "sign-in request is pending for this browser (an expired, reused or "
                    "injected response).",
                    received=in_response_to,
                )
            if not policy.allow_idp_initiated:
                raise _err(
                    "saml.unsolicited",
                    "The response was not requested by this service provider (IdP-initiated "
                    "sign-in) and this organization does not allow IdP-initiated sign-in. "
                    "Start sign-in at the application, or allow IdP-initiated sign-in.",
                )
        elif in_response_to != request_id:
            raise _err(
                "saml.in_response_to_mismatch",
                f"The response answers request {_shown(in_response_to)}; the pending request "
                f"of this browser is {request_id!r}.",
                expected=request_id,
                received=in_response_to or "",
            )

        return in_response_to

    def _check_subject(
        self, assertion: etree._Element, now: datetime, request_id: str | None
    ) -> tuple[etree._Element, datetime]:
        # Subject: NameID and a bearer confirmation (profiles 4.1.4.2).
        subjects = _kids(assertion, _SUBJECT_TAG)
        if len(subjects) != 1:
            raise _err("saml.subject_invalid", "The Assertion must carry one saml:Subject.")
        subject = subjects[0]
        name_ids = _kids(subject, *_ANY_ID_TAGS)
        if len(name_ids) != 1 or name_ids[0].tag != _NAME_ID_TAG:
            raise _err(
                "saml.subject_invalid",
                "The Subject must carry one plain saml:NameID (EncryptedID and BaseID are not "
                "supported).",
            )
        name_id_el = name_ids[0]
        if _HAS_ELEMENT_CHILD(name_id_el):
            raise _err("saml.subject_invalid", "The NameID contains elements; it must be text.")
        if not _text(name_id_el).strip():
            raise _err("saml.subject_invalid", "The NameID is empty.")
        confirmation_limit = self._bearer(subject, now, request_id)

        return name_id_el, confirmation_limit

    def _check_authn(
        self, assertion: etree._Element, now: datetime
    ) -> tuple[etree._Element, datetime | None, datetime | None]:
        policy = self.policy
        # AuthnStatement: at least one, the first one is reported.
        statements = _kids(assertion, _AUTHN_STATEMENT_TAG)
        if not statements:
            raise _err(
                "saml.malformed", "The Assertion has no AuthnStatement (required for sign-in)."
            )
        statement = statements[0]
        authn_instant = self._time(statement, "AuthnInstant", "AuthnStatement")
        session_limit = self._time(statement, "SessionNotOnOrAfter", "AuthnStatement")
        if session_limit is not None and now >= session_limit + policy.clock_skew:
            raise _err(
                "saml.expired",
                f"The identity provider's session ended at {session_limit.isoformat()} "
                f"(SessionNotOnOrAfter); this server's time is {now.isoformat()}, "
                f"{_seconds(now - session_limit)} later.",
                expected=session_limit.isoformat(),
                received=now.isoformat(),
            )

        return statement, authn_instant, session_limit

    @staticmethod
    def _attributes(assertion: etree._Element) -> LazyAttributes:
        # The structure is checked now, in C (saml-core 2.7.3): every Attribute has a
        # Name and every value sits in an Attribute. A value is its XPath string value,
        # so elements nested in it (complex values) are read as their text and can
        # never be taken for further attributes. The values are read on first use.
        if (
            _STATEMENT_CHILDREN_UNNAMED(assertion) and _UNNAMED_ATTRIBUTES(assertion)
        ) or _ORPHAN_VALUES(assertion):
            raise _err(
                "saml.malformed",
                "An AttributeStatement is malformed: a saml:Attribute without Name, or a "
                "saml:AttributeValue outside any saml:Attribute.",
            )
        return LazyAttributes(functools.partial(_read_attributes, assertion))

    def _check_issuer(self, element: etree._Element, what: str) -> str:
        fmt = element.get("Format")
        value = _text(element).strip()
        if fmt not in (None, ENTITY_FORMAT) or value != self.idp.entity_id:
            raise _err(
                "saml.issuer_mismatch",
                f"The {what} was issued by {_shown(value)}; this organization trusts the "
                f"identity provider {self.idp.entity_id!r}. Check that the IdP metadata "
                "configured here belongs to the IdP that sent the response.",
                expected=self.idp.entity_id,
                received=value,
            )
        return value

    def _bearer(self, subject: etree._Element, now: datetime, request_id: str | None) -> datetime:
        policy = self.policy
        first_error: SamlValidationError | None = None
        bearer_seen = False
        for confirmation in _kids(subject, _CONFIRMATION_TAG):
            if confirmation.get("Method") != BEARER:
                continue
            bearer_seen = True
            try:
                data_nodes = _kids(confirmation, _CONFIRMATION_DATA_TAG)
                if len(data_nodes) != 1:
                    raise _err(
                        "saml.subject_invalid",
                        "The bearer SubjectConfirmation has no SubjectConfirmationData.",
                    )
                data = data_nodes[0]
                recipient = data.get("Recipient")
                if recipient != policy.acs_url:
                    raise _err(
                        "saml.recipient_mismatch",
                        f"The bearer confirmation's Recipient is {_shown(recipient)}; this "
                        f"service provider's ACS URL is {policy.acs_url!r}.",
                        expected=policy.acs_url,
                        received=recipient or "",
                    )
                self._not_before(data, "The bearer SubjectConfirmationData", now)
                limit = self._not_on_or_after(
                    data, "The bearer SubjectConfirmationData", now, required=True
                )
                assert limit is not None  # noqa: S101 - required=True returns a value
                answered = data.get("InResponseTo")
                if request_id is None and answered is not None:
                    raise _err(
                        "saml.unexpected_in_response_to",
                        f"The bearer confirmation answers request {_shown(answered)}, but no "
                        "sign-in request is pending for this browser.",
                        received=answered,
                    )
                if request_id is not None and answered != request_id:
                    # The profile (4.1.4.2) requires InResponseTo here for a solicited
                    # response; unlike the Response's, this one is always signed.
                    raise _err(
                        "saml.in_response_to_mismatch",
                        f"The bearer confirmation answers request {_shown(answered)}; the "
                        f"pending request of this browser is {request_id!r}.",
                        expected=request_id,
                        received=answered,
                    )
            except SamlValidationError as exc:
                first_error = first_error or exc
                continue
            return limit
        if first_error is not None:
            raise first_error
        raise _err(
            "saml.subject_invalid",
            "The Subject has no bearer SubjectConfirmation"
            + (" (only other methods)" if not bearer_seen else "")
            + "; web browser SSO requires one.",
        )


def _text(element: etree._Element) -> str:
    """The XPath string value: every descendant text node, comments skipped."""
    if len(element) == 0:  # no child nodes at all (comments count as children)
        return element.text or ""
    return str(_STRING(element))


def _public_key_pem(der: bytes) -> bytes:
    return (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _read_attributes(assertion: etree._Element) -> dict[str, tuple[str, ...]]:
    collected: dict[str, list[str]] = {}
    for statement in assertion.iterchildren(_ATTRIBUTE_STATEMENT):
        for attribute in statement.iterchildren(_ATTRIBUTE):
            values = collected.setdefault(attribute.get("Name") or "", [])
            for value in attribute.iterchildren(_ATTRIBUTE_VALUE):
                if len(value) == 0:
                    text = value.text
                    if text is None and value.get(_XSI_NIL) in ("true", "1"):
                        continue
                    values.append(text or "")
                else:
                    values.append(str(_STRING(value)))
    return {name: tuple(found) for name, found in collected.items()}


def _all_assertions(root: etree._Element) -> list[etree._Element]:
    # A C-level walk filtered by tag: cheaper than XPath on large documents.
    return list(root.iter(_ASSERTION, _ENCRYPTED_ASSERTION))


def _first_element(element: etree._Element) -> etree._Element | None:
    return next(element.iterchildren(etree.Element), None)


def _first(values: list[str]) -> str | None:
    return str(values[0]) if values else None


@functools.lru_cache(maxsize=128)
def _validator(
    idp: IdpConfig, policy: SamlPolicy, sp_private_keys: tuple[bytes, ...]
) -> SamlValidator:
    return SamlValidator(idp, policy, sp_private_keys)


def validate_response(
    response: bytes | str,
    *,
    idp: IdpConfig,
    policy: SamlPolicy,
    now: datetime,
    request_id: str | None = None,
    sp_private_keys: Sequence[bytes] = (),
) -> SamlLogin:
    """Validate one SAML Response; see :class:`SamlValidator`.

    The compiled validator of each configuration is cached, so repeated calls with the
    same (frozen) configuration do not rebuild keys.
    """
    return _validator(idp, policy, tuple(sp_private_keys)).validate(
        response, now=now, request_id=request_id
    )
