"""certificate_findings: which certificates the health view reports, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nulabpass._saml_health import CertificateKind, certificate_findings
from nulabpass.ports import SamlSpKey
from nulabpass.saml.testing import make_key_pair

# make_key_pair certificates are valid from 2020-01-01 for 7300 days (to 2039-12-27).
PAIR = make_key_pair("health")
NOT_AFTER = datetime(2039, 12, 27, tzinfo=UTC)


def test_a_certificate_is_reported_from_the_start_of_the_window() -> None:
    inside = NOT_AFTER - timedelta(days=29)
    outside = NOT_AFTER - timedelta(days=31)
    assert certificate_findings("o", [PAIR.cert_der], [], now=outside, within=timedelta(30)) == []
    [found] = certificate_findings("o", [PAIR.cert_der], [], now=inside, within=timedelta(30))
    assert found.kind is CertificateKind.IDP_SIGNING
    assert not found.expired
    assert found.expires_in == NOT_AFTER - inside


def test_expired_certificates_are_always_reported() -> None:
    later = NOT_AFTER + timedelta(days=365)
    [found] = certificate_findings("o", [PAIR.cert_der], [], now=later, within=timedelta(0))
    assert found.expired
    assert found.expires_in < timedelta(0)


def test_sp_certificates_are_read_from_pem_and_keep_their_key_id() -> None:
    key = SamlSpKey(
        key_id="sha256:abc", private_key_pem=PAIR.key_pem, certificate_pem=PAIR.cert_pem
    )
    [found] = certificate_findings("o", [], [key], now=NOT_AFTER, within=timedelta(0))
    assert (found.kind, found.key_id) == (CertificateKind.SP, "sha256:abc")
    [idp] = certificate_findings("o", [PAIR.cert_der], [], now=NOT_AFTER, within=timedelta(0))
    assert found.sha256 == idp.sha256


def test_an_unreadable_certificate_counts_as_expired() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    [found] = certificate_findings("o", [b"\x30\x01"], [], now=now, within=timedelta(30))
    assert found.expired
    assert found.subject == "(unreadable certificate)"
