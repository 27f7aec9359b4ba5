"""IdP metadata parsing names the field at fault; SP metadata carries what IdPs need."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from lxml import etree

from nulabpass.errors import InvalidInput
from nulabpass.saml import (
    BINDING_POST,
    NAMEID_EMAIL,
    idp_config_from_fields,
    parse_idp_metadata,
    sp_metadata,
)
from nulabpass.saml.testing import TestIdentityProvider, TestKeyPair, make_key_pair

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


def field_of(data: bytes, **kwargs: object) -> str:
    with pytest.raises(InvalidInput) as info:
        parse_idp_metadata(data, **kwargs)  # type: ignore[arg-type]
    assert info.value.code == "saml.metadata_invalid"
    return info.value.details["field"]


def test_metadata_yields_entity_id_certificates_and_sso_endpoints(
    idp: TestIdentityProvider,
) -> None:
    config = parse_idp_metadata(idp.metadata())
    assert config.entity_id == idp.entity_id
    assert config.signing_certificates == (idp.keys.cert_der,)
    assert config.sso_redirect_url == idp.sso_url
    assert config.sso_post_url == idp.sso_url
    assert config.want_authn_requests_signed is False


def test_several_signing_certificates_are_all_kept_for_key_rollover(
    idp: TestIdentityProvider,
) -> None:
    other = make_key_pair("next")
    config = parse_idp_metadata(idp.metadata(extra_certificates=[other.cert_der]))
    assert config.signing_certificates == (idp.keys.cert_der, other.cert_der)


def test_an_encryption_only_key_is_not_trusted_for_signatures(idp: TestIdentityProvider) -> None:
    root = etree.fromstring(idp.metadata())
    root.find(f".//{{{MD}}}KeyDescriptor").set("use", "encryption")
    assert field_of(etree.tostring(root)) == "KeyDescriptor"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.attrib.pop("entityID"), "entityID"),
        (lambda r: r.remove(r[0]), "IDPSSODescriptor"),
        (lambda r: r[0].set("protocolSupportEnumeration", "urn:x"), "protocolSupportEnumeration"),
        (
            lambda r: [s.set("Location", "http://idp.example.test/sso") for s in r[0][-2:]],
            "SingleSignOnService@Location",
        ),
        (lambda r: [r[0].remove(s) for s in r[0][-2:]], "SingleSignOnService"),
        (
            lambda r: setattr(r.find(f".//{{{DS}}}X509Certificate"), "text", "bm90IGEgY2VydA=="),
            "X509Certificate",
        ),
        (
            lambda r: setattr(r.find(f".//{{{DS}}}X509Certificate"), "text", "%%%"),
            "X509Certificate",
        ),
    ],
    ids=[
        "no-entity-id",
        "no-idpsso",
        "not-saml2",
        "http-sso",
        "no-sso",
        "not-a-cert",
        "not-base64",
    ],
)
def test_each_invalid_field_is_named(
    idp: TestIdentityProvider, mutate: object, field: str
) -> None:
    root = etree.fromstring(idp.metadata())
    mutate(root)  # type: ignore[operator]
    assert field_of(etree.tostring(root)) == field


def test_expired_metadata_is_refused_when_a_time_is_given(idp: TestIdentityProvider) -> None:
    root = etree.fromstring(idp.metadata())
    root.set("validUntil", "2026-01-01T00:00:00Z")
    data = etree.tostring(root)
    assert parse_idp_metadata(data).entity_id == idp.entity_id
    assert field_of(data, now=datetime(2026, 2, 1, tzinfo=UTC)) == "validUntil"


def test_metadata_with_a_doctype_is_refused(idp: TestIdentityProvider) -> None:
    data = (
        b'<!DOCTYPE md [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        + idp.metadata().split(b"?>", 1)[1]
    )
    assert field_of(data) == "metadata"


def test_a_small_rsa_key_is_refused() -> None:
    weak = make_key_pair("weak", key_size=1024)
    with pytest.raises(InvalidInput) as info:
        idp_config_from_fields(
            entity_id="https://idp",
            signing_certificates=[weak.cert_pem],
            sso_redirect_url="https://idp/sso",
        )
    assert "1024-bit" in info.value.message


def test_hand_entered_fields_accept_pem_certificates(sp_keys: TestKeyPair) -> None:
    config = idp_config_from_fields(
        entity_id=" https://idp.example ",
        signing_certificates=[sp_keys.cert_pem, sp_keys.cert_der],
        sso_post_url="https://idp.example/sso",
    )
    assert config.entity_id == "https://idp.example"
    assert config.signing_certificates == (sp_keys.cert_der,)


def test_sp_metadata_publishes_entity_acs_nameid_format_and_certificates(
    sp_keys: TestKeyPair,
) -> None:
    second = make_key_pair("next sp")
    data = sp_metadata(
        entity_id="https://sp.example/metadata",
        acs_url="https://sp.example/acs",
        signing_certificates=[sp_keys.cert_pem, second.cert_pem],
        encryption_certificates=[sp_keys.cert_pem],
    )
    root = etree.fromstring(data)
    ns = {"md": MD, "ds": DS}
    assert root.get("entityID") == "https://sp.example/metadata"
    acs = root.find("md:SPSSODescriptor/md:AssertionConsumerService", ns)
    assert (acs.get("Binding"), acs.get("Location")) == (BINDING_POST, "https://sp.example/acs")
    assert root.findtext("md:SPSSODescriptor/md:NameIDFormat", namespaces=ns) == NAMEID_EMAIL
    uses = [k.get("use") for k in root.iterfind(".//md:KeyDescriptor", ns)]
    assert uses == ["signing", "signing", "encryption"]
    certs = [base64.b64decode(c.text) for c in root.iterfind(".//ds:X509Certificate", ns)]
    assert certs[0] == sp_keys.cert_der
    assert certs[1] == second.cert_der
