"""Use cases of the identity model: accounts, organizations, members, teams,
managed accounts, invitations and consent conversions.

Each public method is one user action: it runs inside :meth:`Runtime.run`, which gives it
one transaction, the organization lock, the break-glass re-check and its audit event.
"""

from __future__ import annotations

import builtins
from datetime import datetime

import attrs

from nulabpass._context import Actor, ActorType, RequestContext
from nulabpass._gate import Capability
from nulabpass._ids import new_id
from nulabpass._runtime import HOST_SCOPE, Recorder, Runtime
from nulabpass._tokens import derive_token, hash_token, new_nonce, split_token, token_matches
from nulabpass.audit._model import Target
from nulabpass.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from nulabpass.org._email import domain_of, normalize_email
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
from nulabpass.org._permissions import Permission
from nulabpass.org._validate import check_language, check_name, check_timezone
from nulabpass.ports import UnitOfWork

__all__ = [
    "AccountsAPI",
    "ConversionsAPI",
    "InvitationsAPI",
    "MembersAPI",
    "OrgsAPI",
    "TeamsAPI",
]

_DEFAULT_CTX = RequestContext()


class _Unset:
    """Marks a keyword argument that was not passed."""


_UNSET = _Unset()


def _org(uow: UnitOfWork, org_id: str) -> Organization:
    org = uow.organizations.get(org_id)
    if org is None:
        raise NotFound(f"There is no organization {org_id!r}.", code="organization.not_found")
    return org


def _account(uow: UnitOfWork, account_id: str) -> Account:
    account = uow.accounts.get(account_id)
    if account is None:
        raise NotFound(f"There is no account {account_id!r}.", code="account.not_found")
    return account


def _membership(uow: UnitOfWork, org_id: str, account_id: str) -> Membership:
    membership = uow.memberships.get(org_id, account_id)
    if membership is None:
        raise NotFound(
            f"Account {account_id!r} is not a member of organization {org_id!r}.",
            code="member.not_found",
        )
    return membership


def _managed_account(uow: UnitOfWork, org_id: str, account_id: str) -> Account:
    account = _account(uow, account_id)
    if account.managed_by != org_id:
        raise Conflict(
            f"Account {account_id!r} is not a managed account of this organization.",
            code="member.not_managed",
        )
    return account


def _team(uow: UnitOfWork, org_id: str, team_id: str) -> Team:
    team = uow.teams.get(team_id)
    if team is None or team.org_id != org_id:
        raise NotFound(f"Organization {org_id!r} has no team {team_id!r}.", code="team.not_found")
    return team


def _check_ids(**values: object) -> None:
    for name, value in values.items():
        if not isinstance(value, str) or not value or len(value) > 200:
            raise InvalidInput(
                f"{name} must be a non-empty identifier string.",
                code="input.invalid_id",
                details={"field": name},
            )


def require_managed_preconditions(uow: UnitOfWork, org: Organization, email: str) -> None:
    """Managed accounts need SAML configured and the email's domain verified by ``org``."""
    if org.saml_configured_at is None:
        raise Conflict(
            f"Organization {org.name!r} has not configured SAML single sign-on yet. "
            "Managed accounts sign in through SAML only: configure SAML first.",
            code="managed.saml_required",
        )
    domain = domain_of(email)
    if not any(d.covers(domain) for d in uow.domains.list_for_org(org.id)):
        raise Conflict(
            f"The domain {domain} is not verified by organization {org.name!r}. Verify "
            "the domain before creating or converting managed accounts on it.",
            code="managed.domain_unverified",
            details={"domain": domain},
        )


class _Base:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def _authorize(
        self,
        rec: Recorder,
        permission: Permission,
        *,
        adding: int = 0,
        ignore_seats: bool = False,
    ) -> Organization:
        """The organization of the action, once the actor holds ``permission`` and the
        plan entitles the organization to manage accounts and teams (with ``adding``
        free seats; ``ignore_seats`` for actions that reduce the managed count)."""
        org = rec.org or _org(rec.uow, rec.scope)
        rec.require(permission)
        self._rt.gate.require(
            rec.uow,
            org.id,
            Capability.MANAGE_ACCOUNTS,
            rec.now,
            adding=adding,
            ignore_seats=ignore_seats,
        )
        return org


class AccountsAPI(_Base):
    """Host-wide accounts: one person, one account, one email."""

    def register(
        self,
        email: str,
        display_name: str,
        *,
        language: str | None = None,
        timezone: str | None = None,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> Account:
        """Create a non-managed account (the host's own sign-up calls this).

        Raises ``Conflict`` (``account.email_taken``) when the email is in use.
        """
        normalized = normalize_email(email)
        name = check_name(display_name, field="display name", code="account.invalid_name")
        lang = check_language(language or self._rt.config.default_language)
        tz = check_timezone(timezone or self._rt.config.default_timezone)

        def body(rec: Recorder) -> Account:
            account = Account(
                id=new_id("acc"),
                email=normalized,
                display_name=name,
                language=lang,
                timezone=tz,
                status=AccountStatus.ACTIVE,
                managed_by=None,
                created_at=rec.now,
                updated_at=rec.now,
            )
            rec.uow.accounts.add(account)
            rec.target_account(account)
            return account

        return self._rt.run(
            scope=HOST_SCOPE, action="account.registered", actor=Actor.system(), ctx=ctx, body=body
        )

    def get(self, account_id: str) -> Account:
        """Return an account or raise ``NotFound``."""
        _check_ids(account_id=account_id)
        with self._rt.store.transaction() as uow:
            return _account(uow, account_id)

    def find_by_email(self, email: str) -> Account | None:
        """Return the account using ``email`` (normalised first), if any."""
        normalized = normalize_email(email)
        with self._rt.store.transaction() as uow:
            return uow.accounts.get_by_email(normalized)

    def update_profile(
        self,
        actor: Actor,
        account_id: str,
        *,
        display_name: str | None = None,
        language: str | None = None,
        timezone: str | None = None,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> Account:
        """Change an account's name, language or time zone.

        The owner may change their own profile; an admin of the managing organization may
        change a managed account's.
        """
        _check_ids(account_id=account_id)
        name = (
            None
            if display_name is None
            else check_name(display_name, field="display name", code="account.invalid_name")
        )
        lang = None if language is None else check_language(language)
        tz = None if timezone is None else check_timezone(timezone)
        with self._rt.store.transaction() as uow:
            scope = _account(uow, account_id).managed_by or HOST_SCOPE

        def body(rec: Recorder) -> Account:
            account = _account(rec.uow, account_id)
            self_service = actor.type is ActorType.ACCOUNT and actor.id == account_id
            if not self_service:
                if account.managed_by is None:
                    if actor.type is not ActorType.SYSTEM:
                        raise PermissionDenied(
                            "Only the owner can change a non-managed account's profile.",
                            code="permission.not_owner",
                        )
                else:
                    rec.require(Permission.MANAGE_MANAGED_ACCOUNTS, account.managed_by)
            else:
                rec.actor_account()
            changes = [
                k
                for k, v in (("display_name", name), ("language", lang), ("timezone", tz))
                if v is not None and getattr(account, k) != v
            ]
            updated = rec.uow.accounts.update(
                attrs.evolve(
                    account,
                    display_name=name or account.display_name,
                    language=lang or account.language,
                    timezone=tz or account.timezone,
                    updated_at=rec.now,
                )
            )
            rec.target_account(updated)
            rec.meta(changed=",".join(sorted(changes)))
            return updated

        return self._rt.run(
            scope=scope, action="account.profile_updated", actor=actor, ctx=ctx, body=body
        )

    def deactivate(
        self, actor: Actor, account_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> Account:
        """The host deactivates a non-managed account (e.g. a closed sign-up).

        Refused when it is the last break-glass account of any organization.
        """
        return self._set_status(actor, account_id, AccountStatus.DEACTIVATED, ctx)

    def reactivate(
        self, actor: Actor, account_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> Account:
        """The host reactivates a non-managed account it deactivated."""
        return self._set_status(actor, account_id, AccountStatus.ACTIVE, ctx)

    def _set_status(
        self, actor: Actor, account_id: str, status: AccountStatus, ctx: RequestContext
    ) -> Account:
        _check_ids(account_id=account_id)
        action = (
            "account.deactivated" if status is AccountStatus.DEACTIVATED else "account.reactivated"
        )

        def body(rec: Recorder) -> Account:
            if actor.type is not ActorType.SYSTEM:
                raise PermissionDenied(
                    "Only the host can deactivate or reactivate a non-managed account.",
                    code="permission.host_only",
                )
            account = _account(rec.uow, account_id)
            if account.managed_by is not None:
                raise Conflict(
                    "This is a managed account; its organization's admins deactivate it.",
                    code="account.is_managed",
                )
            if account.status is status:
                raise Conflict(f"The account is already {status.value}.", code="account.unchanged")
            updated = rec.uow.accounts.update(
                attrs.evolve(account, status=status, updated_at=rec.now)
            )
            rec.target_account(updated)
            for m in rec.uow.memberships.list_for_account(account_id):
                rec.also_record(m.org_id, action, account=updated)
            if status is AccountStatus.DEACTIVATED:
                rec.emit(
                    "account.deactivated", f"{account_id}:{updated.version}", account_id=account_id
                )
            return updated

        return self._rt.run(scope=HOST_SCOPE, action=action, actor=actor, ctx=ctx, body=body)


class OrgsAPI(_Base):
    """Organizations and their settings."""

    def create(
        self, actor: Actor, name: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> Organization:
        """Create an organization whose founder (the acting account) becomes its admin,
        plan admin and audit log admin: its first break-glass account."""
        org_name = check_name(name, field="organization name", code="organization.invalid_name")
        org_id = new_id("org")

        def body(rec: Recorder) -> Organization:
            founder = rec.actor_account()
            if founder.managed_by is not None:
                raise Conflict(
                    "A managed account cannot create an organization; use a non-managed "
                    "account, which becomes the organization's break-glass admin.",
                    code="organization.founder_managed",
                )
            org = Organization(
                id=org_id,
                name=org_name,
                settings=OrgSettings(),
                created_at=rec.now,
                updated_at=rec.now,
            )
            rec.uow.organizations.add(org)
            rec.uow.memberships.add(
                Membership(
                    org_id=org_id,
                    account_id=founder.id,
                    role=Role.ADMIN,
                    plan_admin=True,
                    audit_log_admin=True,
                    created_at=rec.now,
                    updated_at=rec.now,
                )
            )
            rec.new_org = True
            rec.target("organization", org_id)
            return org

        return self._rt.run(
            scope=org_id, action="organization.created", actor=actor, ctx=ctx, body=body
        )

    def get(self, org_id: str) -> Organization:
        """Return an organization or raise ``NotFound``."""
        _check_ids(org_id=org_id)
        with self._rt.store.transaction() as uow:
            return _org(uow, org_id)

    def for_account(self, account_id: str) -> list[Organization]:
        """Organizations the account is a member of."""
        _check_ids(account_id=account_id)
        with self._rt.store.transaction() as uow:
            return [_org(uow, m.org_id) for m in uow.memberships.list_for_account(account_id)]

    def rename(
        self, actor: Actor, org_id: str, name: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> Organization:
        """Rename an organization (admins)."""
        _check_ids(org_id=org_id)
        org_name = check_name(name, field="organization name", code="organization.invalid_name")

        def body(rec: Recorder) -> Organization:
            org = _org(rec.uow, org_id)
            rec.require(Permission.MANAGE_ORGANIZATION)
            updated = rec.uow.organizations.update(
                attrs.evolve(org, name=org_name, updated_at=rec.now)
            )
            rec.org = updated
            rec.target("organization", org_id)
            return updated

        return self._rt.run(
            scope=org_id, action="organization.renamed", actor=actor, ctx=ctx, body=body
        )

    def update_settings(
        self,
        actor: Actor,
        org_id: str,
        *,
        break_glass_requires_admin: bool | None = None,
        scim_role_sync: bool | None = None,
        scim_default_team_id: str | _Unset | None = _UNSET,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> Organization:
        """Change settings (admins); a setting not passed keeps its value.

        ``scim_role_sync`` lets SCIM provisioning sync the admin role of managed members;
        ``scim_default_team_id`` names a team of the organization that users created
        through SCIM join (``None`` clears it)."""
        _check_ids(org_id=org_id)
        for name, value in (
            ("break_glass_requires_admin", break_glass_requires_admin),
            ("scim_role_sync", scim_role_sync),
        ):
            if value is not None and not isinstance(value, bool):
                raise InvalidInput(
                    f"{name} must be true or false.", code="organization.invalid_setting"
                )
        if not isinstance(scim_default_team_id, _Unset | None):
            _check_ids(team_id=scim_default_team_id)
        changes: dict[str, bool | str | None] = {}
        if break_glass_requires_admin is not None:
            changes["break_glass_requires_admin"] = break_glass_requires_admin
        if scim_role_sync is not None:
            changes["scim_role_sync"] = scim_role_sync
        if not isinstance(scim_default_team_id, _Unset):
            changes["scim_default_team_id"] = scim_default_team_id

        def body(rec: Recorder) -> Organization:
            org = _org(rec.uow, org_id)
            rec.require(Permission.MANAGE_ORGANIZATION)
            team_id = changes.get("scim_default_team_id")
            if isinstance(team_id, str):
                team = rec.uow.teams.get(team_id)
                if team is None or team.org_id != org_id:
                    raise NotFound(
                        f"Organization {org.name!r} has no team {team_id!r}; pick one of its "
                        "teams as the SCIM default team.",
                        code="team.not_found",
                    )
            settings = attrs.evolve(org.settings, **changes)  # type: ignore[arg-type]
            updated = rec.uow.organizations.update(
                attrs.evolve(org, settings=settings, updated_at=rec.now)
            )
            rec.org = updated
            rec.target("organization", org_id)
            rec.meta(**changes)
            return updated

        return self._rt.run(
            scope=org_id, action="organization.settings_updated", actor=actor, ctx=ctx, body=body
        )


class MembersAPI(_Base):
    """Members of an organization, managed or not."""

    def list(self, actor: Actor, org_id: str) -> list[Membership]:
        """Members of an organization (any member may look)."""
        _check_ids(org_id=org_id)
        with self._rt.store.transaction() as uow:
            _org(uow, org_id)
            Recorder(uow, self._rt.now(), actor, _DEFAULT_CTX, org_id).require(
                Permission.VIEW_ORGANIZATION
            )
            return uow.memberships.list_for_org(org_id)

    def get(self, org_id: str, account_id: str) -> Membership:
        """One membership, or ``NotFound``."""
        _check_ids(org_id=org_id, account_id=account_id)
        with self._rt.store.transaction() as uow:
            return _membership(uow, org_id, account_id)

    def add(
        self,
        actor: Actor,
        org_id: str,
        account_id: str,
        *,
        role: Role = Role.MEMBER,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> Membership:
        """Add an existing account as a member (the host's own invite flow calls this).

        An account managed by another organization cannot join.
        """
        _check_ids(org_id=org_id, account_id=account_id)
        role = _role(role)

        def body(rec: Recorder) -> Membership:
            _org(rec.uow, org_id)
            rec.require(Permission.MANAGE_MEMBERS)
            account = _account(rec.uow, account_id)
            if account.managed_by is not None and account.managed_by != org_id:
                raise Conflict(
                    "This account is managed by another organization and can belong to "
                    "that organization only.",
                    code="member.managed_elsewhere",
                )
            if account.status is not AccountStatus.ACTIVE:
                raise Conflict("Only an active account can join.", code="member.inactive")
            membership = Membership(
                org_id=org_id,
                account_id=account_id,
                role=role,
                plan_admin=False,
                audit_log_admin=False,
                created_at=rec.now,
                updated_at=rec.now,
            )
            rec.uow.memberships.add(membership)
            rec.target_account(account)
            rec.meta(role=role.value)
            return membership

        return self._rt.run(
            scope=org_id,
            action="member.added",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("account", account_id),
        )

    def set_role(
        self,
        actor: Actor,
        org_id: str,
        account_id: str,
        role: Role,
        *,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> Membership:
        """Make a member an admin or a plain member (admins). Demoting the last
        break-glass admin is refused."""
        _check_ids(org_id=org_id, account_id=account_id)
        role = _role(role)

        def body(rec: Recorder) -> Membership:
            _org(rec.uow, org_id)
            rec.require(Permission.MANAGE_MEMBERS)
            membership = _membership(rec.uow, org_id, account_id)
            account = _account(rec.uow, account_id)
            if membership.role is role:
                raise Conflict(f"The member is already {role.value}.", code="member.unchanged")
            updated = rec.uow.memberships.update(
                attrs.evolve(membership, role=role, updated_at=rec.now)
            )
            rec.target_account(account)
            rec.meta(role_before=membership.role.value, role_after=role.value)
            return updated

        return self._rt.run(
            scope=org_id,
            action="member.role_changed",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("account", account_id),
        )

    def set_privileges(
        self,
        actor: Actor,
        org_id: str,
        account_id: str,
        *,
        plan_admin: bool | None = None,
        audit_log_admin: bool | None = None,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> Membership:
        """Grant or withdraw plan admin and audit log admin (admins)."""
        _check_ids(org_id=org_id, account_id=account_id)
        for field, value in (("plan_admin", plan_admin), ("audit_log_admin", audit_log_admin)):
            if value is not None and not isinstance(value, bool):
                raise InvalidInput(
                    f"{field} must be true, false or omitted.", code="member.invalid_privilege"
                )
        if plan_admin is None and audit_log_admin is None:
            raise InvalidInput(
                "Name at least one privilege to change.", code="member.invalid_privilege"
            )

        def body(rec: Recorder) -> Membership:
            _org(rec.uow, org_id)
            rec.require(Permission.MANAGE_MEMBERS)
            membership = _membership(rec.uow, org_id, account_id)
            account = _account(rec.uow, account_id)
            new = attrs.evolve(
                membership,
                plan_admin=membership.plan_admin if plan_admin is None else plan_admin,
                audit_log_admin=(
                    membership.audit_log_admin if audit_log_admin is None else audit_log_admin
                ),
                updated_at=rec.now,
            )
            if (new.plan_admin, new.audit_log_admin) == (
                membership.plan_admin,
                membership.audit_log_admin,
            ):
                raise Conflict("The member already has these privileges.", code="member.unchanged")
            updated = rec.uow.memberships.update(new)
            rec.target_account(account)
            rec.meta(plan_admin=updated.plan_admin, audit_log_admin=updated.audit_log_admin)
            return updated

        return self._rt.run(
            scope=org_id,
            action="member.privileges_changed",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("account", account_id),
        )

    def remove(
        self, actor: Actor, org_id: str, account_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> None:
        """Remove a non-managed member (admins). Managed accounts are deleted or
        released instead."""
        _check_ids(org_id=org_id, account_id=account_id)

        def body(rec: Recorder) -> None:
            _org(rec.uow, org_id)
            rec.require(Permission.MANAGE_MEMBERS)
            _membership(rec.uow, org_id, account_id)
            account = _account(rec.uow, account_id)
            if account.managed_by == org_id:
                raise Conflict(
                    "A managed account belongs to this organization only: delete or release "
                    "it instead of removing it.",
                    code="member.is_managed",
                )
            _drop_membership(rec.uow, org_id, account_id)
            rec.target_account(account)

        self._rt.run(
            scope=org_id,
            action="member.removed",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("account", account_id),
        )

    def leave(self, actor: Actor, org_id: str, *, ctx: RequestContext = _DEFAULT_CTX) -> None:
        """The acting account leaves the organization (not possible for managed accounts,
        nor for the last break-glass account)."""
        _check_ids(org_id=org_id)

        def body(rec: Recorder) -> None:
            _org(rec.uow, org_id)
            account = rec.actor_account()
            _membership(rec.uow, org_id, account.id)
            if account.managed_by == org_id:
                raise Conflict(
                    "A managed account cannot leave its organization; an admin can release it.",
                    code="member.is_managed",
                )
            _drop_membership(rec.uow, org_id, account.id)
            rec.target_account(account)

        self._rt.run(scope=org_id, action="member.left", actor=actor, ctx=ctx, body=body)

    # -- managed accounts ------------------------------------------------------------------

    def create_managed(
        self,
        actor: Actor,
        org_id: str,
        *,
        team_id: str,
        email: str,
        display_name: str,
        language: str | None = None,
        timezone: str | None = None,
        role: Role = Role.MEMBER,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> Account:
        """Create a managed account inside a team and email its invitation (admins).

        Requires SAML configured, the email's domain verified by this organization, the
        plan's entitlement and a free seat. The account stays ``invited`` until the
        invitation is accepted.
        """
        _check_ids(org_id=org_id, team_id=team_id)
        normalized = normalize_email(email)
        name = check_name(display_name, field="display name", code="account.invalid_name")
        lang = check_language(language or self._rt.config.default_language)
        tz = check_timezone(timezone or self._rt.config.default_timezone)
        role = _role(role)

        def body(rec: Recorder) -> Account:
            org = self._authorize(rec, Permission.MANAGE_MANAGED_ACCOUNTS, adding=1)
            team = _team(rec.uow, org_id, team_id)
            require_managed_preconditions(rec.uow, org, normalized)
            existing = rec.uow.accounts.get_by_email(normalized)
            if existing is not None:
                raise Conflict(
                    f"An account with the email address {normalized} already exists. "
                    "If its owner should be managed by this organization, request a "
                    "conversion instead; the owner will be asked to consent.",
                    code="account.email_taken",
                )
            account = Account(
                id=new_id("acc"),
                email=normalized,
                display_name=name,
                language=lang,
                timezone=tz,
                status=AccountStatus.INVITED,
                managed_by=org_id,
                created_at=rec.now,
                updated_at=rec.now,
            )
            rec.uow.accounts.add(account)
            rec.uow.memberships.add(
                Membership(
                    org_id=org_id,
                    account_id=account.id,
                    role=role,
                    plan_admin=False,
                    audit_log_admin=False,
                    created_at=rec.now,
                    updated_at=rec.now,
                )
            )
            rec.uow.teams.add_member(TeamMember(team.id, account.id, rec.now))
            invitation = self._issue_invitation(rec, org, account, team.id)
            rec.target_account(account)
            rec.target("team", team.id)
            rec.meta(role=role.value, invitation_id=invitation.id)
            return account

        return self._rt.run(
            scope=org_id, action="managed_account.created", actor=actor, ctx=ctx, body=body
        )

    def _issue_invitation(
        self, rec: Recorder, org: Organization, account: Account, team_id: str | None
    ) -> Invitation:
        invitation_id = new_id("inv")
        nonce = new_nonce()
        token = derive_token(self._rt.secret_key, "invitation", invitation_id, nonce)
        invitation = Invitation(
            id=invitation_id,
            org_id=org.id,
            account_id=account.id,
            team_id=team_id,
            token_hash=hash_token(token),
            nonce=nonce,
            status=InvitationStatus.PENDING,
            expires_at=rec.now + self._rt.config.invitation_ttl,
            created_at=rec.now,
            updated_at=rec.now,
        )
        rec.uow.invitations.add(invitation)
        inviter = rec.actor_account() if rec.actor.type is ActorType.ACCOUNT else None
        rec.email(
            "invitation",
            account,
            f"{invitation_id}:{nonce}",
            org_name=org.name,
            inviter_name=inviter.display_name if inviter else org.name,
            expires_at=format_iso(invitation.expires_at),
            token_kind="invitation",  # noqa: S106 - names the token type
            token_record=invitation_id,
            token_nonce=nonce,
        )
        rec.emit(
            "invitation.sent", invitation_id, account_id=account.id, invitation_id=invitation_id
        )
        return invitation

    def deactivate(
        self, actor: Actor, org_id: str, account_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> Account:
        """Deactivate a managed account: it loses access to every product at once."""
        return self._managed_status(actor, org_id, account_id, AccountStatus.DEACTIVATED, ctx)

    def reactivate(
        self, actor: Actor, org_id: str, account_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> Account:
        """Reactivate a deactivated managed account."""
        return self._managed_status(actor, org_id, account_id, AccountStatus.ACTIVE, ctx)

    def _managed_status(
        self,
        actor: Actor,
        org_id: str,
        account_id: str,
        status: AccountStatus,
        ctx: RequestContext,
    ) -> Account:
        _check_ids(org_id=org_id, account_id=account_id)
        deactivating = status is AccountStatus.DEACTIVATED
        action = "managed_account.deactivated" if deactivating else "managed_account.reactivated"

        def body(rec: Recorder) -> Account:
            self._authorize(rec, Permission.MANAGE_MANAGED_ACCOUNTS)
            account = _managed_account(rec.uow, org_id, account_id)
            expected = AccountStatus.ACTIVE if deactivating else AccountStatus.DEACTIVATED
            if account.status is not expected:
                raise Conflict(
                    f"The account is {account.status.value}; only an {expected.value} "
                    f"account can be {'deactivated' if deactivating else 'reactivated'}.",
                    code="managed.wrong_status",
                )
            updated = rec.uow.accounts.update(
                attrs.evolve(account, status=status, updated_at=rec.now)
            )
            rec.target_account(updated)
            if deactivating:
                rec.emit(
                    "account.deactivated",
                    f"{account_id}:{updated.version}",
                    account_id=account_id,
                )
            return updated

        return self._rt.run(
            scope=org_id,
            action=action,
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("account", account_id),
        )

    def delete(
        self, actor: Actor, org_id: str, account_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> None:
        """Delete a managed account, its memberships and invitations (admins)."""
        _check_ids(org_id=org_id, account_id=account_id)

        def body(rec: Recorder) -> None:
            self._authorize(rec, Permission.MANAGE_MANAGED_ACCOUNTS, ignore_seats=True)
            account = _managed_account(rec.uow, org_id, account_id)
            if rec.actor.type is ActorType.ACCOUNT and rec.actor.id == account_id:
                raise Conflict("An admin cannot delete their own account.", code="managed.self")
            rec.target_account(account)
            _drop_membership(rec.uow, org_id, account_id)
            rec.uow.invitations.delete_for_account(account_id)
            rec.uow.conversions.delete_for_account(account_id)
            # Provisioned attributes (names, emails) go with the account, whoever deletes it.
            rec.uow.scim.delete_user(org_id, account_id)
            rec.uow.accounts.delete(account_id)
            rec.emit("account.deleted", account_id, account_id=account_id)

        self._rt.run(
            scope=org_id,
            action="managed_account.deleted",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("account", account_id),
        )

    def release(
        self, actor: Actor, org_id: str, account_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> Account:
        """Release a managed account: it becomes a non-managed account and stays a member."""
        _check_ids(org_id=org_id, account_id=account_id)

        def body(rec: Recorder) -> Account:
            org = self._authorize(rec, Permission.MANAGE_MANAGED_ACCOUNTS, ignore_seats=True)
            account = _managed_account(rec.uow, org_id, account_id)
            if account.status is AccountStatus.INVITED:
                raise Conflict(
                    "The invitation has not been accepted yet; revoke it instead.",
                    code="managed.not_activated",
                )
            updated = release_account(rec, org, account)
            rec.target_account(updated)
            return updated

        return self._rt.run(
            scope=org_id,
            action="managed_account.released",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("account", account_id),
        )


def release_account(rec: Recorder, org: Organization, account: Account) -> Account:
    """Turn a managed account into a non-managed one, email its owner and tell the host
    to end its SSO sessions. Shared by admins' release and the end of a plan."""
    # A released account is out of SCIM's reach; its provisioned attributes go, first:
    # the store refuses to release an account that still has them.
    rec.uow.scim.delete_user(org.id, account.id)
    updated = rec.uow.accounts.update(attrs.evolve(account, managed_by=None, updated_at=rec.now))
    rec.email(
        "account_released",
        updated,
        f"{account.id}:{updated.version}",
        org_name=org.name,
    )
    rec.emit("account.released", f"{account.id}:{updated.version}", account_id=account.id)
    return updated


def format_iso(value: datetime) -> str:
    """ISO-8601 for payloads rendered later in the recipient's time zone."""
    return value.isoformat()


def _role(value: object) -> Role:
    try:
        return Role(str(value))
    except ValueError:
        raise InvalidInput(
            f"{value!r} is not a role; use 'admin' or 'member'.", code="member.invalid_role"
        ) from None


def _drop_membership(uow: UnitOfWork, org_id: str, account_id: str) -> None:
    uow.teams.remove_account(org_id, account_id)
    uow.memberships.delete(org_id, account_id)


class InvitationsAPI(_Base):
    """Invitations to managed accounts: accept, resend, revoke."""

    def accept(self, token: str, *, ctx: RequestContext = _DEFAULT_CTX) -> Account:
        """Accept an invitation with the token from its email; the account becomes active.

        An unknown or tampered token raises ``NotFound`` (``invitation.invalid``), an
        expired one ``Conflict`` (``invitation.expired``), a used or revoked one
        ``Conflict`` (``invitation.used`` / ``invitation.revoked``).
        """
        invitation = self._lookup(token)

        def body(rec: Recorder) -> Account:
            inv = rec.uow.invitations.get(invitation.id)
            if inv is None or not token_matches(token, inv.token_hash):
                raise _invalid_token("invitation")
            _check_pending(inv.status.value, "invitation", inv.expires_at, rec.now)
            account = _account(rec.uow, inv.account_id)
            rec.uow.invitations.update(
                attrs.evolve(inv, status=InvitationStatus.ACCEPTED, updated_at=rec.now)
            )
            updated = rec.uow.accounts.update(
                attrs.evolve(account, status=AccountStatus.ACTIVE, updated_at=rec.now)
            )
            rec.target_account(updated)
            return updated

        return self._rt.run(
            scope=invitation.org_id,
            action="managed_account.invitation_accepted",
            actor=Actor.account(invitation.account_id),
            ctx=ctx,
            body=body,
            failure_target=Target("account", invitation.account_id),
        )

    def _lookup(self, token: str) -> Invitation:
        record_id = split_token(token)
        with self._rt.store.transaction() as uow:
            inv = uow.invitations.get(record_id) if record_id else None
        if inv is None or not token_matches(token, inv.token_hash):
            raise _invalid_token("invitation")
        return inv

    def resend(
        self, actor: Actor, org_id: str, account_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> Invitation:
        """Send a fresh invitation (new token, new expiry); earlier tokens stop working."""
        _check_ids(org_id=org_id, account_id=account_id)

        def body(rec: Recorder) -> Invitation:
            org = self._authorize(rec, Permission.MANAGE_MANAGED_ACCOUNTS)
            account = _managed_account(rec.uow, org_id, account_id)
            if account.status is not AccountStatus.INVITED:
                raise Conflict("The invitation was already accepted.", code="invitation.used")
            old = rec.uow.invitations.pending_for_account(account_id)
            team_id = None
            if old is not None:
                team_id = old.team_id
                rec.uow.invitations.update(
                    attrs.evolve(old, status=InvitationStatus.REVOKED, updated_at=rec.now)
                )
            members = MembersAPI(self._rt)
            invitation = members._issue_invitation(rec, org, account, team_id)
            rec.target_account(account)
            rec.meta(invitation_id=invitation.id)
            return invitation

        return self._rt.run(
            scope=org_id,
            action="managed_account.invitation_resent",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("account", account_id),
        )

    def revoke(
        self, actor: Actor, org_id: str, account_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> None:
        """Revoke a pending invitation; the never-activated managed account is removed."""
        _check_ids(org_id=org_id, account_id=account_id)

        def body(rec: Recorder) -> None:
            self._authorize(rec, Permission.MANAGE_MANAGED_ACCOUNTS, ignore_seats=True)
            account = _managed_account(rec.uow, org_id, account_id)
            if account.status is not AccountStatus.INVITED:
                raise Conflict(
                    "The invitation was already accepted; deactivate or delete the account.",
                    code="invitation.used",
                )
            rec.target_account(account)
            _drop_membership(rec.uow, org_id, account_id)
            rec.uow.invitations.delete_for_account(account_id)
            rec.uow.conversions.delete_for_account(account_id)
            # Provisioned attributes (names, emails) go with the account, whoever deletes it.
            rec.uow.scim.delete_user(org_id, account_id)
            rec.uow.accounts.delete(account_id)

        self._rt.run(
            scope=org_id,
            action="managed_account.invitation_revoked",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("account", account_id),
        )


def _invalid_token(kind: str) -> NotFound:
    return NotFound(
        f"The {kind} link is not valid. Ask your administrator to send a new one.",
        code=f"{kind}.invalid",
        public_message="This link is not valid. Ask your administrator for a new one.",
    )


def _check_pending(status: str, kind: str, expires_at: datetime, now: datetime) -> None:
    if status != "pending":
        code = {"accepted": "used", "cancelled": "revoked"}.get(status, status)
        raise Conflict(
            f"This {kind} was already {status}.",
            code=f"{kind}.{code}",
            public_message="This link was already used or withdrawn.",
        )
    if now >= expires_at:
        raise Conflict(
            f"This {kind} expired at {format_iso(expires_at)}. Ask an admin to send a new one.",
            code=f"{kind}.expired",
            public_message="This link has expired. Ask your administrator for a new one.",
        )


class ConversionsAPI(_Base):
    """Consent conversions: a non-managed account becomes managed only if its owner agrees."""

    def request(
        self, actor: Actor, org_id: str, account_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> ConversionRequest:
        """Ask the owner of a non-managed account on a verified domain to let this
        organization manage it (admins). The owner receives an email."""
        _check_ids(org_id=org_id, account_id=account_id)

        def body(rec: Recorder) -> ConversionRequest:
            org = self._authorize(rec, Permission.REQUEST_CONVERSIONS, adding=1)
            account = _account(rec.uow, account_id)
            _check_convertible(rec.uow, org, account)
            if rec.uow.conversions.pending(org_id, account_id) is not None:
                raise Conflict(
                    "A conversion request for this account is already waiting for its owner.",
                    code="conversion.pending",
                )
            request_id = new_id("cnv")
            nonce = new_nonce()
            token = derive_token(self._rt.secret_key, "conversion", request_id, nonce)
            request = ConversionRequest(
                id=request_id,
                org_id=org_id,
                account_id=account_id,
                token_hash=hash_token(token),
                nonce=nonce,
                status=ConversionStatus.PENDING,
                expires_at=rec.now + self._rt.config.conversion_ttl,
                created_at=rec.now,
                updated_at=rec.now,
            )
            rec.uow.conversions.add(request)
            rec.email(
                "conversion_request",
                account,
                f"{request_id}:{nonce}",
                org_name=org.name,
                expires_at=format_iso(request.expires_at),
                token_kind="conversion",  # noqa: S106 - names the token type
                token_record=request_id,
                token_nonce=nonce,
            )
            rec.target_account(account)
            rec.meta(conversion_id=request_id)
            return request

        return self._rt.run(
            scope=org_id,
            action="conversion.requested",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("account", account_id),
        )

    def inspect(self, token: str) -> tuple[ConversionRequest, Organization]:
        """What a conversion link asks, for the page where the owner decides."""
        request = self._lookup(token)
        with self._rt.store.transaction() as uow:
            return request, _org(uow, request.org_id)

    def _lookup(self, token: str) -> ConversionRequest:
        record_id = split_token(token)
        with self._rt.store.transaction() as uow:
            req = uow.conversions.get(record_id) if record_id else None
        if req is None or not token_matches(token, req.token_hash):
            raise _invalid_token("conversion")
        return req

    def accept(self, token: str, *, ctx: RequestContext = _DEFAULT_CTX) -> Account:
        """The owner accepts: the account becomes managed by the organization.

        A managed account belongs to one organization only, so it leaves every other
        organization (each records it); refused if that would leave any of them without
        break-glass access.
        """
        request = self._lookup(token)

        def body(rec: Recorder) -> Account:
            req = rec.uow.conversions.get(request.id)
            if req is None or not token_matches(token, req.token_hash):
                raise _invalid_token("conversion")
            _check_pending(req.status.value, "conversion", req.expires_at, rec.now)
            org = _org(rec.uow, req.org_id)
            account = rec.actor_account()
            _check_convertible(rec.uow, org, account)
            self._rt.gate.require(rec.uow, org.id, Capability.MANAGE_ACCOUNTS, rec.now, adding=1)
            # The account row first: two organizations accepting conversions of one
            # account at once then queue on it, and the second finds its version moved
            # on (a stale write). Inserting the membership first would let each take a
            # key-share lock on the row (its foreign key) before either updates it, a
            # deadlock on PostgreSQL, since managed_by is part of a referenced key.
            updated = rec.uow.accounts.update(
                attrs.evolve(account, managed_by=org.id, updated_at=rec.now)
            )
            for m in rec.uow.memberships.list_for_account(account.id):
                if m.org_id == org.id:
                    continue
                _drop_membership(rec.uow, m.org_id, account.id)
                rec.also_record(
                    m.org_id,
                    "member.removed_by_conversion",
                    account=account,
                    managing_organization=org.id,
                )
                other = rec.uow.conversions.pending(m.org_id, account.id)
                if other is not None:
                    rec.uow.conversions.update(
                        attrs.evolve(other, status=ConversionStatus.CANCELLED, updated_at=rec.now)
                    )
            if rec.uow.memberships.get(org.id, account.id) is None:
                rec.uow.memberships.add(
                    Membership(
                        org_id=org.id,
                        account_id=account.id,
                        role=Role.MEMBER,
                        plan_admin=False,
                        audit_log_admin=False,
                        created_at=rec.now,
                        updated_at=rec.now,
                    )
                )
            rec.uow.conversions.update(
                attrs.evolve(req, status=ConversionStatus.ACCEPTED, updated_at=rec.now)
            )
            rec.target_account(updated)
            rec.meta(conversion_id=req.id)
            rec.emit("account.converted", req.id, account_id=account.id)
            return updated

        return self._rt.run(
            scope=request.org_id,
            action="conversion.accepted",
            actor=Actor.account(request.account_id),
            ctx=ctx,
            body=body,
            failure_target=Target("account", request.account_id),
        )

    def decline(self, token: str, *, ctx: RequestContext = _DEFAULT_CTX) -> None:
        """The owner declines: nothing changes but the request's status."""
        request = self._lookup(token)

        def body(rec: Recorder) -> None:
            req = rec.uow.conversions.get(request.id)
            if req is None or not token_matches(token, req.token_hash):
                raise _invalid_token("conversion")
            _check_pending(req.status.value, "conversion", req.expires_at, rec.now)
            account = rec.actor_account()
            rec.uow.conversions.update(
                attrs.evolve(req, status=ConversionStatus.DECLINED, updated_at=rec.now)
            )
            rec.target_account(account)
            rec.meta(conversion_id=req.id)

        self._rt.run(
            scope=request.org_id,
            action="conversion.declined",
            actor=Actor.account(request.account_id),
            ctx=ctx,
            body=body,
            failure_target=Target("account", request.account_id),
        )

    def cancel(
        self, actor: Actor, org_id: str, account_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> None:
        """An admin withdraws a pending request."""
        _check_ids(org_id=org_id, account_id=account_id)

        def body(rec: Recorder) -> None:
            _org(rec.uow, org_id)
            rec.require(Permission.REQUEST_CONVERSIONS)
            req = rec.uow.conversions.pending(org_id, account_id)
            if req is None:
                raise NotFound(
                    "There is no pending conversion request for this account.",
                    code="conversion.not_found",
                )
            rec.uow.conversions.update(
                attrs.evolve(req, status=ConversionStatus.CANCELLED, updated_at=rec.now)
            )
            rec.target_account(_account(rec.uow, account_id))
            rec.meta(conversion_id=req.id)

        self._rt.run(
            scope=org_id,
            action="conversion.cancelled",
            actor=actor,
            ctx=ctx,
            body=body,
            failure_target=Target("account", account_id),
        )


def _check_convertible(uow: UnitOfWork, org: Organization, account: Account) -> None:
    if account.managed_by is not None:
        raise Conflict(
            "This account is already managed"
            + (
                " by this organization."
                if account.managed_by == org.id
                else " by another organization."
            ),
            code="conversion.already_managed",
        )
    if account.status is not AccountStatus.ACTIVE:
        raise Conflict("Only an active account can be converted.", code="conversion.inactive")
    require_managed_preconditions(uow, org, account.email)


class TeamsAPI(_Base):
    """Teams inside an organization."""

    def create(
        self, actor: Actor, org_id: str, name: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> Team:
        """Create a team (admins); names are unique in the organization, ignoring case."""
        _check_ids(org_id=org_id)
        team_name = check_name(name, field="team name", code="team.invalid_name")

        def body(rec: Recorder) -> Team:
            self._authorize(rec, Permission.MANAGE_TEAMS)
            team = Team(
                id=new_id("team"),
                org_id=org_id,
                name=team_name,
                created_at=rec.now,
                updated_at=rec.now,
            )
            rec.uow.teams.add(team)
            rec.target("team", team.id)
            rec.meta(name=team_name)
            return team

        return self._rt.run(scope=org_id, action="team.created", actor=actor, ctx=ctx, body=body)

    def list(self, actor: Actor, org_id: str) -> list[Team]:
        """Teams of an organization (any member may look)."""
        _check_ids(org_id=org_id)
        with self._rt.store.transaction() as uow:
            _org(uow, org_id)
            Recorder(uow, self._rt.now(), actor, _DEFAULT_CTX, org_id).require(
                Permission.VIEW_ORGANIZATION
            )
            return uow.teams.list_for_org(org_id)

    def members(self, actor: Actor, org_id: str, team_id: str) -> builtins.list[TeamMember]:
        """Members of a team (any member may look)."""
        _check_ids(org_id=org_id, team_id=team_id)
        with self._rt.store.transaction() as uow:
            _org(uow, org_id)
            Recorder(uow, self._rt.now(), actor, _DEFAULT_CTX, org_id).require(
                Permission.VIEW_ORGANIZATION
            )
            _team(uow, org_id, team_id)
            return uow.teams.list_members(team_id)

    def rename(
        self,
        actor: Actor,
        org_id: str,
        team_id: str,
        name: str,
        *,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> Team:
        """Rename a team (admins)."""
        _check_ids(org_id=org_id, team_id=team_id)
        team_name = check_name(name, field="team name", code="team.invalid_name")

        def body(rec: Recorder) -> Team:
            self._authorize(rec, Permission.MANAGE_TEAMS)
            team = _team(rec.uow, org_id, team_id)
            updated = rec.uow.teams.update(attrs.evolve(team, name=team_name, updated_at=rec.now))
            rec.target("team", team_id)
            rec.meta(name_before=team.name, name_after=team_name)
            return updated

        return self._rt.run(scope=org_id, action="team.renamed", actor=actor, ctx=ctx, body=body)

    def delete(
        self, actor: Actor, org_id: str, team_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> None:
        """Delete a team and its memberships (never its members' accounts)."""
        _check_ids(org_id=org_id, team_id=team_id)

        def body(rec: Recorder) -> None:
            self._authorize(rec, Permission.MANAGE_TEAMS)
            team = _team(rec.uow, org_id, team_id)
            rec.uow.scim.delete_group(team_id)
            rec.uow.teams.delete(team_id)
            rec.target("team", team_id)
            rec.meta(name=team.name)

        self._rt.run(scope=org_id, action="team.deleted", actor=actor, ctx=ctx, body=body)

    def add_member(
        self,
        actor: Actor,
        org_id: str,
        team_id: str,
        account_id: str,
        *,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> TeamMember:
        """Add a member of the organization to a team (admins)."""
        _check_ids(org_id=org_id, team_id=team_id, account_id=account_id)

        def body(rec: Recorder) -> TeamMember:
            self._authorize(rec, Permission.MANAGE_TEAMS)
            _team(rec.uow, org_id, team_id)
            _membership(rec.uow, org_id, account_id)
            member = TeamMember(team_id, account_id, rec.now)
            rec.uow.teams.add_member(member)
            rec.target("team", team_id)
            rec.target_account(_account(rec.uow, account_id))
            return member

        return self._rt.run(
            scope=org_id, action="team.member_added", actor=actor, ctx=ctx, body=body
        )

    def remove_member(
        self,
        actor: Actor,
        org_id: str,
        team_id: str,
        account_id: str,
        *,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> None:
        """Remove an account from a team (admins)."""
        _check_ids(org_id=org_id, team_id=team_id, account_id=account_id)

        def body(rec: Recorder) -> None:
            self._authorize(rec, Permission.MANAGE_TEAMS)
            _team(rec.uow, org_id, team_id)
            if not rec.uow.teams.remove_member(team_id, account_id):
                raise NotFound("The account is not in this team.", code="team.member_not_found")
            rec.target("team", team_id)
            account = rec.uow.accounts.get(account_id)
            if account is not None:
                rec.target_account(account)

        self._rt.run(scope=org_id, action="team.member_removed", actor=actor, ctx=ctx, body=body)
