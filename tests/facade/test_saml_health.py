"""The certificate health view, on every store: the IdP signing certificates and the SP
certificates of an organization that expire within the window or have expired, and the
host-wide listing for operators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from nulabpass import NulabPass
from nulabpass._saml_health import CertificateKind
from nulabpass.errors import InvalidInput, NotFound
from nulabpass.ports import SamlSpKey
from nulabpass.saml import sp_key
from nulabpass.testing import (
    MemoryKeyProvider,
)

from .conftest import World

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _pair(name: str, not_after: datetime) -> tuple[bytes, bytes]:
    """An RSA key and a self-signed certificate valid until ``not_after`` (PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def soon() -> tuple[bytes, bytes]:
    return _pair("idp soon", NOW + timedelta(days=10))


@pytest.fixture(scope="module")
def later() -> tuple[bytes, bytes]:
    return _pair("idp later", NOW + timedelta(days=400))


@pytest.fixture(scope="module")
def expired_sp() -> SamlSpKey:
    return sp_key(*_pair("sp expired", NOW - timedelta(days=2)))


@pytest.fixture(scope="module")
def fresh_sp() -> SamlSpKey:
    return sp_key(*_pair("sp fresh", NOW + timedelta(days=300)))


def _configure(np: NulabPass, world: World, *certificates: bytes) -> None:
    np.saml.configure(
        world.admin,
        world.org.id,
        entity_id="https://idp.example.test/saml",
        signing_certificates=list(certificates),
        sso_redirect_url="https://idp.example.test/sso",
    )


def test_idp_and_sp_certificates_expiring_within_the_window_are_listed(
    np: NulabPass,
    world: World,
    keys: MemoryKeyProvider,
    soon: tuple[bytes, bytes],
    later: tuple[bytes, bytes],
    expired_sp: SamlSpKey,
    fresh_sp: SamlSpKey,
) -> None:
    _configure(np, world, later[1], soon[1])
    keys.add_saml_key(world.org.id, key=expired_sp)
    keys.add_saml_key(world.org.id, key=fresh_sp)
    findings = np.saml.certificate_health(world.org.id)
    assert [(f.kind, f.expired) for f in findings] == [
        (CertificateKind.SP, True),
        (CertificateKind.IDP_SIGNING, False),
    ]
    sp, idp = findings
    assert sp.key_id == expired_sp.key_id
    assert sp.expires_in == timedelta(days=-2)
    assert sp.subject == "CN=sp expired"
    assert idp.not_after == NOW + timedelta(days=10)
    assert idp.key_id is None
    assert len(idp.sha256) == 64
    # A wider window reaches the later certificates too; a zero window only the expired.
    assert len(np.saml.certificate_health(world.org.id, within=timedelta(days=500))) == 4
    assert [f.kind for f in np.saml.certificate_health(world.org.id, within=timedelta(0))] == [
        CertificateKind.SP
    ]


def test_an_organization_without_saml_or_keys_has_nothing_to_report(
    np: NulabPass, world: World
) -> None:
    assert np.saml.certificate_health(world.org.id) == []


def test_host_wide_keys_count_for_every_organization(
    np: NulabPass,
    world: World,
    keys: MemoryKeyProvider,
    soon: tuple[bytes, bytes],
    later: tuple[bytes, bytes],
    expired_sp: SamlSpKey,
) -> None:
    _configure(np, world, soon[1])
    other = np.orgs.create(world.admin, "Globex")
    np.plans.start_trial(world.admin, other.id)
    np.saml.configure(
        world.admin,
        other.id,
        entity_id="https://idp.globex.test/saml",
        signing_certificates=[later[1]],
        sso_post_url="https://idp.globex.test/sso",
    )
    keys.add_saml_key(None, key=expired_sp)
    findings = np.saml.expiring_certificates()
    assert sorted((f.org_id, f.kind.value) for f in findings) == sorted(
        [
            (world.org.id, "sp"),
            (world.org.id, "idp_signing"),
            (other.id, "sp"),
        ]
    )
    assert findings[0].expired
    assert [f.not_after for f in findings] == sorted(f.not_after for f in findings)


def test_the_view_refuses_a_negative_window_and_unknown_organizations(
    np: NulabPass, world: World
) -> None:
    with pytest.raises(InvalidInput) as err:
        np.saml.certificate_health(world.org.id, within=timedelta(days=-1))
    assert err.value.code == "saml.health_window_invalid"
    with pytest.raises(InvalidInput):
        np.saml.expiring_certificates(within=timedelta(days=-1))
    with pytest.raises(NotFound) as missing:
        np.saml.certificate_health("org_nope")
    assert missing.value.code == "organization.not_found"
