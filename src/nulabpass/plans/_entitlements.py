"""The entitlement table: what an organization may do in each plan state, and seat limits.

The whole library asks this one table. Checks raise rather than return ``False`` at the
places that enforce them (:func:`require`, :func:`require_seat`), so a forgotten ``if``
cannot let an unpaid organization through.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from nulabpass.errors import InvalidInput, PlanRequired, SeatLimitExceeded
from nulabpass.plans._model import PlanState

__all__ = [
    "CAPABILITY_LABELS",
    "ENTITLEMENTS",
    "SEAT_LIMITED",
    "Capability",
    "entitled",
    "granted",
    "require",
    "require_seat",
]


class Capability(enum.StrEnum):
    """Something the plan gates; a row of the entitlement table."""

    #: Managed accounts can sign in (through SAML) to the host's products.
    SIGN_IN = "sign_in"
    #: Manage managed accounts, conversions and teams.
    MANAGE_ACCOUNTS = "manage_accounts"
    #: Configure SAML SSO and SCIM tokens.
    CONFIGURE_SSO = "configure_sso"
    #: Read and export audit logs.
    READ_AUDIT = "read_audit"
    #: Audit events are recorded. True in every state: the record of what happened must
    #: not depend on whether the organization pays.
    RECORD_AUDIT = "record_audit"


#: What each capability means, as the docs and messages show it.
CAPABILITY_LABELS: Mapping[Capability, str] = MappingProxyType(
    {
        Capability.SIGN_IN: "managed accounts can sign in",
        Capability.MANAGE_ACCOUNTS: "manage managed accounts, conversions, teams",
        Capability.CONFIGURE_SSO: "configure SAML, SCIM tokens",
        Capability.READ_AUDIT: "read and export audit logs",
        Capability.RECORD_AUDIT: "audit events recorded",
    }
)

# What a denied admin is trying to do, for the sentence "... to <action>".
_ACTIONS: Mapping[Capability, str] = MappingProxyType(
    {
        Capability.SIGN_IN: "let managed accounts sign in",
        Capability.MANAGE_ACCOUNTS: "manage managed accounts, conversions and teams",
        Capability.CONFIGURE_SSO: "configure SAML SSO and SCIM tokens",
        Capability.READ_AUDIT: "read and export audit logs",
        Capability.RECORD_AUDIT: "record audit events",
    }
)

_Y, _N = True, False
_COLUMNS = (
    PlanState.NONE,
    PlanState.TRIALING,
    PlanState.TRIAL_EXPIRED,
    PlanState.ACTIVE,
    PlanState.SUSPENDED,
    PlanState.CANCELING,
    PlanState.ENDED,
)
# fmt: off
_ROWS: dict[Capability, tuple[bool, ...]] = {
    #                           none trialing expired active suspended canceling ended
    Capability.SIGN_IN:         (_N,  _Y,      _N,     _Y,    _Y,       _Y,       _N),
    Capability.MANAGE_ACCOUNTS: (_N,  _Y,      _N,     _Y,    _N,       _Y,       _N),
    Capability.CONFIGURE_SSO:   (_N,  _Y,      _N,     _Y,    _N,       _Y,       _N),
    Capability.READ_AUDIT:      (_N,  _Y,      _N,     _Y,    _N,       _Y,       _N),
    Capability.RECORD_AUDIT:    (_Y,  _Y,      _Y,     _Y,    _Y,       _Y,       _Y),
}
# fmt: on

#: capability -> state -> whether the plan allows it (before seat limits).
ENTITLEMENTS: Mapping[Capability, Mapping[PlanState, bool]] = MappingProxyType(
    {
        capability: MappingProxyType(dict(zip(_COLUMNS, row, strict=True)))
        for capability, row in _ROWS.items()
    }
)

#: Capabilities withdrawn while the organization has more managed accounts than seats,
#: as they are while suspended. Sign-in stays, so nobody is locked out by a count.
SEAT_LIMITED: frozenset[Capability] = frozenset(
    {Capability.MANAGE_ACCOUNTS, Capability.CONFIGURE_SSO, Capability.READ_AUDIT}
)

# Why a state denies, and what the admin can do about it.
_DENIALS: Mapping[PlanState, str] = MappingProxyType(
    {
        PlanState.NONE: (
            "the organization has no plan; start the free trial or upgrade to a paid plan "
            "to {action}"
        ),
        PlanState.TRIAL_EXPIRED: (
            "the organization's trial has expired; upgrade to a paid plan to {action}"
        ),
        PlanState.SUSPENDED: (
            "the organization's plan is suspended because a payment failed; update the "
            "payment details so the payment can be collected, then {action} again"
        ),
        PlanState.ENDED: "the organization's plan has ended; upgrade to a paid plan to {action}",
    }
)


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(
            f"{name} must be a whole number of at least {minimum}; got {value!r}",
            code="plan.invalid_count",
            details={"field": name, "value": repr(value)},
        )


def _over_seats(managed_count: int, seats: int | None) -> bool:
    return seats is not None and managed_count > seats


def _accounts(n: int) -> str:
    return f"{n} managed account" if n == 1 else f"{n} managed accounts"


def _seats(n: int) -> str:
    return f"{n} seat" if n == 1 else f"{n} seats"


def entitled(
    state: PlanState, capability: Capability, *, managed_count: int, seats: int | None
) -> bool:
    """Whether the organization may use ``capability`` now.

    True when the table allows it in ``state`` and, for :data:`SEAT_LIMITED`
    capabilities, the organization has no more managed accounts than seats
    (``seats=None`` is unlimited).
    """
    _check_count("managed_count", managed_count, 0)
    if not ENTITLEMENTS[capability][state]:
        return False
    return not (capability in SEAT_LIMITED and _over_seats(managed_count, seats))


def granted(state: PlanState, *, managed_count: int, seats: int | None) -> frozenset[Capability]:
    """Return every capability the organization may use now."""
    return frozenset(
        capability
        for capability in Capability
        if entitled(state, capability, managed_count=managed_count, seats=seats)
    )


def require(
    state: PlanState, capability: Capability, *, managed_count: int, seats: int | None
) -> None:
    """Raise unless the organization may use ``capability`` now.

    Raises :class:`~nulabpass.errors.PlanRequired` with code
    ``plan.required.<capability>`` (``plan.required.sign_in``) when the state denies it,
    and :class:`~nulabpass.errors.SeatLimitExceeded` with code ``plan.over_seat_limit``
    when the state allows it but the organization has more managed accounts than seats.
    Each message tells the admin what to do.
    """
    _check_count("managed_count", managed_count, 0)
    action = _ACTIONS[capability]
    if not ENTITLEMENTS[capability][state]:
        template = _DENIALS.get(
            state, "the organization's plan is {state}; upgrade to a paid plan to {action}"
        )
        raise PlanRequired(
            template.format(state=state, action=action),
            code=f"plan.required.{capability}",
            details={"state": str(state), "capability": str(capability)},
        )
    if capability in SEAT_LIMITED and seats is not None and _over_seats(managed_count, seats):
        excess = managed_count - seats
        raise SeatLimitExceeded(
            f"the organization has {_accounts(managed_count)} but its plan includes "
            f"{_seats(seats)}; add seats or release {_accounts(excess)} to {action}",
            code="plan.over_seat_limit",
            details={
                "state": str(state),
                "capability": str(capability),
                "managed_count": str(managed_count),
                "seats": str(seats),
            },
        )


def require_seat(managed_count: int, seats: int | None, adding: int = 1) -> None:
    """Raise :class:`~nulabpass.errors.SeatLimitExceeded` unless ``adding`` more fit.

    Call it before creating or converting managed accounts: it fails when
    ``managed_count + adding > seats``. ``seats=None`` is unlimited. The code is
    ``plan.seat_limit``.
    """
    _check_count("managed_count", managed_count, 0)
    _check_count("adding", adding, 0)
    if seats is None or managed_count + adding <= seats:
        return
    in_use = "is" if managed_count == 1 else "are"
    raise SeatLimitExceeded(
        f"the organization's plan includes {_seats(seats)} and {managed_count} {in_use} "
        f"in use; adding {_accounts(adding)} would exceed it: add seats to the plan or "
        "release managed accounts first",
        code="plan.seat_limit",
        details={
            "managed_count": str(managed_count),
            "seats": str(seats),
            "adding": str(adding),
        },
    )
