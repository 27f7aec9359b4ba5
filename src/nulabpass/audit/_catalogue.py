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
    (
        "saml.login_started",
        "saml",
        "A sign-in through the organization's identity provider began (AuthnRequest sent).",
    ),
    ("saml.login_succeeded", "saml", "A managed account signed in through SAML."),
    (
        "saml.login_failed",
        "saml",
        "A SAML sign-in was refused; the metadata names the error code.",
    ),
    (
        "saml.metadata_url_set",
        "saml",
        "An admin set (or changed) the URL the IdP metadata is refreshed from.",
    ),
    ("saml.metadata_url_cleared", "saml", "An admin stopped refreshing the IdP metadata."),
    (
        "saml.metadata_updated",
        "saml",
        "A refreshed IdP metadata document replaced the configuration (certificate changes "
        "only when signed by a trusted certificate).",
    ),
    (
        "saml.metadata_pending",
        "saml",
        "A refreshed IdP metadata document changes the trusted certificates without a "
        "trusted signature; it waits for an admin's approval.",
    ),
    (
        "saml.metadata_approved",
        "saml",
        "An admin approved the pending IdP metadata document, which now configures sign-in.",
    ),
    ("saml.metadata_rejected", "saml", "An admin rejected the pending IdP metadata document."),
    (
        "saml.metadata_refresh_failed",
        "saml",
        "Refreshing the IdP metadata failed; the metadata names the error code.",
    ),
    ("domain.verified", "domain", "The organization verified an email domain."),
    (
        "domain.added",
        "domain",
        "An admin added an email domain and received the DNS record to publish.",
    ),
    (
        "domain.challenge_renewed",
        "domain",
        "An admin asked for a fresh DNS challenge (the previous token no longer counts).",
    ),
    (
        "domain.verification_failed",
        "domain",
        "A verification check did not find the expected DNS record (or got no answer).",
    ),
    (
        "domain.record_missing",
        "domain",
        "A re-check of a verified domain found its DNS record missing: the grace period "
        "started and admins were emailed.",
    ),
    (
        "domain.restored",
        "domain",
        "The DNS record of a verified domain was found again within the grace period.",
    ),
    (
        "domain.lapsed",
        "domain",
        "The grace period ended without the DNS record: the domain is no longer verified.",
    ),
    ("domain.removed", "domain", "An admin removed an email domain."),
    (
        "domain.subdomains_changed",
        "domain",
        "An admin changed whether a verified domain also covers its subdomains.",
    ),
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
    ("scim.token_created", "scim", "An admin created a SCIM provisioning token."),
    ("scim.token_rotated", "scim", "An admin replaced a SCIM token with a new one."),
    ("scim.token_revoked", "scim", "An admin revoked a SCIM token."),
    ("scim.user_created", "scim", "User provisioning created (or adopted) a managed account."),
    ("scim.user_updated", "scim", "User provisioning changed a managed account's attributes."),
    ("scim.user_deactivated", "scim", "User provisioning deactivated a managed account."),
    ("scim.user_reactivated", "scim", "User provisioning reactivated a managed account."),
    ("scim.user_deleted", "scim", "User provisioning deleted a managed account."),
    ("scim.group_created", "scim", "User provisioning created a team."),
    (
        "scim.group_updated",
        "scim",
        "User provisioning renamed a team or changed its managed members.",
    ),
    ("scim.group_deleted", "scim", "User provisioning deleted a team and its memberships."),
    ("audit.read", "audit", "Someone read the organization's audit log."),
    (
        "audit.personal_data_erased",
        "audit",
        "One person's personal data was erased from every audit event.",
    ),
    (
        "audit.checkpoint_signed",
        "audit",
        "A signed checkpoint of the organization's audit log was recorded.",
    ),
    ("audit.exported", "audit", "Someone exported the organization's audit log."),
    (
        "audit.retention_changed",
        "audit",
        "The organization's audit log retention period changed.",
    ),
    (
        "audit.purged",
        "audit",
        "Events older than the retention period were purged; the rest stays verifiable.",
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
