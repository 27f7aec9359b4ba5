"""The catalogue of audit actions: every action nulabpass records, in one place.

Names are stable dotted identifiers; hosts and SIEM rules match on them. Adding an
action is a compatible change; renaming or removing one is not.
"""

from __future__ import annotations

import attrs

from nulabpass.errors import ConfigurationError

__all__ = ["ACTIONS", "ActionSpec", "catalogue_markdown", "category_of", "spec"]


@attrs.frozen(slots=True)
class ActionSpec:
    """One recordable action."""

    name: str
    category: str
    description: str


def _specs(*rows: tuple[str, str, str]) -> dict[str, ActionSpec]:
    return {name: ActionSpec(name, category, text) for name, category, text in rows}


ACTIONS: dict[str, ActionSpec] = _specs(
    ("account.registered", "account", "An account was registered with the host."),
    ("account.profile_updated", "account", "An account's name, language or time zone changed."),
    ("account.deactivated", "account", "The host deactivated a non-managed account."),
    ("account.reactivated", "account", "The host reactivated a non-managed account."),
    ("organization.created", "organization", "An organization was created."),
    ("organization.renamed", "organization", "An organization's name changed."),
    ("organization.settings_updated", "organization", "An organization's settings changed."),
    ("member.added", "member", "An existing account joined the organization."),
    ("member.removed", "member", "An admin removed a member from the organization."),
    ("member.left", "member", "A member left the organization."),
    ("member.role_changed", "member", "A member's role (admin or member) changed."),
    (
        "member.privileges_changed",
        "member",
        "A member's plan admin or audit log admin privilege changed.",
    ),
    (
        "member.removed_by_conversion",
        "member",
        "A member left because another organization now manages their account.",
    ),
    (
        "managed_account.created",
        "managed_account",
        "An admin created a managed account in a team and an invitation was sent.",
    ),
    ("managed_account.invitation_resent", "managed_account", "An invitation was sent again."),
    (
        "managed_account.invitation_revoked",
        "managed_account",
        "An invitation was revoked and the pending managed account removed.",
    ),
    (
        "managed_account.invitation_accepted",
        "managed_account",
        "The invited person accepted the invitation; the managed account is active.",
    ),
    ("managed_account.deactivated", "managed_account", "A managed account was deactivated."),
    ("managed_account.reactivated", "managed_account", "A managed account was reactivated."),
    ("managed_account.deleted", "managed_account", "A managed account was deleted."),
    (
        "managed_account.released",
        "managed_account",
        "A managed account was released and is now a non-managed account.",
    ),
    (
        "conversion.requested",
        "conversion",
        "The organization asked an account's owner to let it manage the account.",
    ),
    ("conversion.accepted", "conversion", "The owner accepted: the account is now managed."),
    ("conversion.declined", "conversion", "The owner declined the conversion request."),
    ("conversion.cancelled", "conversion", "An admin withdrew a conversion request."),
    ("team.created", "team", "A team was created."),
    ("team.renamed", "team", "A team was renamed."),
    ("team.deleted", "team", "A team and its memberships were deleted."),
    ("team.member_added", "team", "An account was added to a team."),
    ("team.member_removed", "team", "An account was removed from a team."),
    ("saml.configured", "saml", "SAML single sign-on was configured for the organization."),
    ("domain.verified", "domain", "The organization verified an email domain."),
    ("plan.trial_started", "plan", "The organization's one free trial started."),
    ("plan.upgraded", "plan", "A paid plan was bought."),
    ("plan.renewed", "plan", "The billing provider extended the paid period."),
    ("plan.seats_changed", "plan", "The plan's seat count changed."),
    ("plan.canceled", "plan", "The plan was canceled (access runs to the period's end)."),
    ("plan.resumed", "plan", "A cancel was undone before the period ended."),
    ("plan.payment_failed", "plan", "A payment failed: the plan is suspended."),
    ("plan.payment_recovered", "plan", "A failed payment was recovered: the plan is active."),
    ("plan.trial_ending_notified", "plan", "Admins were told the trial ends soon."),
    ("plan.trial_expired", "plan", "The trial ended without a paid plan."),
    (
        "plan.ended",
        "plan",
        "The plan ended: managed accounts were released and signed out.",
    ),
    ("audit.read", "audit", "Someone read the organization's audit log."),
    (
        "audit.personal_data_erased",
        "audit",
        "One person's personal data was erased from every audit event.",
    ),
)


def spec(action: str) -> ActionSpec:
    """Return the catalogue entry of ``action``; an unknown name is a programming error."""
    try:
        return ACTIONS[action]
    except KeyError:
        raise ConfigurationError(
            f"The audit action {action!r} is not in the catalogue.", code="audit.unknown_action"
        ) from None


def category_of(action: str) -> str:
    """The category of a catalogued action."""
    return spec(action).category


def catalogue_markdown() -> str:
    """The catalogue as a Markdown table, generated for the docs."""
    lines = ["| action | category | what happened |", "|---|---|---|"]
    for entry in sorted(ACTIONS.values(), key=lambda a: (a.category, a.name)):
        lines.append(f"| `{entry.name}` | {entry.category} | {entry.description} |")
    return "\n".join(lines) + "\n"
