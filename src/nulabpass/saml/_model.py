"""Configuration and result values of the SAML core (frozen, hashable)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

import attrs

__all__ = [
    "BINDING_POST",
    "BINDING_REDIRECT",
    "NAMEID_EMAIL",
    "IdpConfig",
    "SamlLogin",
    "SamlPolicy",
]

BINDING_REDIRECT: Final = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST: Final = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
NAMEID_EMAIL: Final = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"

#: Default tolerance between the IdP's clock and ours.
DEFAULT_CLOCK_SKEW: Final = timedelta(seconds=60)


@attrs.frozen(slots=True)
class IdpConfig:
    """What the service provider trusts about one identity provider.

    ``signing_certificates`` are DER-encoded X.509 certificates; a signature made by the
    key of any of them is accepted (several during a key rollover). Nothing in a message's
    ``KeyInfo`` is ever trusted.
    """

    entity_id: str
    signing_certificates: tuple[bytes, ...]
    sso_redirect_url: str | None = None
    sso_post_url: str | None = None
    want_authn_requests_signed: bool = False


@attrs.frozen(slots=True)
class SamlPolicy:
    """How this service provider validates responses for one organization.

    ``clock_skew`` is the tolerance applied to every time comparison (small by default);
    ``allow_idp_initiated`` admits unsolicited responses (off by default);
    ``max_response_bytes`` bounds the decoded document.
    """

    sp_entity_id: str
    acs_url: str
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW
    allow_idp_initiated: bool = False
    max_response_bytes: int = 256 * 1024

    def __attrs_post_init__(self) -> None:
        if self.clock_skew < timedelta(0) or self.clock_skew > timedelta(minutes=10):
            raise ValueError("clock_skew must be between 0 and 10 minutes")


class LazyAttributes(Mapping[str, tuple[str, ...]]):
    """Attributes read from the verified assertion when first used.

    Validation has already checked the attribute statements' structure; reading the
    values (about a microsecond per attribute) is deferred to the first access, so
    hosts that only need the NameID do not pay for hundreds of attributes. The mapping
    is immutable; reading it twice from two threads yields equal results.
    """

    __slots__ = ("_loaded", "_loader")

    def __init__(self, loader: Callable[[], dict[str, tuple[str, ...]]]) -> None:
        self._loader: Callable[[], dict[str, tuple[str, ...]]] | None = loader
        self._loaded: dict[str, tuple[str, ...]] | None = None

    def _data(self) -> dict[str, tuple[str, ...]]:
        loaded = self._loaded
        if loaded is None:
            loader = self._loader
            assert loader is not None  # noqa: S101 - cleared only after loading
            loaded = self._loaded = loader()
            self._loader = None  # release the document
        return loaded

    def __getitem__(self, key: str) -> tuple[str, ...]:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return repr(self._data())


def _freeze_attributes(
    value: Mapping[str, tuple[str, ...]],
) -> Mapping[str, tuple[str, ...]]:
    if isinstance(value, LazyAttributes):
        return value
    return MappingProxyType(dict(value))


@attrs.frozen(slots=True)
class SamlLogin:
    """A verified SAML assertion: every field was read from the signed subtree."""

    issuer: str
    name_id: str
    name_id_format: str | None
    session_index: str | None
    authn_instant: datetime | None
    session_not_on_or_after: datetime | None
    attributes: Mapping[str, tuple[str, ...]] = attrs.field(
        converter=_freeze_attributes, eq=False, hash=False
    )
    assertion_id: str
    response_id: str
    in_response_to: str | None
    #: After this instant the assertion can no longer be accepted (replay entries expire).
    expires_at: datetime
    #: The signature that was verified: ``("response",)`` when the Response is signed
    #: (it covers the assertion), else ``("assertion",)``.
    signed: tuple[str, ...]
    encrypted: bool
