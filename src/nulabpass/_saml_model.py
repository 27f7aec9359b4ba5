"""Stored SAML sign-in state of an organization: its IdP configuration and the
AuthnRequests it has issued and not yet seen answered."""

from __future__ import annotations

from datetime import datetime

import attrs

__all__ = ["PendingLogin", "SamlConfiguration"]


@attrs.frozen(slots=True)
class SamlConfiguration:
    """An organization's identity provider, as validated when an admin configured it.

    ``signing_certificates`` are DER; several are kept during the IdP's key rollover.
    """

    org_id: str
    idp_entity_id: str
    signing_certificates: tuple[bytes, ...]
    sso_redirect_url: str | None
    sso_post_url: str | None
    want_authn_requests_signed: bool
    allow_idp_initiated: bool
    configured_at: datetime
    updated_at: datetime
    version: int = 1


@attrs.frozen(slots=True)
class PendingLogin:
    """An AuthnRequest sent to the IdP, keyed by a hash of the browser's state value.

    Only the hash is stored: a reader of the database cannot complete someone's login.
    """

    state_hash: str
    org_id: str
    request_id: str
    relay_state: str | None
    expires_at: datetime
