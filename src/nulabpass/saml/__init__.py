"""SAML 2.0 single sign-on: the pure core.

- :func:`parse_idp_metadata` / :func:`idp_config_from_fields` -> :class:`IdpConfig`;
- :func:`validate_response` (or a :class:`SamlValidator` built once per configuration)
  -> :class:`SamlLogin`, or :class:`SamlValidationError` with a stable code;
- :func:`record_assertion` consults a replay cache so an assertion is accepted once;
- :func:`build_authn_request` for SP-initiated sign-in; :func:`sp_metadata`;
- :func:`verify_metadata_signature` checks a signed metadata document;
  :class:`HttpsMetadataFetcher` downloads metadata safely (the one part that does I/O);
- :func:`sp_key` checks an SP key and certificate pair for a key provider.

Nothing here reads the clock or performs I/O: ``now`` is always an argument.
"""

from __future__ import annotations

from datetime import datetime

from nulabpass.ports import SamlReplayCache
from nulabpass.saml._authn import (
    SIG_ALG_RSA_SHA256,
    AuthnRequestMessage,
    build_authn_request,
    check_relay_state,
    new_request_id,
)
from nulabpass.saml._errors import SamlValidationError
from nulabpass.saml._fetch import HttpsMetadataFetcher, MetadataFetchError
from nulabpass.saml._metadata import (
    certificate_from_pem,
    idp_config_from_fields,
    parse_idp_metadata,
    sp_metadata,
)
from nulabpass.saml._metadata_signature import verify_metadata_signature
from nulabpass.saml._model import (
    BINDING_POST,
    BINDING_REDIRECT,
    NAMEID_EMAIL,
    IdpConfig,
    SamlLogin,
    SamlPolicy,
)
from nulabpass.saml._replay import MemoryReplayCache
from nulabpass.saml._spkeys import sp_key, sp_key_id
from nulabpass.saml._validate import SamlValidator, validate_response

__all__ = [
    "BINDING_POST",
    "BINDING_REDIRECT",
    "NAMEID_EMAIL",
    "SIG_ALG_RSA_SHA256",
    "AuthnRequestMessage",
    "HttpsMetadataFetcher",
    "IdpConfig",
    "MemoryReplayCache",
    "MetadataFetchError",
    "SamlLogin",
    "SamlPolicy",
    "SamlReplayCache",
    "SamlValidationError",
    "SamlValidator",
    "build_authn_request",
    "certificate_from_pem",
    "check_relay_state",
    "idp_config_from_fields",
    "new_request_id",
    "parse_idp_metadata",
    "record_assertion",
    "sp_key",
    "sp_key_id",
    "sp_metadata",
    "validate_response",
    "verify_metadata_signature",
]


def record_assertion(
    cache: SamlReplayCache, login: SamlLogin, *, policy: SamlPolicy, now: datetime
) -> None:
    """Accept ``login``'s assertion once: raise ``saml.replay`` when already seen.

    The entry lives until the assertion could no longer be accepted anyway
    (its expiry plus the allowed clock skew).
    """
    key = f"{login.issuer}\x00{login.assertion_id}"
    if not cache.remember(key, expires_at=login.expires_at + policy.clock_skew, now=now):
        raise SamlValidationError(
            "saml.replay",
            f"The assertion {login.assertion_id!r} was already used to sign in. A response "
            "can be used once; the browser may have re-posted it (back button) or it was "
            "captured and replayed.",
            details={"received": login.assertion_id},
        )
