"""Test doubles and helpers, public so that users test with what nulabpass tests with.

- :class:`FrozenClock`: a clock that moves only when told;
- :class:`RecordingMailer`: keeps sent emails, can simulate outages;
- :class:`FakeBillingProvider`: signs and checks billing webhooks;
- :class:`StaticTxtResolver`: answers DNS TXT lookups from a table;
- :class:`StaticMetadataFetcher`: serves IdP metadata documents from a table;
- :class:`MemoryStore`: the transactional in-memory store;
- :class:`MemoryKeyProvider`: Ed25519 audit signing keys in memory, with rotation;
- :class:`StoreContract`: the storage contract suite; subclass it with a ``store``
  fixture to run every test against your own store;
- :func:`make_nulabpass`, :func:`mark_saml_configured`, :func:`mark_domain_verified`;
- :func:`scim_ready_org`: an organization ready for SCIM provisioning and its token.
"""

from __future__ import annotations

from nulabpass.domains import StaticTxtResolver
from nulabpass.mail import RecordingMailer
from nulabpass.stores.memory import MemoryStore
from nulabpass.testing._billing import FakeBillingProvider
from nulabpass.testing._clock import FrozenClock
from nulabpass.testing._helpers import (
    make_config,
    make_nulabpass,
    mark_domain_verified,
    mark_saml_configured,
    scim_ready_org,
)
from nulabpass.testing._keys import MemoryKeyProvider
from nulabpass.testing._metadata import StaticMetadataFetcher

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nulabpass.testing._store_contract import StoreContract


def __getattr__(name: str) -> object:
    # The contract suite imports pytest; load it only when asked for, so that importing
    # nulabpass.testing in an application's own test helpers does not require pytest.
    if name == "StoreContract":
        from nulabpass.testing._store_contract import StoreContract

        return StoreContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FakeBillingProvider",
    "FrozenClock",
    "MemoryKeyProvider",
    "MemoryStore",
    "RecordingMailer",
    "StaticMetadataFetcher",
    "StaticTxtResolver",
    "StoreContract",
    "make_config",
    "make_nulabpass",
    "mark_domain_verified",
    "mark_saml_configured",
    "scim_ready_org",
]
