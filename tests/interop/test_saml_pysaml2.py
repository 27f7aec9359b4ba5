"""Interop with independent SAML implementations: pysaml2 as the IdP, and signxml.

pysaml2 signs and encrypts through the ``xmlsec1`` binary (its in-process backend cannot
coexist with python-xmlsec). Its responses are validated by nulabpass at the instant
they were issued; nulabpass's AuthnRequests are parsed (and their signatures checked)
by pysaml2's IdP.
"""

from __future__ import annotations

import base64
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree

from nulabpass.saml import (
    BINDING_POST,
    IdpConfig,
    SamlPolicy,
    SamlValidationError,
    SamlValidator,
    build_authn_request,
    parse_idp_metadata,
    sp_metadata,
)
from nulabpass.saml.testing import TestKeyPair, make_key_pair

saml2 = pytest.importorskip("saml2")
signxml = pytest.importorskip("signxml")

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT  # noqa: E402
from saml2.config import IdPConfig  # noqa: E402
from saml2.metadata import entity_descriptor  # noqa: E402
from saml2.response import IncorrectlySigned  # noqa: E402
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID  # noqa: E402
from saml2.server import Server  # noqa: E402
from saml2.sigver import pre_encryption_part, verify_redirect_signature  # noqa: E402
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256  # noqa: E402

AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
XMLSEC1 = shutil.which("xmlsec1")
pytestmark = pytest.mark.skipif(
    XMLSEC1 is None, reason="pysaml2's IdP needs the xmlsec1 binary (apt-get install xmlsec1)"
)

IDP_ID = "https://pysaml2-idp.example.test/metadata"
IDP_SSO = "https://pysaml2-idp.example.test/sso"
SP_ID = "https://sp.example.test/saml/metadata"
ACS = "https://sp.example.test/saml/acs"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"


class Peer:
    """A pysaml2 IdP that knows our SP through the SP metadata nulabpass generates."""

    def __init__(self, workdir: Path, sp: TestKeyPair) -> None:
        idp_keys = make_key_pair("pysaml2 idp")
        (workdir / "idp.key").write_bytes(idp_keys.key_pem)
        (workdir / "idp.crt").write_bytes(idp_keys.cert_pem)
        self.sp = sp
        self.workdir = workdir
        metadata = sp_metadata(
            entity_id=SP_ID,
            acs_url=ACS,
            signing_certificates=[sp.cert_pem],
            encryption_certificates=[sp.cert_pem],
            authn_requests_signed=True,
        ).decode()
        config = IdPConfig()
        config.load(
            {
                "entityid": IDP_ID,
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [
                                (IDP_SSO, BINDING_HTTP_REDIRECT),
                                (IDP_SSO, BINDING_HTTP_POST),
                            ]
                        },
                        "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                        "want_authn_requests_signed": True,
                        "policy": {"default": {"lifetime": {"minutes": 5}}},
                    }
                },
                "key_file": str(workdir / "idp.key"),
                "cert_file": str(workdir / "idp.crt"),
                "xmlsec_binary": XMLSEC1,
                "crypto_backend": "xmlsec1",
                "metadata": {"inline": [metadata]},
                "delete_tmpfiles": True,
            }
        )
        self.server = Server(config=config)
        descriptor = entity_descriptor(config)
        self.metadata = str(descriptor).encode()

    def response(self, *, request_id: str | None = "_req1", **options: Any) -> bytes:
        result = self.server.create_authn_response(
            identity={"mail": ["alice@example.com"], "givenName": ["Alice"]},
            in_response_to=request_id,
            destination=ACS,
            sp_entity_id=SP_ID,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text="alice@example.com"),
            authn={"class_ref": PASSWORD, "authn_auth": IDP_ID},
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
            **options,
        )
        return str(result).encode()


@pytest.fixture(scope="module")
def sp_keys() -> TestKeyPair:
    return make_key_pair("sp")


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory, sp_keys: TestKeyPair) -> Peer:
    return Peer(tmp_path_factory.mktemp("pysaml2"), sp_keys)


@pytest.fixture(scope="module")
def validator(peer: Peer, sp_keys: TestKeyPair) -> SamlValidator:
    config = parse_idp_metadata(peer.metadata)
    return SamlValidator(config, SamlPolicy(sp_entity_id=SP_ID, acs_url=ACS), [sp_keys.key_pem])


def _cert_body(keys: TestKeyPair) -> str:
    return "".join(keys.cert_pem.decode().splitlines()[1:-1])


def issued_at(xml: bytes) -> datetime:
    return datetime.fromisoformat(etree.fromstring(xml).get("IssueInstant"))


def test_pysaml2_metadata_is_read_as_an_idp_configuration(peer: Peer) -> None:
    config = parse_idp_metadata(peer.metadata)
    assert config.entity_id == IDP_ID
    assert config.sso_redirect_url == IDP_SSO
    assert config.sso_post_url == IDP_SSO
    assert len(config.signing_certificates) == 1


@pytest.mark.parametrize(
    ("sign_response", "sign_assertion", "signed"),
    [
        (True, False, ("response",)),
        (False, True, ("assertion",)),
        (True, True, ("response",)),
    ],
    ids=["signed-response", "signed-assertion", "both"],
)
def test_a_pysaml2_response_is_accepted(
    peer: Peer,
    validator: SamlValidator,
    sign_response: bool,
    sign_assertion: bool,
    signed: tuple[str, ...],
) -> None:
    xml = peer.response(sign_response=sign_response, sign_assertion=sign_assertion)
    login = validator.validate(base64.b64encode(xml), now=issued_at(xml), request_id="_req1")
    assert login.signed == signed
    assert login.name_id == "alice@example.com"
    assert login.issuer == IDP_ID
    assert login.in_response_to == "_req1"
    assert any("alice@example.com" in values for values in login.attributes.values())


def test_a_pysaml2_response_is_refused_once_it_expires(
    peer: Peer, validator: SamlValidator
) -> None:
    from datetime import timedelta

    xml = peer.response(sign_response=True, sign_assertion=True)
    with pytest.raises(SamlValidationError) as info:
        validator.validate(xml, now=issued_at(xml) + timedelta(hours=1), request_id="_req1")
    assert info.value.code == "saml.expired"


def test_a_pysaml2_response_for_another_request_is_refused(
    peer: Peer, validator: SamlValidator
) -> None:
    xml = peer.response(sign_response=True, sign_assertion=True)
    with pytest.raises(SamlValidationError) as info:
        validator.validate(xml, now=issued_at(xml), request_id="_someone_else")
    assert info.value.code == "saml.in_response_to_mismatch"


def _encrypted_by_pysaml2(
    peer: Peer, template_options: dict[str, Any], session_key: str = "des-192"
) -> bytes:
    # pysaml2's own xmlsec1-based encryption of the signed assertion, with an explicit
    # template (its IdP default content cipher is 3DES, which nulabpass refuses).
    xml = peer.response(sign_response=False, sign_assertion=True)
    root = etree.fromstring(xml)
    assertion = root.find(f"{{{SAML}}}Assertion")
    assert assertion is not None
    cert_b64 = _cert_body(peer.sp)
    template = str(pre_encryption_part(encrypt_cert=cert_b64, **template_options))
    wrapper = etree.SubElement(root, f"{{{SAML}}}EncryptedAssertion")
    root.replace(assertion, wrapper)
    wrapper.append(assertion)
    sp_cert = peer.workdir / "sp-enc.crt"
    sp_cert.write_bytes(peer.sp.cert_pem)
    encrypted = peer.server.sec.crypto.encrypt_assertion(
        etree.tostring(root).decode(),
        str(sp_cert),
        template,
        key_type=session_key,
        node_xpath="/*[local-name()='Response']/*[local-name()='EncryptedAssertion']/*[local-name()='Assertion']",
    )
    return encrypted.encode() if isinstance(encrypted, str) else bytes(encrypted)


def test_an_assertion_encrypted_by_pysaml2_with_aes_cbc_is_decrypted(
    peer: Peer, validator: SamlValidator
) -> None:
    xml = _encrypted_by_pysaml2(peer, {"msg_enc": AES256_CBC}, "aes-256")
    assert b"EncryptedData" in xml
    login = validator.validate(xml, now=issued_at(xml), request_id="_req1")
    assert login.encrypted is True
    assert login.signed == ("assertion",)
    assert login.name_id == "alice@example.com"


def test_pysaml2s_default_3des_encryption_is_refused_naming_the_algorithm(
    peer: Peer, validator: SamlValidator
) -> None:
    xml = _encrypted_by_pysaml2(peer, {})
    with pytest.raises(SamlValidationError) as info:
        validator.validate(xml, now=issued_at(xml), request_id="_req1")
    assert info.value.code == "saml.decryption_failed"
    assert "tripledes-cbc" in info.value.message


def test_our_redirect_authn_request_is_parsed_and_its_signature_verified_by_pysaml2(
    peer: Peer, sp_keys: TestKeyPair
) -> None:
    config: IdpConfig = parse_idp_metadata(peer.metadata)
    message = build_authn_request(
        idp=config,
        sp_entity_id=SP_ID,
        acs_url=ACS,
        request_id="_nulabpass_req_1",
        issue_instant=datetime.fromisoformat("2026-12-04T09:00:00+00:00"),
        relay_state="/projects/42",
        signing_key=sp_keys.key_pem,
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(message.url).query).items()}
    assert verify_redirect_signature(query, peer.server.sec.sec_backend, cert=_cert_body(sp_keys))
    tampered = dict(query, RelayState="/admin")
    assert not verify_redirect_signature(
        tampered, peer.server.sec.sec_backend, cert=_cert_body(sp_keys)
    )
    request = peer.server.parse_authn_request(
        query["SAMLRequest"],
        BINDING_HTTP_REDIRECT,
        relay_state=query["RelayState"],
        sigalg=query["SigAlg"],
        signature=query["Signature"],
    )
    assert request.message.id == "_nulabpass_req_1"
    assert request.message.issuer.text == SP_ID
    assert request.message.assertion_consumer_service_url == ACS
    assert request.message.name_id_policy.format == NAMEID_FORMAT_EMAILADDRESS
    with pytest.raises(IncorrectlySigned):
        peer.server.parse_authn_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state="/admin",
            sigalg=query["SigAlg"],
            signature=query["Signature"],
        )


def test_our_signed_post_authn_request_is_accepted_by_pysaml2(
    peer: Peer, sp_keys: TestKeyPair
) -> None:
    config = parse_idp_metadata(peer.metadata)
    message = build_authn_request(
        idp=config,
        sp_entity_id=SP_ID,
        acs_url=ACS,
        request_id="_nulabpass_req_2",
        issue_instant=datetime.fromisoformat("2026-12-04T09:00:00+00:00"),
        binding=BINDING_POST,
        signing_key=sp_keys.key_pem,
    )
    request = peer.server.parse_authn_request(message.form["SAMLRequest"], BINDING_HTTP_POST)
    assert request.message.id == "_nulabpass_req_2"
    assert request.message.signature is not None
    assert request.message.destination == IDP_SSO
    forged = base64.b64encode(
        base64.b64decode(message.form["SAMLRequest"]).replace(
            ACS.encode(), b"https://evil.example/acs"
        )
    ).decode()
    with pytest.raises(IncorrectlySigned):
        peer.server.parse_authn_request(forged, BINDING_HTTP_POST)


def test_an_assertion_signed_by_signxml_is_accepted(sp_keys: TestKeyPair) -> None:
    from nulabpass.saml.testing import TestIdentityProvider

    idp = TestIdentityProvider()
    now = datetime.fromisoformat("2026-12-04T09:00:00+00:00")
    root = idp.response_tree(
        sp_entity_id=SP_ID, acs_url=ACS, name_id="carol@example.com", now=now, in_response_to="_r"
    )
    assertion = root.find(f"{{{SAML}}}Assertion")
    assert assertion is not None
    signer = signxml.XMLSigner(
        method=signxml.methods.enveloped,
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    signed = signer.sign(
        assertion,
        key=idp.keys.key_pem,
        cert=idp.keys.cert_pem.decode(),
        reference_uri=assertion.get("ID"),
    )
    root.replace(assertion, signed)
    validator = SamlValidator(idp.config(), SamlPolicy(sp_entity_id=SP_ID, acs_url=ACS))
    login = validator.validate(etree.tostring(root), now=now, request_id="_r")
    assert login.name_id == "carol@example.com"
    assert login.signed == ("assertion",)


def test_a_signxml_signature_with_sha1_is_refused(sp_keys: TestKeyPair) -> None:
    from nulabpass.saml.testing import TestIdentityProvider

    idp = TestIdentityProvider()
    now = datetime.fromisoformat("2026-12-04T09:00:00+00:00")
    root = idp.response_tree(
        sp_entity_id=SP_ID, acs_url=ACS, name_id="carol@example.com", now=now, in_response_to="_r"
    )
    signer = signxml.XMLSigner(
        method=signxml.methods.enveloped,
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    signed = signer.sign(
        root, key=idp.keys.key_pem, cert=idp.keys.cert_pem.decode(), reference_uri=root.get("ID")
    )
    # Rewrite the digest algorithm URI to SHA-1 after signing: refused before any crypto.
    xml = etree.tostring(signed).replace(
        b"http://www.w3.org/2001/04/xmlenc#sha256", b"http://www.w3.org/2000/09/xmldsig#sha1"
    )
    validator = SamlValidator(idp.config(), SamlPolicy(sp_entity_id=SP_ID, acs_url=ACS))
    with pytest.raises(SamlValidationError) as info:
        validator.validate(xml, now=now, request_id="_r")
    assert info.value.code == "saml.algorithm_refused"
