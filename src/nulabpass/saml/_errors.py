"""The one error the SAML core raises for untrusted input."""

from __future__ import annotations

from collections.abc import Mapping

from nulabpass.errors import NulabPassError

__all__ = ["SamlValidationError"]


class SamlValidationError(NulabPassError):
    """A SAML message was rejected.

    ``code`` is stable (``saml.signature_invalid``, ``saml.audience_mismatch``,
    ``saml.expired``, ...; docs/saml-troubleshooting.md lists them all), ``message`` tells
    the IT admin what to fix (the expected and the received value, or how far the clocks
    differ) and ``public_message`` is the same generic sentence for every rejection, so a
    browser learns nothing an attacker could use.
    """

    default_code = "saml.invalid"
    default_public_message = (
        "We could not sign you in with your organization's identity provider. "
        "Please try again or contact your administrator."
    )
    http_status = 403

    def __init__(
        self, code: str, message: str, *, details: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message, code=code, details=details)
