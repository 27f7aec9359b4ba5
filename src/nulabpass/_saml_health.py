"""Certificate health: which SAML certificates expire soon or have expired.

An organization's sign-in depends on two kinds of certificates: the IdP's signing
certificates (in its configuration; an expired one usually means the IdP rotated and
the metadata must follow) and this service provider's certificates (from the
:class:`~nulabpass.ports.KeyProvider`; the IdP checks AuthnRequest signatures and
encrypts assertions with them). :func:`certificate_findings` reads both and keeps those
whose ``notAfter`` falls within the window; the facade lists them per organization and,
for operators, across the host.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from nulabpass._runtime import Runtime
from nulabpass._saml_model import SamlConfiguration
from nulabpass.errors import InvalidInput, NotFound
from nulabpass.ports import SamlSpKey

__all__ = [
    "DEFAULT_WINDOW",
    "CertificateHealth",
    "CertificateKind",
    "SamlHealthService",
    "certificate_findings",
]

#: Certificates expiring within this window are reported unless the caller says otherwise.
DEFAULT_WINDOW = timedelta(days=30)
_PAGE = 200


class CertificateKind(enum.StrEnum):
    """Whose certificate it is."""

    IDP_SIGNING = "idp_signing"
    SP = "sp"


@attrs.frozen(slots=True)
class CertificateHealth:
    """One certificate that expires within the window, or has expired.

    ``sha256`` is the fingerprint of the DER certificate (hex); ``key_id`` names the SP
    key (``None`` for IdP certificates); ``expires_in`` is negative once expired.
    """

    org_id: str
    kind: CertificateKind
    sha256: str
    subject: str
    not_after: datetime
    expired: bool
    expires_in: timedelta
    key_id: str | None = None


def _finding(
    org_id: str,
    kind: CertificateKind,
    cert: x509.Certificate,
    der: bytes,
    now: datetime,
    key_id: str | None,
) -> CertificateHealth:
    not_after = cert.not_valid_after_utc.astimezone(UTC)
    return CertificateHealth(
        org_id=org_id,
        kind=kind,
        sha256=hashlib.sha256(der).hexdigest(),
        subject=cert.subject.rfc4514_string(),
        not_after=not_after,
        expired=not_after <= now,
        expires_in=not_after - now,
        key_id=key_id,
    )


def certificate_findings(
    org_id: str,
    idp_certificates: Iterable[bytes],
    sp_keys: Iterable[SamlSpKey],
    *,
    now: datetime,
    within: timedelta,
) -> list[CertificateHealth]:
    """Certificates of one organization with ``notAfter <= now + within``, soonest
    first (pure). IDP certificates are DER; SP certificates PEM. A certificate that
    cannot be read is reported as expired at ``now``: it cannot be relied on either."""
    found: list[CertificateHealth] = []
    limit = now + within
    entries: list[tuple[CertificateKind, bytes, bool, str | None]] = [
        (CertificateKind.IDP_SIGNING, der, False, None) for der in idp_certificates
    ]
    entries.extend((CertificateKind.SP, key.certificate_pem, True, key.key_id) for key in sp_keys)
    for kind, raw, pem, key_id in entries:
        try:
            cert = (
                x509.load_pem_x509_certificate(raw) if pem else x509.load_der_x509_certificate(raw)
            )
        except ValueError:
            found.append(
                CertificateHealth(
                    org_id=org_id,
                    kind=kind,
                    sha256=hashlib.sha256(raw).hexdigest(),
                    subject="(unreadable certificate)",
                    not_after=now,
                    expired=True,
                    expires_in=timedelta(0),
                    key_id=key_id,
                )
            )
            continue
        der = cert.public_bytes(Encoding.DER) if pem else raw
        finding = _finding(org_id, kind, cert, der, now, key_id)
        if finding.not_after <= limit:
            found.append(finding)
    found.sort(key=lambda f: (f.not_after, f.kind.value, f.sha256))
    return found


def _check_window(within: timedelta) -> None:
    if not isinstance(within, timedelta) or within < timedelta(0):
        raise InvalidInput(
            "within must be a non-negative timedelta.", code="saml.health_window_invalid"
        )


class SamlHealthService:
    """Certificate health views (``np.saml`` delegates here)."""

    def __init__(self, rt: Runtime, sp_keys: Callable[[str], Sequence[SamlSpKey]]) -> None:
        self._rt = rt
        self._sp_keys = sp_keys

    def for_org(self, org_id: str, *, within: timedelta) -> list[CertificateHealth]:
        """See :meth:`nulabpass._saml_service.SamlAPI.certificate_health`."""
        _check_window(within)
        with self._rt.store.transaction() as uow:
            if uow.organizations.get(org_id) is None:
                raise NotFound(
                    f"There is no organization {org_id!r}.", code="organization.not_found"
                )
            config = uow.saml.get_config(org_id)
        now = self._rt.now()
        certificates = config.signing_certificates if config is not None else ()
        return certificate_findings(
            org_id, certificates, self._sp_keys(org_id), now=now, within=within
        )

    def host_wide(self, *, within: timedelta) -> list[CertificateHealth]:
        """See :meth:`nulabpass._saml_service.SamlAPI.expiring_certificates`."""
        _check_window(within)
        now = self._rt.now()
        found: list[CertificateHealth] = []
        after: str | None = None
        while True:
            # One short transaction per page: a host with many organizations is read in
            # pages, never held open or loaded whole.
            with self._rt.store.transaction() as uow:
                page: list[SamlConfiguration] = uow.saml_metadata.configurations(after, _PAGE)
            for config in page:
                found.extend(
                    certificate_findings(
                        config.org_id,
                        config.signing_certificates,
                        self._sp_keys(config.org_id),
                        now=now,
                        within=within,
                    )
                )
            if len(page) < _PAGE:
                break
            after = page[-1].org_id
        found.sort(key=lambda f: (f.not_after, f.org_id, f.kind.value, f.sha256))
        return found
