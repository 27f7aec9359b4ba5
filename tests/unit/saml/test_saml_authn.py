"""AuthnRequests: HTTP-Redirect (DEFLATE, RSA-SHA256 query signature) and HTTP-POST."""

from __future__ import annotations

import base64
import zlib
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from nulabpass.errors import InvalidInput
from nulabpass.saml import (
    BINDING_POST,
    SIG_ALG_RSA_SHA256,
    IdpConfig,
    build_authn_request,
    check_relay_state,
    new_request_id,
)
from nulabpass.saml._xmlsec import xmlsec
from nulabpass.saml.testing import TestKeyPair

from .conftest import ACS_URL, NOW, SP_ENTITY_ID

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


def test_request_ids_are_unique_xml_ids() -> None:
    ids = {new_request_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("_") and len(i) == 41 for i in ids)


def test_redirect_binding_deflates_the_request_for_the_idp(idp_config: IdpConfig) -> None:
    message = build_authn_request(
        idp=idp_config,
        sp_entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        request_id="_req42",
        issue_instant=NOW,
        relay_state="/projects/42?tab=1",
    )
    parts = urlsplit(message.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == idp_config.sso_redirect_url
    query = parse_qs(parts.query)
    assert query["RelayState"] == ["/projects/42?tab=1"]
    assert "Signature" not in query
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
    root = etree.fromstring(xml)
    assert root.tag == f"{{{SAMLP}}}AuthnRequest"
    assert root.get("ID") == "_req42"
    assert root.get("IssueInstant") == "2026-12-04T09:00:00Z"
    assert root.get("AssertionConsumerServiceURL") == ACS_URL
    assert root.get("Destination") == idp_config.sso_redirect_url
    assert root.findtext(f"{{{SAML}}}Issuer") == SP_ENTITY_ID
    assert message.xml == xml


def test_a_signed_redirect_carries_an_rsa_sha256_signature_over_the_query(
    idp_config: IdpConfig, sp_keys: TestKeyPair
) -> None:
    message = build_authn_request(
        idp=idp_config,
        sp_entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        request_id="_req43",
        issue_instant=NOW,
        relay_state="/home",
        signing_key=sp_keys.key_pem,
    )
    query = urlsplit(message.url).query
    signed_part, signature = query.rsplit("&Signature=", 1)
    assert signed_part.endswith("&SigAlg=" + quote(SIG_ALG_RSA_SHA256, safe=""))
    public_key = x509.load_pem_x509_certificate(sp_keys.cert_pem).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    raw = base64.b64decode(parse_qs("s=" + signature)["s"][0])
    public_key.verify(raw, signed_part.encode(), padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        public_key.verify(raw, signed_part.encode() + b"x", padding.PKCS1v15(), hashes.SHA256())


def test_post_binding_produces_a_form_with_an_enveloped_signature(
    idp_config: IdpConfig, sp_keys: TestKeyPair
) -> None:
    message = build_authn_request(
        idp=idp_config,
        sp_entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        request_id="_req44",
        issue_instant=NOW,
        binding=BINDING_POST,
        relay_state="/x",
        signing_key=sp_keys.key_pem,
    )
    assert message.url == idp_config.sso_post_url
    assert message.form["RelayState"] == "/x"
    root = etree.fromstring(base64.b64decode(message.form["SAMLRequest"]))
    signature = root.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
    assert signature is not None
    ctx = xmlsec.SignatureContext()
    ctx.register_id(root, "ID")
    ctx.key = xmlsec.Key.from_memory(sp_keys.cert_pem, xmlsec.KeyFormat.CERT_PEM, None)
    ctx.verify(signature)
    html = message.html_form()
    assert 'name="SAMLRequest"' in html
    assert 'action="https://idp.example.test/saml/sso"' in html


def test_an_idp_that_wants_signed_requests_gets_none_without_a_key(
    idp_config: IdpConfig,
) -> None:
    strict = IdpConfig(
        entity_id=idp_config.entity_id,
        signing_certificates=idp_config.signing_certificates,
        sso_redirect_url=idp_config.sso_redirect_url,
        want_authn_requests_signed=True,
    )
    with pytest.raises(InvalidInput) as info:
        build_authn_request(
            idp=strict,
            sp_entity_id=SP_ENTITY_ID,
            acs_url=ACS_URL,
            request_id="_r",
            issue_instant=NOW,
        )
    assert info.value.code == "saml.sp_key_required"


@pytest.mark.parametrize("value", ["/", "/projects/42", "/a?b=c#d"])
def test_relative_paths_are_valid_relay_states(value: str) -> None:
    assert check_relay_state(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "/a\\b",
        "javascript:alert(1)",
        "projects",
        "/a\nb",
        "/" + "a" * 80,
        "",
    ],
)
def test_absolute_or_ambiguous_relay_states_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_relay_state(value)
    assert info.value.code == "saml.relay_state_invalid"
