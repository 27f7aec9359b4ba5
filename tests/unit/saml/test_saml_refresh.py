"""The pure parts of metadata refresh: the signature check of a metadata document,
the classification of a fetched document against the configuration in force, and the
backoff after failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from lxml import etree

from nulabpass._saml_metadata_model import SamlMetadataSource
from nulabpass._saml_model import SamlConfiguration
from nulabpass._saml_refresh import RefreshOutcome, classify, retry_delay
from nulabpass.errors import InvalidInput
from nulabpass.saml import SamlValidationError, verify_metadata_signature
from nulabpass.saml._xml import MD
from nulabpass.saml._xmlsec import xmlsec
from nulabpass.saml.testing import TestIdentityProvider, TestKeyPair, make_key_pair, sign_element

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ENTITY = "https://idp.example.test/saml/metadata"


@pytest.fixture(scope="module")
def old() -> TestKeyPair:
    return make_key_pair("old")


@pytest.fixture(scope="module")
def new() -> TestKeyPair:
    return make_key_pair("new")


def _xml(
    keys: TestKeyPair, *, sso: str = "https://idp.example.test/sso", entity: str = ENTITY
) -> bytes:
    return TestIdentityProvider(entity_id=entity, sso_url=sso, keys=keys).metadata()


def _signed(xml: bytes, key_pem: bytes, **options: object) -> bytes:
    root = etree.fromstring(xml)
    root.set("ID", "_md1")
    sign_element(root, key_pem, **options)  # type: ignore[arg-type]
    signed: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return signed


def _code(data: bytes, trusted: tuple[bytes, ...]) -> str:
    with pytest.raises(SamlValidationError) as err:
        verify_metadata_signature(data, trusted)
    return err.value.code


# -- the signature of a metadata document -------------------------------------------------


def test_a_document_signed_by_a_trusted_certificate_verifies(old: TestKeyPair) -> None:
    verify_metadata_signature(_signed(_xml(old), old.key_pem), (old.cert_der,))


def test_any_of_several_trusted_certificates_may_have_signed(
    old: TestKeyPair, new: TestKeyPair
) -> None:
    verify_metadata_signature(_signed(_xml(new), old.key_pem), (new.cert_der, old.cert_der))


def test_an_unsigned_document_is_reported_as_unsigned(old: TestKeyPair) -> None:
    assert _code(_xml(old), (old.cert_der,)) == "saml.metadata_unsigned"


def test_a_signature_by_an_untrusted_key_is_refused(old: TestKeyPair, new: TestKeyPair) -> None:
    assert _code(_signed(_xml(new), new.key_pem), (old.cert_der,)) == "saml.signature_invalid"


def test_a_document_altered_after_signing_is_refused(old: TestKeyPair) -> None:
    signed = _signed(_xml(old), old.key_pem)
    altered = signed.replace(b"https://idp.example.test/sso", b"https://evil.example.test/sso")
    assert altered != signed
    assert _code(altered, (old.cert_der,)) == "saml.signature_invalid"


def test_sha1_signatures_are_refused(old: TestKeyPair) -> None:
    signed = _signed(
        _xml(old),
        old.key_pem,
        signature_method=xmlsec.Transform.RSA_SHA1,
        digest_method=xmlsec.Transform.SHA1,
    )
    assert _code(signed, (old.cert_der,)) == "saml.algorithm_refused"


def test_a_signed_root_needs_an_id_that_is_unique(old: TestKeyPair) -> None:
    root = etree.fromstring(_signed(_xml(old), old.key_pem))
    del root.attrib["ID"]
    assert _code(etree.tostring(root), (old.cert_der,)) == "saml.reference_invalid"
    root = etree.fromstring(_signed(_xml(old), old.key_pem))
    root[-1].set("ID", "_md1")
    assert _code(etree.tostring(root), (old.cert_der,)) == "saml.duplicate_id"


def test_a_signed_entity_wrapped_in_an_unsigned_list_is_unsigned(
    old: TestKeyPair, new: TestKeyPair
) -> None:
    """Signature wrapping: the signed entity moved inside an unsigned EntitiesDescriptor
    next to an attacker's entity does not count as a signed document."""
    wrapper = etree.Element(f"{{{MD}}}EntitiesDescriptor", nsmap={"md": MD})
    wrapper.append(etree.fromstring(_signed(_xml(old), old.key_pem)))
    wrapper.append(etree.fromstring(_xml(new, entity="https://evil.test/")))
    assert _code(etree.tostring(wrapper), (old.cert_der,)) == "saml.metadata_unsigned"


def test_documents_with_a_doctype_are_refused(old: TestKeyPair) -> None:
    signed = _signed(_xml(old), old.key_pem)
    body = signed.split(b"?>", 1)[1]
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]>' + body
    assert _code(evil, (old.cert_der,)) == "saml.malformed"


def test_without_trusted_certificates_nothing_verifies(old: TestKeyPair) -> None:
    assert _code(_signed(_xml(old), old.key_pem), ()) == "saml.signature_invalid"


# -- classification -----------------------------------------------------------------------


def _config(keys: TestKeyPair) -> SamlConfiguration:
    return SamlConfiguration(
        org_id="org-a",
        idp_entity_id=ENTITY,
        signing_certificates=(keys.cert_der,),
        sso_redirect_url="https://idp.example.test/sso",
        sso_post_url="https://idp.example.test/sso",
        want_authn_requests_signed=False,
        allow_idp_initiated=False,
        configured_at=NOW,
        updated_at=NOW,
    )


SOURCE = SamlMetadataSource(
    org_id="org-a",
    url="https://idp.example.test/metadata",
    refresh_interval=timedelta(hours=24),
    next_refresh_at=NOW,
    created_at=NOW,
    updated_at=NOW,
)


def test_the_document_in_force_is_unchanged(old: TestKeyPair) -> None:
    decision = classify(_xml(old), _config(old), SOURCE, NOW)
    assert decision.outcome is RefreshOutcome.UNCHANGED


def test_new_endpoints_alone_update_without_a_signature(old: TestKeyPair) -> None:
    decision = classify(_xml(old, sso="https://idp.example.test/v2"), _config(old), SOURCE, NOW)
    assert decision.outcome is RefreshOutcome.UPDATED
    assert (decision.certificates_changed, decision.signed) == (False, False)


def test_new_certificates_update_only_with_a_trusted_signature(
    old: TestKeyPair, new: TestKeyPair
) -> None:
    unsigned = classify(_xml(new), _config(old), SOURCE, NOW)
    assert unsigned.outcome is RefreshOutcome.PENDING
    assert unsigned.reason == "saml.metadata_unsigned"
    signed = classify(_signed(_xml(new), old.key_pem), _config(old), SOURCE, NOW)
    assert signed.outcome is RefreshOutcome.UPDATED
    assert (signed.certificates_changed, signed.signed) == (True, True)


def test_a_new_entity_id_is_a_change_of_trust(old: TestKeyPair) -> None:
    decision = classify(_xml(old, entity="https://other.test/"), _config(old), SOURCE, NOW)
    assert decision.outcome is RefreshOutcome.PENDING


def test_a_document_already_pending_or_rejected_is_nothing_new(
    old: TestKeyPair, new: TestKeyPair
) -> None:
    data = _xml(new)
    digest = classify(data, _config(old), SOURCE, NOW).sha256
    for source in (
        attrs.evolve(SOURCE, pending_sha256=digest),
        attrs.evolve(SOURCE, rejected_sha256=digest),
    ):
        assert classify(data, _config(old), source, NOW).outcome is RefreshOutcome.UNCHANGED


def test_an_invalid_document_raises(old: TestKeyPair) -> None:
    with pytest.raises(InvalidInput) as err:
        classify(b"<html/>", _config(old), SOURCE, NOW)
    assert err.value.code == "saml.metadata_invalid"


# -- backoff ------------------------------------------------------------------------------


def test_retries_back_off_by_doubling_up_to_the_interval() -> None:
    day = timedelta(hours=24)
    delays = [retry_delay(n, day) for n in range(1, 9)]
    assert delays[:4] == [timedelta(minutes=m) for m in (15, 30, 60, 120)]
    assert delays[-1] == day
    assert retry_delay(1000, day) == day
    assert retry_delay(1, timedelta(hours=1)) == timedelta(minutes=15)
