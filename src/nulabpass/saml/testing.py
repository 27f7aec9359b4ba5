"""A test identity provider: keys, metadata and signed (or encrypted) responses.

For tests of hosts and of nulabpass itself. It signs with libxmlsec1 exactly as an IdP
would, and every field of a response can be overridden, so a test can produce the
response it needs (an expired one, one for another audience...). Never use it outside
tests: its keys are generated in memory and its defaults are for tests.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from nulabpass.saml._metadata import parse_idp_metadata
from nulabpass.saml._model import BINDING_POST, BINDING_REDIRECT, NAMEID_EMAIL, IdpConfig
from nulabpass.saml._validate import BEARER, STATUS_SUCCESS
from nulabpass.saml._xml import DS, MD, SAML, SAMLP
from nulabpass.saml._xmlsec import xmlsec

__all__ = ["TestIdentityProvider", "TestKeyPair", "make_key_pair"]

_XS = "http://www.w3.org/2001/XMLSchema"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


class TestKeyPair:
    """An RSA key and a self-signed certificate for it (PEM and DER)."""

    __test__ = False  # not a pytest class

    def __init__(self, key_pem: bytes, cert_pem: bytes) -> None:
        self.key_pem = key_pem
        self.cert_pem = cert_pem
        self.cert_der = x509.load_pem_x509_certificate(cert_pem).public_bytes(
            serialization.Encoding.DER
        )


def make_key_pair(
    common_name: str = "nulabpass test", *, key_size: int = 2048, elliptic: bool = False
) -> TestKeyPair:
    """Generate an RSA (or, with ``elliptic``, a P-256) key pair with a self-signed
    certificate valid for twenty years from 2020."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if elliptic
        else rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime(2020, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650 * 2))
        .sign(key, hashes.SHA256())
    )
    return TestKeyPair(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_element(
    element: etree._Element,
    key_pem: bytes,
    *,
    cert_pem: bytes | None = None,
    signature_method: object = xmlsec.Transform.RSA_SHA256,
    digest_method: object = xmlsec.Transform.SHA256,
) -> etree._Element:
    """Add an enveloped signature over ``element`` (after its Issuer) and sign it."""
    signature = xmlsec.template.create(
        element, xmlsec.Transform.EXCL_C14N, signature_method, ns="ds"
    )
    issuer = element.find(f"{{{SAML}}}Issuer")
    position = 0 if issuer is None else list(element).index(issuer) + 1
    element.insert(position, signature)
    ref = xmlsec.template.add_reference(signature, digest_method, uri="#" + element.get("ID", ""))
    xmlsec.template.add_transform(ref, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(ref, xmlsec.Transform.EXCL_C14N)
    if cert_pem is not None:
        key_info = xmlsec.template.ensure_key_info(signature)
        xmlsec.template.add_x509_data(key_info)
    ctx = xmlsec.SignatureContext()
    ctx.register_id(element, "ID")
    key = xmlsec.Key.from_memory(key_pem, xmlsec.KeyFormat.PEM, None)
    if cert_pem is not None:
        key.load_cert_from_memory(cert_pem, xmlsec.KeyFormat.CERT_PEM)
    ctx.key = key
    ctx.sign(signature)
    return signature


def encrypt_assertion(
    assertion: etree._Element,
    recipient_cert_pem: bytes,
    *,
    content: object = xmlsec.Transform.AES256_GCM,
    key_transport: object = xmlsec.Transform.RSA_OAEP,
) -> etree._Element:
    """Replace ``assertion`` (a child of a Response) by an EncryptedAssertion."""
    parent = assertion.getparent()
    assert parent is not None  # noqa: S101 - callers pass an attached assertion
    wrapper = etree.Element(f"{{{SAML}}}EncryptedAssertion")
    parent.replace(assertion, wrapper)
    wrapper.append(assertion)
    data = xmlsec.template.encrypted_data_create(
        wrapper, content, type=xmlsec.EncryptionType.ELEMENT, ns="xenc"
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(data)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(data, ns="ds")
    enc_key = xmlsec.template.add_encrypted_key(key_info, key_transport)
    xmlsec.template.encrypted_data_ensure_cipher_value(enc_key)
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(recipient_cert_pem, xmlsec.KeyFormat.CERT_PEM, None))
    ctx = xmlsec.EncryptionContext(manager)
    bits = {
        xmlsec.Transform.AES128_GCM: 128,
        xmlsec.Transform.AES128: 128,
        xmlsec.Transform.AES192_GCM: 192,
        xmlsec.Transform.AES192: 192,
    }.get(content, 256)
    ctx.key = xmlsec.Key.generate(xmlsec.KeyData.AES, bits, xmlsec.KeyDataType.SESSION)
    ctx.encrypt_xml(data, assertion)
    return wrapper


class TestIdentityProvider:
    """An in-memory IdP that issues responses for one service provider."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        *,
        entity_id: str = "https://idp.example.test/saml/metadata",
        sso_url: str = "https://idp.example.test/saml/sso",
        keys: TestKeyPair | None = None,
    ) -> None:
        self.entity_id = entity_id
        self.sso_url = sso_url
        self.keys = keys or make_key_pair("test idp")
        self._counter = 0

    def metadata(self, *, extra_certificates: Sequence[bytes] = ()) -> bytes:
        """The IdP's metadata document (its certificate plus ``extra_certificates`` DER)."""
        root = etree.Element(f"{{{MD}}}EntityDescriptor", nsmap={"md": MD, "ds": DS})
        root.set("entityID", self.entity_id)
        sso = etree.SubElement(root, f"{{{MD}}}IDPSSODescriptor")
        sso.set("protocolSupportEnumeration", SAMLP)
        for der in (self.keys.cert_der, *extra_certificates):
            key = etree.SubElement(sso, f"{{{MD}}}KeyDescriptor", use="signing")
            data = etree.SubElement(etree.SubElement(key, f"{{{DS}}}KeyInfo"), f"{{{DS}}}X509Data")
            etree.SubElement(data, f"{{{DS}}}X509Certificate").text = base64.b64encode(
                der
            ).decode()
        etree.SubElement(sso, f"{{{MD}}}NameIDFormat").text = NAMEID_EMAIL
        for binding in (BINDING_REDIRECT, BINDING_POST):
            service = etree.SubElement(sso, f"{{{MD}}}SingleSignOnService")
            service.set("Binding", binding)
            service.set("Location", self.sso_url)
        xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        return xml

    def config(self) -> IdpConfig:
        """This IdP's configuration as the service provider stores it."""
        return parse_idp_metadata(self.metadata())

    def _next_id(self, prefix: str) -> str:
        self._counter += 1
        return f"_{prefix}{self._counter:04d}{id(self) % 100000:05d}"

    def response_tree(
        self,
        *,
        sp_entity_id: str,
        acs_url: str,
        name_id: str,
        now: datetime,
        in_response_to: str | None = None,
        attributes: Mapping[str, Sequence[str]] | None = None,
        lifetime: timedelta = timedelta(minutes=5),
        status: str = STATUS_SUCCESS,
        issuer: str | None = None,
        audience: str | None = None,
        recipient: str | None = None,
        destination: str | None = None,
        session_index: str = "_session1",
    ) -> etree._Element:
        """An unsigned Response (with one Assertion) whose every field can be overridden."""
        issuer = issuer or self.entity_id
        nsmap = {"samlp": SAMLP, "saml": SAML, "xs": _XS, "xsi": _XSI}
        response = etree.Element(f"{{{SAMLP}}}Response", nsmap=nsmap)
        response.set("ID", self._next_id("r"))
        response.set("Version", "2.0")
        response.set("IssueInstant", _iso(now))
        response.set("Destination", destination or acs_url)
        if in_response_to is not None:
            response.set("InResponseTo", in_response_to)
        etree.SubElement(response, f"{{{SAML}}}Issuer").text = issuer
        status_el = etree.SubElement(response, f"{{{SAMLP}}}Status")
        etree.SubElement(status_el, f"{{{SAMLP}}}StatusCode", Value=status)

        assertion = etree.SubElement(response, f"{{{SAML}}}Assertion")
        assertion.set("ID", self._next_id("a"))
        assertion.set("Version", "2.0")
        assertion.set("IssueInstant", _iso(now))
        etree.SubElement(assertion, f"{{{SAML}}}Issuer").text = issuer
        subject = etree.SubElement(assertion, f"{{{SAML}}}Subject")
        name = etree.SubElement(subject, f"{{{SAML}}}NameID", Format=NAMEID_EMAIL)
        name.text = name_id
        confirmation = etree.SubElement(subject, f"{{{SAML}}}SubjectConfirmation", Method=BEARER)
        data = etree.SubElement(confirmation, f"{{{SAML}}}SubjectConfirmationData")
        data.set("NotOnOrAfter", _iso(now + lifetime))
        data.set("Recipient", recipient or acs_url)
        if in_response_to is not None:
            data.set("InResponseTo", in_response_to)
        conditions = etree.SubElement(assertion, f"{{{SAML}}}Conditions")
        conditions.set("NotBefore", _iso(now - timedelta(seconds=30)))
        conditions.set("NotOnOrAfter", _iso(now + lifetime))
        restriction = etree.SubElement(conditions, f"{{{SAML}}}AudienceRestriction")
        etree.SubElement(restriction, f"{{{SAML}}}Audience").text = audience or sp_entity_id
        statement = etree.SubElement(assertion, f"{{{SAML}}}AuthnStatement")
        statement.set("AuthnInstant", _iso(now - timedelta(seconds=5)))
        statement.set("SessionIndex", session_index)
        statement.set("SessionNotOnOrAfter", _iso(now + timedelta(hours=8)))
        context = etree.SubElement(statement, f"{{{SAML}}}AuthnContext")
        etree.SubElement(
            context, f"{{{SAML}}}AuthnContextClassRef"
        ).text = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
        if attributes:
            attribute_statement = etree.SubElement(assertion, f"{{{SAML}}}AttributeStatement")
            for attr_name, values in attributes.items():
                attribute = etree.SubElement(attribute_statement, f"{{{SAML}}}Attribute")
                attribute.set("Name", attr_name)
                attribute.set("NameFormat", "urn:oasis:names:tc:SAML:2.0:attrname-format:basic")
                for value in values:
                    value_el = etree.SubElement(attribute, f"{{{SAML}}}AttributeValue")
                    value_el.set(f"{{{_XSI}}}type", "xs:string")
                    value_el.text = value
        return response

    def sign(self, element: etree._Element, *, include_certificate: bool = True) -> None:
        """Sign ``element`` (a Response or an Assertion) with this IdP's key."""
        sign_element(
            element,
            self.keys.key_pem,
            cert_pem=self.keys.cert_pem if include_certificate else None,
        )

    def response(
        self,
        *,
        sign_response: bool = False,
        sign_assertion: bool = True,
        encrypt_for: bytes | None = None,
        **fields: object,
    ) -> bytes:
        """A complete response as XML bytes; see :meth:`response_tree` for ``fields``."""
        response = self.response_tree(**fields)  # type: ignore[arg-type]
        assertion = response.find(f"{{{SAML}}}Assertion")
        assert assertion is not None  # noqa: S101 - built just above
        if sign_assertion:
            self.sign(assertion)
        if encrypt_for is not None:
            encrypt_assertion(assertion, encrypt_for)
        if sign_response:
            self.sign(response)
        xml: bytes = etree.tostring(response)
        return xml

    @staticmethod
    def post_value(xml: bytes) -> str:
        """The base64 ``SAMLResponse`` form value of ``xml``."""
        return base64.b64encode(xml).decode()
