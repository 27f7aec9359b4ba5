"""validate_response: what is accepted, what is read, and every rule that rejects."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta

import pytest
from lxml import etree

from nulabpass.errors import NulabPassError
from nulabpass.saml import (
    IdpConfig,
    SamlPolicy,
    SamlValidationError,
    SamlValidator,
    validate_response,
)
from nulabpass.saml._xmlsec import xmlsec
from nulabpass.saml.testing import TestIdentityProvider, TestKeyPair, encrypt_assertion

from .conftest import ACS_URL, NOW, REQUEST_ID, SP_ENTITY_ID, Build, Validate

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"


def error_of(
    function: Callable[..., object], *args: object, **kwargs: object
) -> SamlValidationError:
    with pytest.raises(SamlValidationError) as info:
        function(*args, **kwargs)
    return info.value


def code_of(validate: Validate, xml: bytes | str, **kwargs: object) -> str:
    with pytest.raises(SamlValidationError) as info:
        validate(xml, **kwargs)
    return info.value.code


@pytest.mark.parametrize(
    ("sign_response", "sign_assertion", "signed"),
    [
        (False, True, ("assertion",)),
        (True, False, ("response",)),
        (True, True, ("response",)),
    ],
)
def test_a_signed_response_or_assertion_is_accepted_and_reports_what_was_signed(
    build: Build,
    validate: Validate,
    sign_response: bool,
    sign_assertion: bool,
    signed: tuple[str, ...],
) -> None:
    xml = build(
        sign_response=sign_response,
        sign_assertion=sign_assertion,
        attributes={"givenName": ["Alice"], "groups": ["eng", "ops"]},
    )
    login = validate(base64.b64encode(xml).decode())
    assert login.signed == signed
    assert login.encrypted is False
    assert login.name_id == "alice@example.com"
    assert login.name_id_format == "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    assert login.issuer == "https://idp.example.test/saml/metadata"
    assert login.session_index == "_session1"
    assert login.authn_instant == NOW - timedelta(seconds=5)
    assert login.session_not_on_or_after == NOW + timedelta(hours=8)
    assert dict(login.attributes) == {"givenName": ("Alice",), "groups": ("eng", "ops")}
    assert login.in_response_to == REQUEST_ID
    assert login.expires_at == NOW + timedelta(minutes=5)


def test_xml_bytes_are_accepted_as_well_as_the_posted_base64(
    build: Build, validate: Validate
) -> None:
    xml = build()
    assert validate(xml).assertion_id == validate(base64.b64encode(xml)).assertion_id


def test_base64_wrapped_over_several_lines_is_accepted(build: Build, validate: Validate) -> None:
    encoded = base64.encodebytes(build()).decode()
    assert "\n" in encoded.strip()
    assert validate(encoded).name_id == "alice@example.com"


@pytest.mark.parametrize(
    "content",
    [xmlsec.Transform.AES256_GCM, xmlsec.Transform.AES128_GCM, xmlsec.Transform.AES256],
    ids=["aes256-gcm", "aes128-gcm", "aes256-cbc"],
)
def test_an_encrypted_assertion_is_decrypted_with_the_sp_key(
    idp: TestIdentityProvider, sp_keys: TestKeyPair, validate: Validate, content: object
) -> None:
    response = idp.response_tree(
        sp_entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        name_id="alice@example.com",
        now=NOW,
        in_response_to=REQUEST_ID,
    )
    assertion = response.find(f"{{{SAML}}}Assertion")
    idp.sign(assertion)
    encrypt_assertion(assertion, sp_keys.cert_pem, content=content)
    login = validate(etree.tostring(response))
    assert login.encrypted is True
    assert login.signed == ("assertion",)
    assert login.name_id == "alice@example.com"


def test_an_encrypted_assertion_covered_only_by_the_response_signature_is_accepted(
    build: Build, validate: Validate, sp_keys: TestKeyPair
) -> None:
    xml = build(sign_response=True, sign_assertion=False, encrypt_for=sp_keys.cert_pem)
    login = validate(xml)
    assert login.signed == ("response",)
    assert login.encrypted is True


def test_rsa_1_5_key_transport_is_refused_with_the_generic_decryption_code(
    idp: TestIdentityProvider, sp_keys: TestKeyPair, validate: Validate
) -> None:
    response = idp.response_tree(
        sp_entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        name_id="alice@example.com",
        now=NOW,
        in_response_to=REQUEST_ID,
    )
    assertion = response.find(f"{{{SAML}}}Assertion")
    idp.sign(assertion)
    encrypt_assertion(assertion, sp_keys.cert_pem, key_transport=xmlsec.Transform.RSA_PKCS1)
    assert code_of(validate, etree.tostring(response)) == "saml.decryption_failed"


def test_an_assertion_encrypted_for_another_key_fails_with_the_generic_decryption_code(
    build: Build, validate: Validate, idp: TestIdentityProvider
) -> None:
    # Encrypted for the IdP's own certificate: our SP key cannot open it.
    xml = build(encrypt_for=idp.keys.cert_pem)
    error = error_of(validate, xml)
    assert error.code == "saml.decryption_failed"


def test_an_encrypted_assertion_without_any_signature_is_refused(
    build: Build, validate: Validate, sp_keys: TestKeyPair
) -> None:
    xml = build(sign_assertion=False, encrypt_for=sp_keys.cert_pem)
    assert code_of(validate, xml) == "saml.signature_missing"


def test_an_unsigned_response_is_refused(build: Build, validate: Validate) -> None:
    assert code_of(validate, build(sign_assertion=False)) == "saml.signature_missing"


def test_a_response_signed_by_another_key_is_refused_even_with_its_certificate_in_keyinfo(
    build: Build, idp_config: IdpConfig, policy: SamlPolicy
) -> None:
    stranger = TestIdentityProvider(entity_id=idp_config.entity_id)
    xml = stranger.response(
        sp_entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        name_id="alice@example.com",
        now=NOW,
        in_response_to=REQUEST_ID,
    )
    error = error_of(
        validate_response,
        xml,
        idp=idp_config,
        policy=policy,
        now=NOW,
        request_id=REQUEST_ID,
    )
    assert error.code == "saml.signature_invalid"
    assert "1 configured IdP signing certificate" in error.message


def test_any_configured_certificate_verifies_during_a_key_rollover(
    idp: TestIdentityProvider, policy: SamlPolicy
) -> None:
    new_idp = TestIdentityProvider(entity_id=idp.entity_id)
    both = IdpConfig(
        entity_id=idp.entity_id,
        signing_certificates=(idp.keys.cert_der, new_idp.keys.cert_der),
        sso_redirect_url="https://idp.example.test/sso",
    )
    validator = SamlValidator(both, policy)
    for issuer in (idp, new_idp):
        xml = issuer.response(
            sp_entity_id=SP_ENTITY_ID,
            acs_url=ACS_URL,
            name_id="bob@example.com",
            now=NOW,
            in_response_to=REQUEST_ID,
        )
        assert validator.validate(xml, now=NOW, request_id=REQUEST_ID).name_id == (
            "bob@example.com"
        )


def test_a_modified_signed_value_breaks_the_signature(build: Build, validate: Validate) -> None:
    xml = build().replace(b"alice@example.com", b"mallory@example.com")
    assert code_of(validate, xml) == "saml.signature_invalid"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("issuer", "https://evil.example/idp", "saml.issuer_mismatch"),
        ("audience", "https://other-sp.example.test", "saml.audience_mismatch"),
        ("recipient", "https://sp.example.test/saml/acs2", "saml.recipient_mismatch"),
        ("destination", "https://sp.example.test/saml/acs/", "saml.destination_mismatch"),
        ("status", "urn:oasis:names:tc:SAML:2.0:status:Responder", "saml.status_not_success"),
        ("in_response_to", "_another_request", "saml.in_response_to_mismatch"),
    ],
)
def test_each_field_off_by_a_little_is_refused_with_its_own_code(
    build: Build, validate: Validate, field: str, value: str, code: str
) -> None:
    assert code_of(validate, build(sign_response=True, **{field: value})) == code


def test_the_audience_message_names_the_expected_and_the_received_value(
    build: Build, validate: Validate
) -> None:
    error = error_of(validate, build(audience="https://other.example"))
    assert error.details["expected"] == SP_ENTITY_ID
    assert error.details["received"] == "https://other.example"
    assert SP_ENTITY_ID in error.message
    assert "https://other.example" in error.message
    assert error.public_message == SamlValidationError.default_public_message
    assert SP_ENTITY_ID not in error.public_message


def test_an_expired_assertion_is_refused_and_the_message_says_how_far_the_clocks_differ(
    build: Build, validate: Validate, policy: SamlPolicy
) -> None:
    xml = build()
    late = NOW + timedelta(minutes=5) + policy.clock_skew + timedelta(seconds=30)
    error = error_of(validate, xml, now=late)
    assert error.code == "saml.expired"
    assert "90 seconds later" in error.message


def test_the_clock_skew_is_honoured_to_the_second(build: Build, validate: Validate) -> None:
    xml = build()
    limit = NOW + timedelta(minutes=5) + timedelta(seconds=60)
    assert validate(xml, now=limit - timedelta(seconds=1)).name_id == "alice@example.com"
    assert code_of(validate, xml, now=limit) == "saml.expired"


def test_a_not_yet_valid_assertion_is_refused(build: Build, validate: Validate) -> None:
    # Conditions NotBefore is NOW - 30 s; with 60 s of skew, NOW - 91 s is too early.
    xml = build()
    assert validate(xml, now=NOW - timedelta(seconds=30)).name_id == "alice@example.com"
    assert code_of(validate, xml, now=NOW - timedelta(seconds=91)) == "saml.not_yet_valid"


def test_a_smaller_configured_skew_is_applied(
    build: Build, idp_config: IdpConfig, policy: SamlPolicy
) -> None:
    strict = SamlValidator(idp_config, SamlPolicy(SP_ENTITY_ID, ACS_URL, clock_skew=timedelta(0)))
    xml = build()
    with pytest.raises(SamlValidationError) as info:
        strict.validate(xml, now=NOW + timedelta(minutes=5), request_id=REQUEST_ID)
    assert info.value.code == "saml.expired"


def test_an_unsolicited_response_is_refused_unless_the_policy_allows_it(
    build: Build, idp_config: IdpConfig
) -> None:
    xml = build(in_response_to=None)
    closed = SamlValidator(idp_config, SamlPolicy(SP_ENTITY_ID, ACS_URL))
    with pytest.raises(SamlValidationError) as info:
        closed.validate(xml, now=NOW)
    assert info.value.code == "saml.unsolicited"
    opened = SamlValidator(idp_config, SamlPolicy(SP_ENTITY_ID, ACS_URL, allow_idp_initiated=True))
    assert opened.validate(xml, now=NOW).in_response_to is None


def test_a_response_to_some_request_is_refused_when_no_request_is_pending(
    build: Build, idp_config: IdpConfig
) -> None:
    opened = SamlValidator(idp_config, SamlPolicy(SP_ENTITY_ID, ACS_URL, allow_idp_initiated=True))
    with pytest.raises(SamlValidationError) as info:
        opened.validate(build(), now=NOW)
    assert info.value.code == "saml.unexpected_in_response_to"


def test_a_solicited_response_must_answer_the_request_inside_the_signed_assertion(
    idp: TestIdentityProvider, validate: Validate
) -> None:
    # The Response (unsigned) claims the right request; the signed bearer data does not.
    response = idp.response_tree(
        sp_entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        name_id="alice@example.com",
        now=NOW,
        in_response_to="_other",
    )
    response.set("InResponseTo", REQUEST_ID)
    idp.sign(response.find(f"{{{SAML}}}Assertion"))
    assert code_of(validate, etree.tostring(response)) == "saml.in_response_to_mismatch"


def test_a_comment_inside_the_name_id_does_not_truncate_it(
    idp: TestIdentityProvider, validate: Validate
) -> None:
    response = idp.response_tree(
        sp_entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        name_id="placeholder",
        now=NOW,
        in_response_to=REQUEST_ID,
    )
    name_id = response.find(f".//{{{SAML}}}NameID")
    name_id.text = "admin@example.com"
    comment = etree.Comment("x")
    comment.tail = ".evil.example"
    name_id.append(comment)
    idp.sign(response.find(f"{{{SAML}}}Assertion"))
    assert validate(etree.tostring(response)).name_id == "admin@example.com.evil.example"


def test_malformed_input_is_refused_with_saml_malformed(validate: Validate) -> None:
    assert code_of(validate, b"<samlp:Response") == "saml.malformed"
    assert code_of(validate, "not base64 !!") == "saml.malformed"
    assert code_of(validate, b"<a/>") == "saml.malformed"


def test_a_document_type_declaration_is_refused_before_parsing(validate: Validate) -> None:
    xml = b'<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'
    assert code_of(validate, xml) == "saml.malformed"


@pytest.mark.parametrize(
    "prolog",
    [
        b"",
        b'<?xml version="1.0" encoding="UTF-8"?>\n',
        b'<?xml version="1.0"?><!-- a comment --><?pi data?>\n',
        b"<!-- a comment that mentions <r> -->",
        b"<?pi <r> inside an instruction ?>",
        b"<!-- an unterminated comment",
    ],
    ids=["bare", "declaration", "comment-and-pi", "tag-in-comment", "tag-in-pi", "unterminated"],
)
def test_a_declaration_anywhere_in_the_prolog_is_refused(
    validate: Validate, prolog: bytes
) -> None:
    xml = prolog + b'<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'
    error = error_of(validate, xml)
    assert error.code == "saml.malformed"
    assert "SAML messages never do" in error.message  # refused before parsing


def test_a_declaration_after_the_root_is_malformed_xml(validate: Validate) -> None:
    """Past the prolog the parser itself refuses a DOCTYPE: it is not well-formed."""
    error = error_of(validate, b'<r/><!DOCTYPE r [<!ENTITY x "y">]>')
    assert error.code == "saml.malformed"
    assert "not well-formed" in error.message


def test_a_comment_mentioning_a_doctype_is_not_a_declaration(
    build: Build, validate: Validate
) -> None:
    xml = b"<!-- <!DOCTYPE is not declared here -->" + build()
    assert validate(xml).name_id == "alice@example.com"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v + b"=",
        lambda v: v[:-1],
        lambda v: v[:100] + b"*" + v[101:],
        lambda v: v[:100] + b"=" + v[101:],
        lambda v: v + b"\x00",
    ],
    ids=["extra-padding", "truncated", "bad-character", "padding-inside", "nul"],
)
def test_base64_that_is_not_strictly_valid_is_refused(
    build: Build, validate: Validate, tamper: Callable[[bytes], bytes]
) -> None:
    error = error_of(validate, tamper(base64.b64encode(build())))
    assert error.code == "saml.malformed"
    assert "not valid base64" in error.message


def test_an_oversized_response_is_refused(idp_config: IdpConfig, build: Build) -> None:
    small = SamlValidator(idp_config, SamlPolicy(SP_ENTITY_ID, ACS_URL, max_response_bytes=1000))
    with pytest.raises(SamlValidationError) as info:
        small.validate(build(), now=NOW, request_id=REQUEST_ID)
    assert info.value.code == "saml.too_large"


def test_the_error_is_a_nulabpass_error_with_a_generic_public_message() -> None:
    error = SamlValidationError("saml.expired", "expired at 2026-12-04T09:05:00+00:00")
    assert isinstance(error, NulabPassError)
    assert error.code == "saml.expired"
    assert "2026" not in error.public_message


def test_naive_now_is_a_programming_error(validate: Validate, build: Build) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validate(build(), now=NOW.replace(tzinfo=None))


def test_validate_response_reuses_the_compiled_validator_of_a_configuration(
    build: Build, idp_config: IdpConfig, policy: SamlPolicy
) -> None:
    from nulabpass.saml._validate import _validator

    xml = build()
    validate_response(xml, idp=idp_config, policy=policy, now=NOW, request_id=REQUEST_ID)
    before = _validator.cache_info().hits
    validate_response(xml, idp=idp_config, policy=policy, now=NOW, request_id=REQUEST_ID)
    assert _validator.cache_info().hits == before + 1


def _with_attribute_statement(idp: TestIdentityProvider, statement_xml: bytes) -> bytes:
    response = idp.response_tree(
        sp_entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        name_id="alice@example.com",
        now=NOW,
        in_response_to=REQUEST_ID,
    )
    assertion = response.find(f"{{{SAML}}}Assertion")
    assertion.append(etree.fromstring(statement_xml))
    idp.sign(assertion)
    return etree.tostring(response)


_STATEMENT = (
    b'<saml:AttributeStatement xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
    b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">%s</saml:AttributeStatement>'
)


def test_attributes_repeated_by_name_are_merged_and_nil_values_skipped(
    idp: TestIdentityProvider, validate: Validate
) -> None:
    body = (
        b'<saml:Attribute Name="groups"><saml:AttributeValue>a</saml:AttributeValue>'
        b'<saml:AttributeValue xsi:nil="true"/></saml:Attribute>'
        b'<saml:Attribute Name="groups"><saml:AttributeValue>b<!-- x -->c</saml:AttributeValue>'
        b"<saml:AttributeValue/></saml:Attribute>"
        b'<saml:Attribute Name="address"><saml:AttributeValue><street>Main</street>'
        b"<city>Tokyo</city></saml:AttributeValue></saml:Attribute>"
    )
    login = validate(_with_attribute_statement(idp, _STATEMENT % body))
    assert dict(login.attributes) == {"groups": ("a", "bc", ""), "address": ("MainTokyo",)}


@pytest.mark.parametrize(
    "body",
    [
        b"<saml:Attribute><saml:AttributeValue>a</saml:AttributeValue></saml:Attribute>",
        b"<saml:AttributeValue>orphan</saml:AttributeValue>",
    ],
    ids=["no-name", "orphan-value"],
)
def test_malformed_attribute_statements_are_refused(
    idp: TestIdentityProvider, validate: Validate, body: bytes
) -> None:
    assert code_of(validate, _with_attribute_statement(idp, _STATEMENT % body)) == "saml.malformed"


def test_with_both_signed_the_assertion_signature_must_still_use_allowed_algorithms(
    idp: TestIdentityProvider, validate: Validate
) -> None:
    from nulabpass.saml.testing import sign_element

    response = idp.response_tree(
        sp_entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        name_id="alice@example.com",
        now=NOW,
        in_response_to=REQUEST_ID,
    )
    sign_element(
        response.find(f"{{{SAML}}}Assertion"),
        idp.keys.key_pem,
        signature_method=xmlsec.Transform.RSA_SHA1,
        digest_method=xmlsec.Transform.SHA1,
    )
    idp.sign(response)
    assert code_of(validate, etree.tostring(response)) == "saml.algorithm_refused"


def test_an_attribute_nested_in_a_value_is_only_text_of_that_value(
    idp: TestIdentityProvider, validate: Validate
) -> None:
    body = (
        b'<saml:Attribute Name="a"><saml:AttributeValue><saml:Attribute Name="role">'
        b"<saml:AttributeValue>admin</saml:AttributeValue></saml:Attribute>"
        b"</saml:AttributeValue></saml:Attribute>"
    )
    login = validate(_with_attribute_statement(idp, _STATEMENT % body))
    assert dict(login.attributes) == {"a": ("admin",)}


def test_a_custom_condition_that_cannot_be_evaluated_is_refused(
    idp: TestIdentityProvider, validate: Validate
) -> None:
    response = idp.response_tree(
        sp_entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        name_id="alice@example.com",
        now=NOW,
        in_response_to=REQUEST_ID,
    )
    conditions = response.find(f".//{{{SAML}}}Conditions")
    etree.SubElement(conditions, f"{{{SAML}}}Condition")
    idp.sign(response.find(f"{{{SAML}}}Assertion"))
    assert code_of(validate, etree.tostring(response)) == "saml.malformed"


def test_an_ecdsa_sha256_signature_from_an_ec_certificate_is_accepted(
    policy: SamlPolicy,
) -> None:
    from nulabpass.saml.testing import make_key_pair, sign_element

    ec_idp = TestIdentityProvider(keys=make_key_pair("ec idp", elliptic=True))
    response = ec_idp.response_tree(
        sp_entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        name_id="alice@example.com",
        now=NOW,
        in_response_to=REQUEST_ID,
    )
    sign_element(
        response.find(f"{{{SAML}}}Assertion"),
        ec_idp.keys.key_pem,
        signature_method=xmlsec.Transform.ECDSA_SHA256,
    )
    validator = SamlValidator(ec_idp.config(), policy)
    login = validator.validate(etree.tostring(response), now=NOW, request_id=REQUEST_ID)
    assert login.name_id == "alice@example.com"
