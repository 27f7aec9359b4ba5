"""nulabpass: the enterprise identity add-on for B2B SaaS products, as a library.

Public API: build a :class:`NulabPass` from a store, a configuration, a mailer and a
clock, then call its feature groups. Everything else lives in private modules.
"""

from __future__ import annotations

from nulabpass._access import AccessDecision
from nulabpass._context import Actor, ActorType, RequestContext
from nulabpass._facade import NulabPass
from nulabpass.audit._chain import ChainVerification
from nulabpass.audit._model import Outcome
from nulabpass.audit._service import AuditEntry, AuditEntryPage, PartyView
from nulabpass.config import NulabPassConfig, load_config
from nulabpass.errors import (
    BreakGlassViolation,
    ConfigurationError,
    Conflict,
    InvalidInput,
    NotFound,
    NulabPassError,
    PermissionDenied,
    PlanRequired,
    SeatLimitExceeded,
    StaleWrite,
    TransientError,
)
from nulabpass.org._model import (
    Account,
    AccountStatus,
    ConversionRequest,
    ConversionStatus,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    OrgSettings,
    Role,
    Team,
    TeamMember,
)
from nulabpass.outbox._dispatch import DispatchReport, DomainEvent

__version__ = "0.1.0.dev0"

__all__ = [
    "AccessDecision",
    "Account",
    "AccountStatus",
    "Actor",
    "ActorType",
    "AuditEntry",
    "AuditEntryPage",
    "BreakGlassViolation",
    "ChainVerification",
    "ConfigurationError",
    "Conflict",
    "ConversionRequest",
    "ConversionStatus",
    "DispatchReport",
    "DomainEvent",
    "InvalidInput",
    "Invitation",
    "InvitationStatus",
    "Membership",
    "NotFound",
    "NulabPass",
    "NulabPassConfig",
    "NulabPassError",
    "OrgSettings",
    "Organization",
    "Outcome",
    "PartyView",
    "PermissionDenied",
    "PlanRequired",
    "RequestContext",
    "Role",
    "SeatLimitExceeded",
    "StaleWrite",
    "Team",
    "TeamMember",
    "TransientError",
    "__version__",
    "load_config",
]
