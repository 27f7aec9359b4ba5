"""SP keys from the KeyProvider port, on every store: signed AuthnRequests (both
bindings), encrypted assertions, SP metadata publishing the certificates, per-organization
keys and rotation; and what happens without a key."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from nulabpass import NulabPass
from nulabpass.audit._model import AuditQuery, Outcome
from nulabpass.errors import ConfigurationError, InvalidInput
from nulabpass.ports import SamlSpKey, Store
from nulabpass.saml import BINDING_POST, SamlValidationError, sp_key
from nulabpass.saml._xmlsec import xmlsec
from nulabpass.saml.testing import TestIdentityProvider, make_key_pair
from nulabpass.testing import (
    FakeBillingProvider,
    FrozenClock,
    MemoryKeyProvider,
    RecordingMailer,
    make_nulabpass,
)

from .conftest import World

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


@pytest.fixture(scope="module")
def idp() -> TestIdentityProvider:
    return TestIdentityProvider()


@pytest.fixture(scope="module")
def host_key() -> SamlSpKey:
    pair = make_key_pair("host sp")
    return sp_key(pair.key_pem, pair.cert_pem)


@pytest.fixture
def host_keys(host_key: SamlSpKey) -> MemoryKeyProvider:
    provider = MemoryKeyProvider()
    provider.add_saml_key(key=host_key)
    return provider


@pytest.fixture
def keyed(
    store: Store,
    clock: FrozenClock,
    mailer: RecordingMailer,
    billing: FakeBillingProvider,
    host_keys: MemoryKeyProvider,
) -> NulabPass:
    return make_nulabpass(store, clock=clock, mailer=mailer, billing=billing, keys=host_keys)


@pytest.fixture
def kworld(keyed: NulabPass, mailer: RecordingMailer, idp: TestIdentityProvider) -> World:
    world = World(keyed, mailer)
    keyed.saml.configure(
        world.admin, world.org.id, metadata_xml=idp.metadata(), allow_idp_initiated=True
    )
    return world


def _encrypted_response(
    np: NulabPass, world: World, idp: TestIdentityProvider, cert_pem: bytes, **options: object
) -> str:
    xml = idp.response(
        sp_entity_id=np.saml.sp_entity_id(world.org.id),
        acs_url=np.saml.acs_url(world.org.id),
        name_id="ann@example.com",
        now=np.clock.now(),
        encrypt_for=cert_pem,
        **options,
    )
    return TestIdentityProvider.post_value(xml)


def _metadata_certs(xml: bytes) -> dict[str, list[bytes]]:
    root = etree.fromstring(xml)
    found: dict[str, list[bytes]] = {}
    for descriptor in root.iter(f"{{{MD}}}KeyDescriptor"):
        cert = descriptor.find(f".//{{{DS}}}X509Certificate")
        assert cert is not None
        assert cert.text
        found.setdefault(descriptor.get("use", ""), []).append(base64.b64decode(cert.text))
    return found


def _der(key: SamlSpKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(key.certificate_pem).public_bytes(Encoding.DER)


def _verify_redirect(url: str, key: SamlSpKey) -> dict[str, str]:
    """Check the HTTP-Redirect signature over the raw query as the binding defines it."""
    raw = urlsplit(url).query
    signed, _, signature = raw.rpartition("&Signature=")
    public = x509.load_pem_x509_certificate(key.certificate_pem).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(
        base64.b64decode(unquote(signature)),
        signed.encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    return {k: v[0] for k, v in parse_qs(raw).items()}


# -- metadata ------------------------------------------------------------------------------


def test_sp_metadata_publishes_the_key_for_signing_and_encryption(
    keyed: NulabPass, kworld: World, host_key: SamlSpKey
) -> None:
    xml = keyed.saml.sp_metadata(kworld.org.id)
    assert _metadata_certs(xml) == {"signing": [_der(host_key)], "encryption": [_der(host_key)]}
    root = etree.fromstring(xml)
    descriptor = root.find(f"{{{MD}}}SPSSODescriptor")
    assert descriptor is not None
    assert descriptor.get("AuthnRequestsSigned") == "true"
    methods = [m.get("Algorithm") for m in root.iter(f"{{{MD}}}EncryptionMethod")]
    assert methods[0] == "http://www.w3.org/2009/xmlenc11#aes256-gcm"
    assert not [m for m in methods if m and ("rsa-1_5" in m or "tripledes" in m)]


def test_without_a_key_the_metadata_has_no_certificate_and_requests_are_unsigned(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    np.saml.configure(world.admin, world.org.id, metadata_xml=idp.metadata())
    assert np.saml.sp_keys(world.org.id) == ()
    xml = np.saml.sp_metadata(world.org.id)
    assert _metadata_certs(xml) == {}
    assert b'AuthnRequestsSigned="false"' in xml
    redirect = np.saml.begin_login(world.org.id)
    assert "Signature=" not in redirect.url
    assert "SigAlg=" not in redirect.url


# -- signed AuthnRequests ------------------------------------------------------------------


def test_redirect_requests_are_signed_with_the_sp_key(
    keyed: NulabPass, kworld: World, host_key: SamlSpKey
) -> None:
    redirect = keyed.saml.begin_login(kworld.org.id, relay_state="/projects/7")
    query = _verify_redirect(redirect.url, host_key)
    assert query["SigAlg"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert query["RelayState"] == "/projects/7"
    # The signature covers RelayState: changing it breaks the signature.
    tampered = redirect.url.replace("%2Fprojects%2F7", "%2Fadmin")
    with pytest.raises(InvalidSignature):
        _verify_redirect(tampered, host_key)


def test_post_requests_carry_an_enveloped_signature_by_the_sp_key(
    keyed: NulabPass, kworld: World, host_key: SamlSpKey
) -> None:
    redirect = keyed.saml.begin_login(kworld.org.id, binding=BINDING_POST)
    root = etree.fromstring(base64.b64decode(redirect.form["SAMLRequest"]))
    signature = root.find(f"{{{DS}}}Signature")
    assert signature is not None
    ctx = xmlsec.SignatureContext()
    ctx.register_id(root, "ID")
    ctx.key = xmlsec.Key.from_memory(host_key.certificate_pem, xmlsec.KeyFormat.CERT_PEM, None)
    ctx.verify(signature)
    reference = signature.find(f".//{{{DS}}}Reference")
    assert reference is not None
    assert reference.get("URI") == "#" + redirect.request_id


def test_an_idp_that_wants_signed_requests_needs_an_sp_key(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    np.saml.configure(
        world.admin,
        world.org.id,
        entity_id=idp.entity_id,
        signing_certificates=[idp.keys.cert_pem],
        sso_redirect_url=idp.sso_url,
        want_authn_requests_signed=True,
    )
    with pytest.raises(InvalidInput) as err:
        np.saml.begin_login(world.org.id)
    assert err.value.code == "saml.sp_key_required"
    with np.store.transaction() as uow:
        (event,) = uow.audit.query(
            AuditQuery(scope=world.org.id, actions=("saml.login_started",), limit=10)
        )
    assert event.outcome is Outcome.FAILURE
    assert event.metadata.get("error_code") == "saml.sp_key_required"


# -- encrypted assertions ------------------------------------------------------------------


def test_an_encrypted_assertion_signs_in(
    keyed: NulabPass, kworld: World, idp: TestIdentityProvider, host_key: SamlSpKey
) -> None:
    account_id = kworld.managed("ann")
    value = _encrypted_response(keyed, kworld, idp, host_key.certificate_pem)
    result = keyed.saml.complete_login(kworld.org.id, value)
    assert result.account_id == account_id
    assert result.name_id == "ann@example.com"


def test_an_encrypted_assertion_inside_a_signed_response_signs_in_sp_initiated(
    keyed: NulabPass, kworld: World, idp: TestIdentityProvider, host_key: SamlSpKey
) -> None:
    kworld.managed("ann")
    redirect = keyed.saml.begin_login(kworld.org.id)
    value = _encrypted_response(
        keyed,
        kworld,
        idp,
        host_key.certificate_pem,
        sign_response=True,
        in_response_to=redirect.request_id,
    )
    result = keyed.saml.complete_login(kworld.org.id, value, state=redirect.state)
    assert result.name_id == "ann@example.com"


def test_without_a_key_an_encrypted_assertion_is_refused_and_audited(
    np: NulabPass, world: World, idp: TestIdentityProvider, host_key: SamlSpKey
) -> None:
    np.saml.configure(
        world.admin, world.org.id, metadata_xml=idp.metadata(), allow_idp_initiated=True
    )
    world.managed("ann")
    value = _encrypted_response(np, world, idp, host_key.certificate_pem)
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, value)
    assert err.value.code == "saml.decryption_failed"
    assert world.events("saml.login_failed") == ["saml.login_failed"]
    assert world.events("saml.login_succeeded") == []


def test_an_assertion_encrypted_for_another_key_is_refused(
    keyed: NulabPass, kworld: World, idp: TestIdentityProvider
) -> None:
    kworld.managed("ann")
    stranger = make_key_pair("someone else")
    value = _encrypted_response(keyed, kworld, idp, stranger.cert_pem)
    with pytest.raises(SamlValidationError) as err:
        keyed.saml.complete_login(kworld.org.id, value)
    assert err.value.code == "saml.decryption_failed"
    assert kworld.events("saml.login_succeeded") == []


# -- rotation and per-organization keys ------------------------------------------------------


def test_rotation_publishes_both_keys_and_both_decrypt_until_the_old_one_retires(
    keyed: NulabPass,
    kworld: World,
    idp: TestIdentityProvider,
    host_keys: MemoryKeyProvider,
    host_key: SamlSpKey,
) -> None:
    kworld.managed("ann")
    nxt = host_keys.add_saml_key()
    assert [k.key_id for k in keyed.saml.sp_keys(kworld.org.id)] == [host_key.key_id, nxt.key_id]
    certs = _metadata_certs(keyed.saml.sp_metadata(kworld.org.id))
    assert certs["signing"] == certs["encryption"] == [_der(host_key), _der(nxt)]
    # Requests are still signed with the key in use; both keys decrypt.
    _verify_redirect(keyed.saml.begin_login(kworld.org.id).url, host_key)
    for key in (host_key, nxt):
        value = _encrypted_response(keyed, kworld, idp, key.certificate_pem)
        assert keyed.saml.complete_login(kworld.org.id, value).name_id == "ann@example.com"

    host_keys.retire_saml_key(host_key.key_id)
    _verify_redirect(keyed.saml.begin_login(kworld.org.id).url, nxt)
    assert _metadata_certs(keyed.saml.sp_metadata(kworld.org.id))["signing"] == [_der(nxt)]
    stale = _encrypted_response(keyed, kworld, idp, host_key.certificate_pem)
    with pytest.raises(SamlValidationError) as err:
        keyed.saml.complete_login(kworld.org.id, stale)
    assert err.value.code == "saml.decryption_failed"


def test_an_organizations_own_key_replaces_the_host_key_for_it_alone(
    keyed: NulabPass,
    kworld: World,
    idp: TestIdentityProvider,
    host_keys: MemoryKeyProvider,
    host_key: SamlSpKey,
) -> None:
    kworld.managed("ann")
    other = keyed.orgs.create(kworld.admin, "Other")
    own = host_keys.add_saml_key(kworld.org.id)
    assert keyed.saml.sp_keys(kworld.org.id) == (own,)
    assert keyed.saml.sp_keys(other.id) == (host_key,)
    _verify_redirect(keyed.saml.begin_login(kworld.org.id).url, own)
    assert _metadata_certs(keyed.saml.sp_metadata(other.id))["signing"] == [_der(host_key)]
    for_host = _encrypted_response(keyed, kworld, idp, host_key.certificate_pem)
    with pytest.raises(SamlValidationError) as err:
        keyed.saml.complete_login(kworld.org.id, for_host)
    assert err.value.code == "saml.decryption_failed"
    for_own = _encrypted_response(keyed, kworld, idp, own.certificate_pem)
    assert keyed.saml.complete_login(kworld.org.id, for_own).name_id == "ann@example.com"


# -- checking key pairs --------------------------------------------------------------------


def test_sp_key_accepts_a_matching_rsa_pair_and_derives_its_id() -> None:
    pair = make_key_pair("ok")
    key = sp_key(pair.key_pem, pair.cert_pem)
    assert key.key_id.startswith("sha256:")
    assert len(key.key_id) == len("sha256:") + 16
    assert key.certificate_pem == pair.cert_pem
    assert "private_key_pem" not in repr(key)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("elliptic", "RSA key"),
        ("short", "at least 2048"),
        ("mismatch", "does not belong"),
        ("not_a_key", "PEM private key"),
        ("not_a_cert", "X.509 certificate"),
    ],
)
def test_sp_key_refuses_what_would_fail_at_the_idp(case: str, expected: str) -> None:
    good = make_key_pair("good")
    if case == "elliptic":
        ec = make_key_pair("ec", elliptic=True)
        args = (ec.key_pem, ec.cert_pem)
    elif case == "short":
        short = make_key_pair("short", key_size=1024)
        args = (short.key_pem, short.cert_pem)
    elif case == "mismatch":
        args = (good.key_pem, make_key_pair("other").cert_pem)
    elif case == "not_a_key":
        args = (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", good.cert_pem)
    else:
        args = (good.key_pem, b"not a certificate")
    with pytest.raises(ConfigurationError) as err:
        sp_key(*args)
    assert err.value.code == "saml.sp_key_invalid"
    assert expected in err.value.message
