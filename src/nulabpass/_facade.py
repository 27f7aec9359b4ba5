"""The facade: one object, one method per user action, grouped by feature."""

from __future__ import annotations

from nulabpass._access import AccessAPI
from nulabpass._plans_service import PlansAPI
from nulabpass._runtime import Runtime
from nulabpass.audit._service import AuditAPI
from nulabpass.clock import SystemClock
from nulabpass.config import NulabPassConfig
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
from nulabpass.ports import BillingProvider, Clock, Mailer, Store

__all__ = ["NulabPass"]


class NulabPass:
    """The nulabpass SDK bound to a store, a mailer, a clock and a configuration.

    Every mutating method takes an :class:`~nulabpass.Actor` and optionally a
    :class:`~nulabpass.RequestContext`, and runs as one transaction that also appends
    its audit event. The core is synchronous; async hosts call it from a thread pool.

    Feature groups: ``accounts``, ``orgs``, ``members``, ``invitations``,
    ``conversions``, ``teams``, ``plans``, ``audit``, ``access``, ``outbox``.
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
        self.audit = AuditAPI(self._runtime)
        self.access = AccessAPI(self._runtime)
        self.outbox = OutboxAPI(self._runtime, mailer, templates)
        self.plans = PlansAPI(self._runtime, billing)
