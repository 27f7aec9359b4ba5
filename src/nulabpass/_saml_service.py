"""SAML single sign-on through the facade: configuration, SP-initiated and IdP-initiated
sign-in, home-realm discovery and the admins' view of recent failures.

Theory of operation
-------------------
Each organization is its own service provider. Its entity id, assertion consumer service
(ACS) URL and sign-in URL live under the host's ``base_url``:
``{base_url}/saml/{org_id}/metadata``, ``{base_url}/saml/{org_id}/acs`` and
``{base_url}/saml/{org_id}/login``; the host routes them to :meth:`SamlAPI.sp_metadata`,
:meth:`SamlAPI.complete_login` and :meth:`SamlAPI.begin_login`.

:meth:`SamlAPI.begin_login` stores the AuthnRequest's id under a SHA-256 of a fresh random
*state* value and returns the state; the host puts it in a cookie bound to the browser
(``HttpOnly; Secure; SameSite=None`` since the IdP posts back cross-site).
:meth:`SamlAPI.complete_login` takes the state from that cookie: the pending request is
removed in a transaction of its own before anything else, so a request id answers one
response whatever the outcome, and a response whose InResponseTo names a request issued
to another browser has no state to match (login CSRF, response injection). Without a
state the response must be unsolicited, which the validator accepts only when the
organization allowed IdP-initiated sign-in. Accepted assertion ids go to the store's
replay table inside the sign-in transaction, so each assertion signs in once.

Every outcome is audited once the organization is known: ``saml.login_succeeded``, or
``saml.login_failed`` with the error code, identical failures being counted on one row
within the runtime's aggregation window.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from nulabpass._context import Actor, RequestContext
from nulabpass._runtime import Recorder, Runtime
from nulabpass._saml_health import DEFAULT_WINDOW, CertificateHealth, SamlHealthService
from nulabpass._saml_model import PendingLogin, SamlConfiguration
from nulabpass._saml_refresh import (
    DEFAULT_REFRESH_INTERVAL,
    MetadataRefresh,
    MetadataStatus,
    RefreshReport,
    SamlMetadataService,
    _org,
)
from nulabpass.audit._model import Outcome
from nulabpass.audit._service import AuditAPI
from nulabpass.errors import InvalidInput
from nulabpass.org._email import normalize_email
from nulabpass.org._model import AccountStatus
from nulabpass.org._permissions import Permission
from nulabpass.plans import Capability
from nulabpass.ports import KeyProvider, MetadataFetcher, RateLimiter, SamlSpKey
from nulabpass.saml import (
    BINDING_POST,
    BINDING_REDIRECT,
    IdpConfig,
    SamlPolicy,
    SamlValidationError,
    build_authn_request,
    certificate_from_pem,
    check_relay_state,
    idp_config_from_fields,
    new_request_id,
    parse_idp_metadata,
    record_assertion,
    sp_metadata,
    validate_response,
)

__all__ = [
    "HomeRealm",
    "LoginFailure",
    "LoginRedirect",
    "LoginResult",
    "SamlAPI",
    "SamlConfiguration",
]

_DEFAULT_CTX = RequestContext()

#: How long the browser has to come back from the IdP after begin_login.
REQUEST_LIFETIME = timedelta(minutes=10)


@attrs.frozen(slots=True)
class LoginRedirect:
    """Where to send the browser, and the state value to bind to it (a cookie).

    With the HTTP-Redirect binding ``form`` is empty and the browser is redirected to
    ``url``; with HTTP-POST the browser posts ``form`` to ``url``.
    """

    url: str
    binding: str
    form: Mapping[str, str]
    state: str
    request_id: str


@attrs.frozen(slots=True)
class LoginResult:
    """A completed sign-in: the managed account and what the IdP said about the session."""

    account_id: str
    name_id: str
    session_index: str | None
    authn_instant: datetime | None
    session_not_on_or_after: datetime | None
    relay_state: str | None


@attrs.frozen(slots=True)
class HomeRealm:
    """The organization that manages an account, and the URL that starts its sign-in."""

    org_id: str
    login_url: str


@attrs.frozen(slots=True)
class LoginFailure:
    """One recorded sign-in failure (identical repeats are counted, not listed)."""

    occurred_at: datetime
    error_code: str
    repeats_not_recorded: int
    ip: str | None


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def _not_configured(org_id: str) -> InvalidInput:
    return InvalidInput(
        f"SAML single sign-on is not configured for organization {org_id!r}; an admin "
        "must configure the identity provider first.",
        code="saml.not_configured",
    )


def _idp(config: SamlConfiguration) -> IdpConfig:
    return IdpConfig(
        entity_id=config.idp_entity_id,
        signing_certificates=config.signing_certificates,
        sso_redirect_url=config.sso_redirect_url,
        sso_post_url=config.sso_post_url,
        want_authn_requests_signed=config.want_authn_requests_signed,
    )


def _refused(code: str, message: str) -> SamlValidationError:
    return SamlValidationError(code, message)


class SamlAPI:
    """``np.saml``: SAML single sign-on for organizations."""

    def __init__(
        self,
        rt: Runtime,
        keys: KeyProvider | None = None,
        metadata_fetcher: MetadataFetcher | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._rt = rt
        self._keys = keys
        self._audit = AuditAPI(rt, None)
        self._metadata = SamlMetadataService(rt, metadata_fetcher, rate_limiter)
        self._health = SamlHealthService(rt, self.sp_keys)

    # -- service provider identity -----------------------------------------------------

    def sp_entity_id(self, org_id: str) -> str:
        """This organization's SP entity id (also where its metadata is served)."""
        return f"{self._rt.config.base_url}/saml/{org_id}/metadata"

    def acs_url(self, org_id: str) -> str:
        """This organization's assertion consumer service URL."""
        return f"{self._rt.config.base_url}/saml/{org_id}/acs"

    def login_url(self, org_id: str) -> str:
        """The host URL that starts a sign-in for this organization."""
        return f"{self._rt.config.base_url}/saml/{org_id}/login"

    def sp_keys(self, org_id: str) -> tuple[SamlSpKey, ...]:
        """The organization's SP keys from the key provider, the one in use first
        (empty without a key provider or when it has none for the organization)."""
        if self._keys is None:
            return ()
        return tuple(self._keys.saml_sp_keys(org_id))

    def _policy(self, org_id: str, config: SamlConfiguration) -> SamlPolicy:
        return SamlPolicy(
            sp_entity_id=self.sp_entity_id(org_id),
            acs_url=self.acs_url(org_id),
            allow_idp_initiated=config.allow_idp_initiated,
        )

    # -- configuration -------------------------------------------------------------------

    def configure(
        self,
        actor: Actor,
        org_id: str,
        *,
        metadata_xml: bytes | None = None,
        entity_id: str | None = None,
        signing_certificates: Sequence[bytes] = (),
        sso_redirect_url: str | None = None,
        sso_post_url: str | None = None,
        want_authn_requests_signed: bool = False,
        allow_idp_initiated: bool = False,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> SamlConfiguration:
        """Configure the organization's identity provider (admins; plan entitlement).

        Pass the IdP's metadata XML, or the same fields entered by hand (``entity_id``,
        PEM or DER ``signing_certificates``, one or both SSO URLs). Errors name the
        field to fix. Marks the organization SAML-configured, which managed accounts
        need.
        """
        if metadata_xml is not None and (
            entity_id is not None or signing_certificates or sso_redirect_url or sso_post_url
        ):
            raise InvalidInput(
                "Pass either the IdP metadata XML or its fields entered by hand, not both.",
                code="saml.configuration_ambiguous",
            )

        def body(rec: Recorder) -> SamlConfiguration:
            org = _org(rec.uow, org_id)
            rec.require(Permission.CONFIGURE_SSO)
            self._rt.gate.require(rec.uow, org_id, Capability.CONFIGURE_SSO, rec.now)
            if metadata_xml is not None:
                idp = parse_idp_metadata(metadata_xml, now=rec.now)
            elif entity_id is None:
                raise InvalidInput(
                    "entity_id: give the IdP's entity ID, or pass its metadata XML.",
                    code="saml.metadata_invalid",
                    details={"field": "entityID"},
                )
            else:
                idp = idp_config_from_fields(
                    entity_id=entity_id,
                    signing_certificates=signing_certificates,
                    sso_redirect_url=sso_redirect_url,
                    sso_post_url=sso_post_url,
                    want_authn_requests_signed=want_authn_requests_signed,
                )
            previous = rec.uow.saml.get_config(org_id)
            config = SamlConfiguration(
                org_id=org_id,
                idp_entity_id=idp.entity_id,
                signing_certificates=idp.signing_certificates,
                sso_redirect_url=idp.sso_redirect_url,
                sso_post_url=idp.sso_post_url,
                want_authn_requests_signed=idp.want_authn_requests_signed,
                allow_idp_initiated=allow_idp_initiated,
                configured_at=previous.configured_at if previous else rec.now,
                updated_at=rec.now,
                version=previous.version + 1 if previous else 1,
            )
            rec.uow.saml.put_config(config)
            if org.saml_configured_at is None:
                rec.uow.organizations.update(
                    attrs.evolve(org, saml_configured_at=rec.now, updated_at=rec.now)
                )
            rec.target("organization", org_id)
            rec.meta(
                idp_entity_id=idp.entity_id,
                signing_certificates=len(idp.signing_certificates),
                allow_idp_initiated=allow_idp_initiated,
            )
            return config

        return self._rt.run(
            scope=org_id, action="saml.configured", actor=actor, ctx=ctx, body=body
        )

    def get_configuration(self, org_id: str) -> SamlConfiguration | None:
        """The organization's IdP configuration, or ``None`` when not configured."""
        with self._rt.store.transaction() as uow:
            return uow.saml.get_config(org_id)

    def sp_metadata(self, org_id: str) -> bytes:
        """The SP metadata document to give the organization's identity provider.

        It publishes every SP certificate the key provider returns for the organization
        (two during a rotation) for signing and for encryption, and says AuthnRequests
        are signed whenever there is a key: :meth:`begin_login` then always signs.
        """
        with self._rt.store.transaction() as uow:
            _org(uow, org_id)
        certificates = [certificate_from_pem(key.certificate_pem) for key in self.sp_keys(org_id)]
        return sp_metadata(
            entity_id=self.sp_entity_id(org_id),
            acs_url=self.acs_url(org_id),
            signing_certificates=certificates,
            encryption_certificates=certificates,
            authn_requests_signed=bool(certificates),
        )

    # -- sign-in ---------------------------------------------------------------------------

    def begin_login(
        self,
        org_id: str,
        *,
        relay_state: str | None = None,
        binding: str = BINDING_REDIRECT,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> LoginRedirect:
        """Start an SP-initiated sign-in: an AuthnRequest and the state for the cookie.

        ``relay_state`` (where to land after sign-in) must be a relative path on this
        site (``saml.relay_state_invalid`` otherwise).
        """
        if relay_state is not None:
            check_relay_state(relay_state)
        if binding not in (BINDING_REDIRECT, BINDING_POST):
            raise InvalidInput(
                "binding must be the HTTP-Redirect or the HTTP-POST binding.",
                code="saml.binding_invalid",
            )
        state = secrets.token_urlsafe(32)
        request_id = new_request_id()
        keys = self.sp_keys(org_id)

        def body(rec: Recorder) -> LoginRedirect:
            _org(rec.uow, org_id)
            config = rec.uow.saml.get_config(org_id)
            if config is None:
                raise _not_configured(org_id)
            self._rt.gate.require(rec.uow, org_id, Capability.SIGN_IN, rec.now)
            idp = _idp(config)
            chosen = binding
            if chosen == BINDING_REDIRECT and idp.sso_redirect_url is None:
                chosen = BINDING_POST
            elif chosen == BINDING_POST and idp.sso_post_url is None:
                chosen = BINDING_REDIRECT
            message = build_authn_request(
                idp=idp,
                sp_entity_id=self.sp_entity_id(org_id),
                acs_url=self.acs_url(org_id),
                request_id=request_id,
                issue_instant=rec.now,
                binding=chosen,
                relay_state=relay_state,
                signing_key=keys[0].private_key_pem if keys else None,
            )
            rec.uow.saml.add_request(
                PendingLogin(
                    state_hash=_state_hash(state),
                    org_id=org_id,
                    request_id=request_id,
                    relay_state=relay_state,
                    expires_at=rec.now + REQUEST_LIFETIME,
                )
            )
            rec.meta(
                request_id=request_id,
                binding=chosen,
                sp_key_id=keys[0].key_id if keys else None,
            )
            return LoginRedirect(
                url=message.url,
                binding=chosen,
                form=message.form,
                state=state,
                request_id=request_id,
            )

        return self._rt.run(
            scope=org_id,
            action="saml.login_started",
            actor=Actor.system("SAML sign-in"),
            ctx=ctx,
            body=body,
        )

    def complete_login(
        self,
        org_id: str,
        saml_response: bytes | str,
        *,
        state: str | None = None,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> LoginResult:
        """Finish a sign-in with the POSTed ``SAMLResponse``.

        ``state`` is the value :meth:`begin_login` returned (from the browser's cookie);
        without it the response must be unsolicited and the organization must allow
        IdP-initiated sign-in. The NameID must be the email of an active managed account
        of the organization, whose plan must let managed accounts sign in. Raises
        :class:`~nulabpass.saml.SamlValidationError` (show its ``public_message`` to the
        browser), ``PlanRequired`` or ``NotFound``.
        """
        pending: PendingLogin | None = None
        decryption_keys = tuple(key.private_key_pem for key in self.sp_keys(org_id))
        with self._rt.store.transaction() as uow:
            # Consumed on its own, before anything can fail: one response per request.
            if state is not None:
                pending = uow.saml.take_request(_state_hash(state), self._rt.now())
            config = uow.saml.get_config(org_id)
        actor = (
            Actor.idp(config.idp_entity_id) if config is not None else Actor.system("SAML sign-in")
        )

        def body(rec: Recorder) -> LoginResult:
            _org(rec.uow, org_id)
            current = rec.uow.saml.get_config(org_id)
            if current is None:
                raise _not_configured(org_id)
            request_id: str | None = None
            if state is not None:
                if pending is None or pending.org_id != org_id:
                    raise _refused(
                        "saml.state_mismatch",
                        "The sign-in state from the browser matches no pending sign-in of "
                        "this organization: it expired, was already used, or the response "
                        "was started in another browser. Start the sign-in again.",
                    )
                request_id = pending.request_id
            self._rt.gate.require(rec.uow, org_id, Capability.SIGN_IN, rec.now)
            policy = self._policy(org_id, current)
            login = validate_response(
                saml_response,
                idp=_idp(current),
                policy=policy,
                now=rec.now,
                request_id=request_id,
                sp_private_keys=decryption_keys,
            )
            try:
                email = normalize_email(login.name_id)
            except InvalidInput:
                raise _refused(
                    "saml.name_id_not_email",
                    f"The NameID {login.name_id[:80]!r} is not an email address. Configure "
                    "the identity provider to send the user's email with the "
                    "emailAddress NameID format.",
                ) from None
            account = rec.uow.accounts.get_by_email(email)
            if account is None or account.managed_by != org_id:
                raise _refused(
                    "saml.unknown_account",
                    f"No managed account of this organization has the email {email!r}; "
                    "create or provision the account first (there is no just-in-time "
                    "creation).",
                )
            if account.status is not AccountStatus.ACTIVE:
                raise _refused(
                    "saml.account_inactive",
                    f"The managed account {email!r} is {account.status.value}; reactivate "
                    "it before it can sign in.",
                )
            record_assertion(rec.uow.saml, login, policy=policy, now=rec.now)
            rec.target_account(account)
            rec.meta(
                idp_entity_id=login.issuer,
                initiated_by="sp" if request_id is not None else "idp",
            )
            return LoginResult(
                account_id=account.id,
                name_id=login.name_id,
                session_index=login.session_index,
                authn_instant=login.authn_instant,
                session_not_on_or_after=login.session_not_on_or_after,
                relay_state=pending.relay_state if pending is not None else None,
            )

        return self._rt.run(
            scope=org_id,
            action="saml.login_succeeded",
            failure_action="saml.login_failed",
            actor=actor,
            ctx=ctx,
            body=body,
        )

    # -- discovery and troubleshooting ---------------------------------------------------

    def home_realm(self, email: str) -> HomeRealm | None:
        """The organization that manages ``email``'s account and where its sign-in
        starts; ``None`` when the account is not managed by an organization with SAML
        configured (the host then offers its own sign-in)."""
        try:
            normalized = normalize_email(email)
        except InvalidInput:
            return None
        with self._rt.store.transaction() as uow:
            account = uow.accounts.get_by_email(normalized)
            if account is None or account.managed_by is None:
                return None
            if account.status is not AccountStatus.ACTIVE:
                return None
            if uow.saml.get_config(account.managed_by) is None:
                return None
            return HomeRealm(account.managed_by, self.login_url(account.managed_by))

    def recent_failures(
        self,
        actor: Actor,
        org_id: str,
        limit: int = 50,
        *,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> list[LoginFailure]:
        """The organization's most recent sign-in failures with their codes, newest
        first: a query of the audit log (admins and audit log admins; the read is
        recorded as ``audit.read``)."""
        page = self._audit.query(
            actor,
            org_id,
            actions=("saml.login_failed",),
            outcome=Outcome.FAILURE,
            limit=limit,
            ctx=ctx,
        )
        failures = []
        for entry in page.entries:
            repeats = entry.metadata.get("repeats_not_recorded", 0)
            failures.append(
                LoginFailure(
                    occurred_at=entry.occurred_at,
                    error_code=str(entry.metadata.get("error_code")),
                    repeats_not_recorded=repeats if isinstance(repeats, int) else 0,
                    ip=entry.ip,
                )
            )
        return failures

    # -- metadata URL refresh (see nulabpass._saml_refresh) -------------------------------

    @property
    def metadata_fetcher(self) -> MetadataFetcher:
        """The fetcher that downloads IdP metadata (``HttpsMetadataFetcher`` by default)."""
        return self._metadata.fetcher

    def set_metadata_url(
        self,
        actor: Actor,
        org_id: str,
        url: str,
        *,
        refresh_interval: timedelta = DEFAULT_REFRESH_INTERVAL,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> MetadataStatus:
        """Fetch the organization's IdP metadata from ``url`` (``https://``) every
        ``refresh_interval`` (1 hour to 30 days; 24 hours by default); admins, with the
        plan's SSO entitlement, once SAML is configured. The first refresh is due at once.
        Audited as ``saml.metadata_url_set``; ``saml.metadata_url_invalid`` otherwise."""
        return self._metadata.set_url(
            actor, org_id, url, refresh_interval=refresh_interval, ctx=ctx
        )

    def clear_metadata_url(
        self, actor: Actor, org_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> None:
        """Stop refreshing from the metadata URL (the configuration in force stays; a
        pending document is discarded). Audited as ``saml.metadata_url_cleared``."""
        self._metadata.clear_url(actor, org_id, ctx=ctx)

    def metadata_status(self, org_id: str) -> MetadataStatus | None:
        """The metadata URL, its schedule, the last outcome and any document waiting for
        approval; ``None`` without a URL."""
        return self._metadata.status(org_id)

    def refresh_metadata(
        self,
        org_id: str,
        *,
        actor: Actor | None = None,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> MetadataRefresh:
        """Fetch the metadata now and apply it, hold it for approval, or leave things as
        they are (see ``docs/saml-login.md``, "Metadata refresh"). ``actor`` defaults to
        the system; an account must be an admin. Raises the fetch or validation error
        (``saml.fetch_*``, ``saml.metadata_invalid``) after recording it, and
        ``rate_limit.exceeded`` after 10 refreshes of one organization within an hour
        (each is a request to a server outside; the scheduler's are not counted)."""
        return self._metadata.refresh(org_id, actor=actor, ctx=ctx)

    def refresh_due(
        self, now: datetime | None = None, *, limit: int | None = None, concurrency: int = 8
    ) -> RefreshReport:
        """Refresh every organization whose metadata is due (for a scheduler); each
        outcome is recorded on its own, failures back off. Up to ``concurrency``
        documents (1 to 64) are downloaded at once; they are applied one at a time."""
        return self._metadata.refresh_due(now, limit=limit, concurrency=concurrency)

    def approve_pending_metadata(
        self,
        actor: Actor,
        org_id: str,
        *,
        sha256: str,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> SamlConfiguration:
        """Apply the document waiting for approval, named by its SHA-256 (from
        :meth:`metadata_status`), so that what was reviewed is what gets applied
        (``saml.metadata_pending_changed`` otherwise). Audited as
        ``saml.metadata_approved``."""
        return self._metadata.approve(actor, org_id, sha256=sha256, ctx=ctx)

    def reject_pending_metadata(
        self,
        actor: Actor,
        org_id: str,
        *,
        sha256: str,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> None:
        """Discard the document waiting for approval; the same document is not proposed
        again. Audited as ``saml.metadata_rejected``."""
        self._metadata.reject(actor, org_id, sha256=sha256, ctx=ctx)

    # -- certificate health (see nulabpass._saml_health) ----------------------------------

    def certificate_health(
        self, org_id: str, *, within: timedelta = DEFAULT_WINDOW
    ) -> list[CertificateHealth]:
        """The organization's IdP signing and SP certificates that expire within
        ``within`` (30 days by default) or have expired, soonest first."""
        return self._health.for_org(org_id, within=within)

    def expiring_certificates(
        self, *, within: timedelta = DEFAULT_WINDOW
    ) -> list[CertificateHealth]:
        """For operators: every organization's certificates that expire within
        ``within`` or have expired, soonest first."""
        return self._health.host_wide(within=within)
