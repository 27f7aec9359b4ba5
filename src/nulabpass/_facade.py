"""The facade: one object, one method per user action, grouped by feature."""

from __future__ import annotations

from collections.abc import Sequence

from nulabpass._access import AccessAPI
from nulabpass._domains_service import DomainsAPI
from nulabpass._plans_service import PlansAPI
from nulabpass._runtime import Runtime
from nulabpass._saml_service import SamlAPI
from nulabpass.audit._service import AuditAPI
from nulabpass.clock import SystemClock
from nulabpass.config import NulabPassConfig
from nulabpass.domains._model import DomainPolicy
from nulabpass.mail import TemplateCatalog
from nulabpass.org._service import (
    AccountsAPI,
    ConversionsAPI,
    InvitationsAPI,
    MembersAPI,
    OrgsAPI,
    TeamsAPI,
)
from nulabpass.outbox._dispatch import OutboxAPI
from nulabpass.ports import (
    BillingProvider,
    Clock,
    KeyProvider,
    Mailer,
    MetadataFetcher,
    RateLimiter,
    Store,
    TxtResolver,
)
from nulabpass.scim._service import ScimAPI
from nulabpass.stores.ratelimit import MemoryRateLimiter

__all__ = ["NulabPass"]


class NulabPass:
    """The nulabpass SDK bound to a store, a mailer, a clock and a configuration.

    Every mutating method takes an :class:`~nulabpass.Actor` and optionally a
    :class:`~nulabpass.RequestContext`, and runs as one transaction that also appends
    its audit event. The core is synchronous; async hosts call it from a thread pool.

    Feature groups: ``accounts``, ``orgs``, ``members``, ``invitations``,
    ``conversions``, ``teams``, ``plans``, ``audit``, ``access``, ``outbox``, ``domains``.

    ``keys`` (a :class:`~nulabpass.ports.KeyProvider`) signs audit checkpoints and export
    manifests; without it those calls raise ``audit.no_signing_key``.

    ``metadata_fetcher`` downloads IdP metadata from the URLs admins set
    (``np.saml.set_metadata_url``); :class:`~nulabpass.saml.HttpsMetadataFetcher` by
    default.
    """

    def __init__(
        self,
        store: Store,
        *,
        config: NulabPassConfig,
        mailer: Mailer | None = None,
        clock: Clock | None = None,
        templates: TemplateCatalog | None = None,
        billing: BillingProvider | None = None,
        keys: KeyProvider | None = None,
        resolver: TxtResolver | Sequence[TxtResolver] | None = None,
        rate_limiter: RateLimiter | None = None,
        domain_policy: DomainPolicy | None = None,
        metadata_fetcher: MetadataFetcher | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self._runtime = Runtime(store, self.clock, config)
        self.accounts = AccountsAPI(self._runtime)
        self.orgs = OrgsAPI(self._runtime)
        self.members = MembersAPI(self._runtime)
        self.invitations = InvitationsAPI(self._runtime)
        self.conversions = ConversionsAPI(self._runtime)
        self.teams = TeamsAPI(self._runtime)
        self.audit = AuditAPI(self._runtime, keys)
        self.access = AccessAPI(self._runtime)
        self.outbox = OutboxAPI(self._runtime, mailer, templates)
        self.plans = PlansAPI(self._runtime, billing)
        # One per-process rate limiter unless the host shares one across processes.
        limiter = rate_limiter or MemoryRateLimiter()
        # Domains: one resolver per vantage point (all must agree), the system's when
        # none is given.
        resolvers = (
            None
            if resolver is None
            else ((resolver,) if isinstance(resolver, TxtResolver) else tuple(resolver))
        )
        self.domains = DomainsAPI(
            self._runtime,
            resolvers,
            limiter,
            domain_policy or DomainPolicy(),
        )
        self.scim = ScimAPI(self._runtime, limiter)
        self.saml = SamlAPI(self._runtime, keys, metadata_fetcher, limiter)
