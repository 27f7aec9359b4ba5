"""The SCIM service provider: ``handle(request) -> response``, and SCIM tokens.

Theory of operation
-------------------
:meth:`ScimAPI.handle` takes a framework-neutral :class:`ScimRequest` (method, path
below the mount point, query string, headers, body bytes) and returns a
:class:`ScimResponse`. It authenticates the bearer token (hash lookup, constant-time
compare, failed attempts counted by the :class:`~nulabpass.ports.RateLimiter`), refuses
oversized bodies before parsing them, routes, and turns every error into an RFC 7644
§3.12 error response. Each change runs as one use case through
:meth:`~nulabpass._runtime.Runtime.run` with ``Actor.scim_token(token_id)``: one
transaction, one audit event shown as "User provisioning".

A read authenticates and answers in one transaction, reading the token with its
organization's provisioning facts (organization, domains, plan). A change with a token
this process has seen authenticate is answered in one transaction too: the token is
read again, with those facts, inside the change's transaction, and when it no longer
holds (revoked, or its use due to be recorded) or the answer came before that check,
the request is authenticated on its own first and answered again, exactly as a token
never seen would be.

Scope: only accounts managed by the token's organization are visible or changed. A
userName must be an email on a verified domain of the organization. A create for an
email that belongs to a non-managed account starts the consent conversion and answers
409 ``uniqueness``; a create for a managed account of the organization that SCIM has not
seen yet adopts it. SCIM never grants plan admin or audit log admin; it sets the admin
role from ``roles`` (a value ``admin``) or ``userType`` ``admin`` only when the
organization turned role sync on, and users it creates join the organization's default
SCIM team when one is set.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

import attrs

from nulabpass._context import Actor, RequestContext
from nulabpass._gate import Capability
from nulabpass._ids import new_id
from nulabpass._runtime import Recorder, Runtime
from nulabpass._tokens import derive_token, hash_token, new_nonce, split_token, token_matches
from nulabpass.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    NulabPassError,
    PermissionDenied,
    PlanRequired,
    StaleWrite,
)
from nulabpass.org._email import domain_of, normalize_email
from nulabpass.org._model import (
    Account,
    AccountStatus,
    ConversionRequest,
    ConversionStatus,
    Domain,
    Membership,
    Organization,
    Role,
    Team,
    TeamMember,
)
from nulabpass.org._permissions import Permission
from nulabpass.org._validate import check_language, check_name, check_timezone
from nulabpass.plans import PlanRecord, derive_state
from nulabpass.plans import require as require_entitlement
from nulabpass.ports import RateLimiter, StoredPlan, UnitOfWork
from nulabpass.scim._errors import ScimError, invalid_syntax, invalid_value
from nulabpass.scim._evaluate import check_filter, check_sort
from nulabpass.scim._filter import parse_filter
from nulabpass.scim._mapping import (
    GroupInput,
    UserInput,
    parse_group,
    parse_user,
    project,
    render_group,
    render_user,
)
from nulabpass.scim._model import (
    ScimGroupRow,
    ScimProfile,
    ScimToken,
    ScimTombstone,
    ScimUserRow,
)
from nulabpass.scim._patch import (
    PatchOperation,
    apply_patch,
    only_active,
    parse_patch,
    plan_group_patch,
)
from nulabpass.scim._query import ScimQuery, group_etag, user_etag, user_view
from nulabpass.scim._schema import (
    GROUP_RESOURCE,
    LIST_RESPONSE,
    RESOURCES,
    SCHEMAS,
    SEARCH_REQUEST,
    USER_RESOURCE,
    ResourceSchema,
    service_provider_config,
)

__all__ = ["ScimAPI", "ScimRequest", "ScimResponse", "ScimTokensAPI"]

T = TypeVar("T")
Json = dict[str, Any]
#: An organization, its domains and its plan (``ScimRepository.provisioning_facts``).
_Facts = tuple[Organization | None, list[Domain], StoredPlan | None]

_DEFAULT_CTX = RequestContext()
_CONTENT_TYPE = "application/scim+json"
#: Failed authentications allowed per client address and minute before 429.
AUTH_FAILURE_LIMIT = 20
#: Tokens remembered per ``ScimAPI`` for answering changes on trust (then forgotten).
_KNOWN_TOKENS = 1024
#: A token's ``last_used_at`` is kept to within this much of its latest use.
TOKEN_USE_PRECISION = timedelta(minutes=1)


@attrs.frozen(slots=True)
class ScimRequest:
    """One HTTP request to the SCIM endpoints.

    ``path`` is below the mount point (``/Users/acc_1``); ``base_url`` is the absolute
    URL of the mount point, used in ``meta.location``.
    """

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    base_url: str = ""
    ip: str | None = None
    user_agent: str | None = None

    def header(self, name: str) -> str | None:
        """A header's value, by case-insensitive name."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@attrs.frozen(slots=True)
class ScimResponse:
    """The response: status, headers and body bytes."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def json(self) -> Any:
        """The body decoded as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        """A header's value, by case-insensitive name."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def _json_response(
    status: int, doc: object, extra: Sequence[tuple[str, str]] = ()
) -> ScimResponse:
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return ScimResponse(status, (("Content-Type", _CONTENT_TYPE), *extra), body)


def _error(exc: ScimError, extra: Sequence[tuple[str, str]] = ()) -> ScimResponse:
    return _json_response(exc.status, exc.to_json(), extra)


def _etag_matches(header: str, etag: str) -> bool:
    def strip(tag: str) -> str:
        tag = tag.strip()
        return tag[2:] if tag.startswith("W/") else tag

    wanted = strip(etag)
    return any(part.strip() == "*" or strip(part) == wanted for part in header.split(","))


@attrs.frozen(slots=True)
class _Auth:
    token_id: str
    org_id: str

    @property
    def actor(self) -> Actor:
        return Actor.scim_token(self.token_id)


@attrs.frozen(slots=True)
class _ListParams:
    filter_text: str | None
    sort_by: str | None
    descending: bool
    start_index: int
    count: int
    attributes: tuple[str, ...]
    excluded: tuple[str, ...]


def _split_names(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if str(v).strip())
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    raise invalid_value("attributes and excludedAttributes must be lists of attribute names.")


def _int(value: object, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise invalid_value(f"{name} must be an integer.")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 12:
        return int(value.strip())
    raise invalid_value(f"{name} must be an integer.")


class ScimTokensAPI:
    """Per-organization SCIM bearer tokens: created (shown once), listed, rotated and
    revoked by admins. Only a SHA-256 hash of each token is stored."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def _issue(self, rec: Recorder, org_id: str, name: str) -> tuple[ScimToken, str]:
        token_id = new_id("sct")
        secret = f"{token_id}.{secrets.token_urlsafe(32)}"
        token = ScimToken(
            id=token_id,
            org_id=org_id,
            name=name,
            secret_hash=hash_token(secret),
            created_at=rec.now,
            created_by=rec.actor.id,
        )
        rec.uow.scim.add_token(token)
        rec.target("scim_token", token_id)
        rec.meta(token_id=token_id, name=name)
        return token, secret

    def _authorize(self, rec: Recorder, org_id: str) -> None:
        if rec.uow.organizations.get(org_id) is None:
            raise NotFound(f"There is no organization {org_id!r}.", code="organization.not_found")
        rec.require(Permission.MANAGE_SCIM_TOKENS)
        self._rt.gate.require(rec.uow, org_id, Capability.CONFIGURE_SSO, rec.now)

    def create(
        self, actor: Actor, org_id: str, name: str = "SCIM", *, ctx: RequestContext = _DEFAULT_CTX
    ) -> tuple[ScimToken, str]:
        """Create a token; returns it and its secret, which is shown only now."""
        label = check_name(name, field="token name", code="scim.invalid_token_name")

        def body(rec: Recorder) -> tuple[ScimToken, str]:
            self._authorize(rec, org_id)
            return self._issue(rec, org_id, label)

        return self._rt.run(
            scope=org_id, action="scim.token_created", actor=actor, ctx=ctx, body=body
        )

    def list(self, actor: Actor, org_id: str) -> list[ScimToken]:
        """The organization's tokens (revoked ones too), oldest first, each with when it
        was last used (``last_used_at``, to within a minute); no secrets."""

        def body(rec: Recorder) -> list[ScimToken]:
            rec.require(Permission.MANAGE_SCIM_TOKENS, org_id)
            return rec.uow.scim.list_tokens(org_id)

        with self._rt.store.transaction() as uow:
            rec = Recorder(uow, self._rt.now(), actor, _DEFAULT_CTX, org_id)
            return body(rec)

    def _active(self, rec: Recorder, org_id: str, token_id: str) -> ScimToken:
        token = rec.uow.scim.get_token(token_id)
        if token is None or token.org_id != org_id:
            raise NotFound(
                f"Organization {org_id!r} has no SCIM token {token_id!r}.",
                code="scim.token_not_found",
            )
        if not token.active:
            raise Conflict("The SCIM token is already revoked.", code="scim.token_revoked")
        return token

    def rotate(
        self, actor: Actor, org_id: str, token_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> tuple[ScimToken, str]:
        """Revoke a token and issue its replacement under the same name."""

        def body(rec: Recorder) -> tuple[ScimToken, str]:
            self._authorize(rec, org_id)
            old = self._active(rec, org_id, token_id)
            rec.uow.scim.update_token(attrs.evolve(old, revoked_at=rec.now))
            new, secret = self._issue(rec, org_id, old.name)
            rec.meta(replaces=old.id)
            return new, secret

        return self._rt.run(
            scope=org_id, action="scim.token_rotated", actor=actor, ctx=ctx, body=body
        )

    def revoke(
        self, actor: Actor, org_id: str, token_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> ScimToken:
        """Revoke a token: it stops authenticating at once."""

        def body(rec: Recorder) -> ScimToken:
            self._authorize(rec, org_id)
            token = self._active(rec, org_id, token_id)
            rec.target("scim_token", token_id)
            rec.meta(token_id=token_id)
            return rec.uow.scim.update_token(attrs.evolve(token, revoked_at=rec.now))

        return self._rt.run(
            scope=org_id, action="scim.token_revoked", actor=actor, ctx=ctx, body=body
        )


class ScimAPI:
    """SCIM 2.0 service provider for every organization (``np.scim``)."""

    def __init__(
        self,
        rt: Runtime,
        rate_limiter: RateLimiter,
        *,
        max_body_bytes: int = 1_000_000,
        max_results: int = 200,
    ) -> None:
        self._rt = rt
        self._limiter = rate_limiter
        self.tokens = ScimTokensAPI(rt)
        self.max_body_bytes = max_body_bytes
        self.max_results = max_results
        #: The unit of work of the read being answered on this thread, if any.
        self._reading = threading.local()
        #: Tokens seen to authenticate: id -> (organization id, secret hash), facts that
        #: never change for a token (see ``_answer_on_trust``).
        self._known: dict[str, tuple[str, str]] = {}

    # -- entry point -----------------------------------------------------------------

    def handle(self, request: ScimRequest) -> ScimResponse:
        """Answer one SCIM request."""
        if request.method.upper() == "GET":
            # A read authenticates and answers in one transaction.
            with self._rt.store.transaction() as uow:
                found = self._token(uow, request, with_facts=True)
                if found is not None:
                    token, facts = found
                    self._reading.uow = uow
                    # Read with the token: the readiness checks of this read use them.
                    self._reading.facts = (token.org_id, facts, uow)
                    try:
                        return self._answer(_Auth(token.id, token.org_id), request)
                    finally:
                        self._reading.uow = None
                        self._reading.facts = None
        answered = self._answer_on_trust(request)
        if answered is not None:
            return answered
        try:
            auth = self._authenticate(request)
        except ScimError as exc:
            extra = (("WWW-Authenticate", 'Bearer realm="SCIM"'),) if exc.status == 401 else ()
            return _error(exc, extra)
        return self._answer(auth, request)

    def _answer_on_trust(self, request: ScimRequest) -> ScimResponse | None:
        """Answer a change whose token this process has seen, checking the token inside
        the change's own transaction rather than in one of its own; ``None`` when the
        request must be authenticated first.

        The token's organization and secret hash never change, so a remembered pair
        tells which organization to lock; whether the token still exists, is active and
        has a recent use recorded is read in the transaction (with the organization's
        provisioning facts). A token found wanting there, and any answer reached before
        that check (a refused body, a search), is discarded: the request is then
        authenticated on its own first, as without the shortcut, so it gets the same
        answer, rate limiting and failure records."""
        found = self._bearer(request)
        if found is None:
            return None
        secret, token_id = found
        known = self._known.get(token_id)
        if known is None or not token_matches(secret, known[1]):
            return None
        pending = _Pending(token_id, known[0], known[1])
        self._reading.pending = pending
        try:
            response = self._answer(_Auth(token_id, known[0]), request)
        except _Unverified:
            return None
        finally:
            self._reading.pending = None
            self._reading.facts = None
        return response if pending.verified else None

    def _confirm(self, rec: Recorder, pending: _Pending) -> None:
        """Check, in the change's transaction, the token a request was answered on trust
        with; raise ``_Unverified`` (which records no failure) when it does not hold."""
        found = rec.uow.scim.token_and_facts(pending.token_id)
        if found is None:
            raise _Unverified
        token, facts = found
        stale = token.last_used_at is None or (rec.now - token.last_used_at >= TOKEN_USE_PRECISION)
        if (
            token.org_id != pending.org_id
            or token.secret_hash != pending.secret_hash
            or not token.active
            or stale
        ):
            # A stale use is recorded by authenticating on its own, so that it stays
            # recorded when the change fails.
            raise _Unverified
        pending.verified = True
        self._reading.facts = (pending.org_id, facts, rec.uow)

    def _answer(self, auth: _Auth, request: ScimRequest) -> ScimResponse:
        try:
            if len(request.body) > self.max_body_bytes:
                raise ScimError(
                    f"The request body is larger than {self.max_body_bytes} bytes.", status=413
                )
            return self._route(auth, request)
        except ScimError as exc:
            return _error(exc)
        except NulabPassError as exc:
            return _error(_translate(exc))

    # -- authentication --------------------------------------------------------------

    def _token(
        self, uow: UnitOfWork, request: ScimRequest, *, with_facts: bool = False
    ) -> tuple[ScimToken, _Facts | None] | None:
        """The active token the request's bearer secret matches, or ``None``; with
        ``with_facts``, the provisioning facts of its organization too, read with it.

        A matching token's ``last_used_at`` is brought up to date when it is older than
        :data:`TOKEN_USE_PRECISION`: at most one write per token a minute, not one per
        request."""
        bearer = self._bearer(request)
        if bearer is None:
            return None
        secret, token_id = bearer
        facts: _Facts | None = None
        if with_facts:
            found = uow.scim.token_and_facts(token_id)
            token, facts = (None, None) if found is None else found
        else:
            token = uow.scim.get_token(token_id)
        if token is None or not token.active:
            self._known.pop(token_id, None)
            return None
        if not token_matches(secret, token.secret_hash):
            return None
        if len(self._known) >= _KNOWN_TOKENS:
            self._known.clear()
        self._known[token.id] = (token.org_id, token.secret_hash)
        now = self._rt.now()
        if token.last_used_at is None or now - token.last_used_at >= TOKEN_USE_PRECISION:
            uow.scim.record_token_use(token.id, now, stale_before=now - TOKEN_USE_PRECISION)
        return token, facts

    @staticmethod
    def _bearer(request: ScimRequest) -> tuple[str, str] | None:
        """The bearer secret of the request and the token id it names, or ``None``."""
        header = request.header("Authorization") or ""
        scheme, _, secret = header.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            return None
        token_id = split_token(secret)
        return None if token_id is None else (secret, token_id)

    def _authenticate(self, request: ScimRequest) -> _Auth:
        with self._rt.store.transaction() as uow:
            found = self._token(uow, request)
        if found is not None:
            return _Auth(found[0].id, found[0].org_id)
        key = f"scim.auth:{request.ip or 'unknown'}"
        decision = self._limiter.acquire(
            key, self._rt.now(), limit=AUTH_FAILURE_LIMIT, window=timedelta(minutes=1)
        )
        if not decision.allowed:
            raise ScimError(
                "Too many failed authentication attempts; try again later.", status=429
            )
        raise ScimError(
            "A valid SCIM bearer token is required (Authorization: Bearer <token>).", status=401
        )

    # -- routing ---------------------------------------------------------------------

    def _route(self, auth: _Auth, req: ScimRequest) -> ScimResponse:
        parts = [unquote(p) for p in req.path.strip("/").split("/") if p]
        method = req.method.upper()
        base = req.base_url.rstrip("/")
        if not parts:
            raise ScimError("Not found.", status=404)
        head = parts[0].lower()
        if head in {"serviceproviderconfig", "resourcetypes", "schemas"}:
            if method != "GET":
                raise ScimError(f"{method} is not allowed here.", status=405)
            return self._discovery(head, parts[1:], base)
        if head == ".search" and len(parts) == 1:
            if method != "POST":
                raise ScimError("Use POST for .search.", status=405)
            return self._search_all(auth, self._search_params(req), base)
        if head == "bulk":
            raise ScimError("Bulk operations are not supported.", status=501)
        resource = {"users": USER_RESOURCE, "groups": GROUP_RESOURCE}.get(head)
        if resource is None or len(parts) > 2:
            raise ScimError(f"There is no endpoint {req.path}.", status=404)
        if len(parts) == 2 and parts[1].lower() == ".search":
            if method != "POST":
                raise ScimError("Use POST for .search.", status=405)
            return self._list(auth, resource, self._search_params(req), base)
        if len(parts) == 1:
            if method == "GET":
                return self._list(auth, resource, self._query_params(req), base)
            if method == "POST":
                return self._create(auth, resource, req, base)
            raise ScimError(f"{method} is not allowed on {resource.endpoint}.", status=405)
        ident = parts[1]
        if method == "GET":
            return self._get(auth, resource, ident, req, base)
        if method == "PUT":
            return self._replace(auth, resource, ident, req, base)
        if method == "PATCH":
            return self._patch(auth, resource, ident, req, base)
        if method == "DELETE":
            return self._delete(auth, resource, ident, req)
        raise ScimError(f"{method} is not allowed on {resource.endpoint}/<id>.", status=405)

    def _discovery(self, head: str, rest: list[str], base: str) -> ScimResponse:
        if head == "serviceproviderconfig":
            if rest:
                raise ScimError("Not found.", status=404)
            return _json_response(200, service_provider_config(base, max_results=self.max_results))
        if head == "resourcetypes":
            docs = [r.resource_type_json(base) for r in RESOURCES]
            if rest:
                for r, doc in zip(RESOURCES, docs, strict=True):
                    if r.name.lower() == rest[0].lower():
                        return _json_response(200, doc)
                raise ScimError(f"There is no resource type {rest[0]}.", status=404)
            return _json_response(200, _list_doc(docs, len(docs), 1))
        docs_by_id = {urn: schema.to_json(base) for urn, schema in SCHEMAS.items()}
        if rest:
            wanted = "/".join(rest)
            for urn, doc in docs_by_id.items():
                if urn.lower() == wanted.lower():
                    return _json_response(200, doc)
            raise ScimError(f"There is no schema {wanted}.", status=404)
        docs = list(docs_by_id.values())
        return _json_response(200, _list_doc(docs, len(docs), 1))

    # -- shared checks ----------------------------------------------------------------

    def _ready(
        self,
        uow: UnitOfWork,
        org_id: str,
        now: Any,
        *,
        adding: int = 0,
        writing: bool = True,
        org: Organization | None = None,
    ) -> Organization:
        return self._ready_domains(uow, org_id, now, adding=adding, writing=writing, org=org)[0]

    def _ready_domains(
        self,
        uow: UnitOfWork,
        org_id: str,
        now: Any,
        *,
        adding: int = 0,
        writing: bool = True,
        org: Organization | None = None,
    ) -> tuple[Organization, list[Domain]]:
        """Check the organization can provision now; return it and its domains.

        ``org``: the organization as the running use case already locked it. The
        organization, its domains and its plan are read in one go."""
        found, domains, stored = self._facts(uow, org_id)
        if org is None or org.id != org_id:
            org = found
        if org is None:
            raise ScimError("The token's organization no longer exists.", status=401)
        if org.saml_configured_at is None:
            raise ScimError(
                f"Organization {org.name!r} has not configured SAML single sign-on; "
                "provisioning starts once SAML is configured.",
                status=403,
            )
        if not any(d.covers(d.name) for d in domains):
            raise ScimError(
                f"Organization {org.name!r} has no verified email domain; verify the "
                "domain of its users before provisioning them.",
                status=403,
            )
        record = stored.record if stored is not None else PlanRecord()
        if writing:
            self._rt.gate.require(
                uow, org_id, Capability.MANAGE_ACCOUNTS, now, adding=adding, record=record
            )
        else:
            # Reads need the plan's entitlement but not the seat count (a count query).
            state = derive_state(record, now)
            require_entitlement(state, Capability.MANAGE_ACCOUNTS, managed_count=0, seats=None)
        return org, domains

    def _facts(self, uow: UnitOfWork, org_id: str) -> _Facts:
        """The organization's provisioning facts: those read with the token in this
        unit of work when there are, otherwise read now."""
        known: tuple[str, _Facts, UnitOfWork] | None = getattr(self._reading, "facts", None)
        if known is not None and known[0] == org_id and known[2] is uow:
            return known[1]
        return uow.scim.provisioning_facts(org_id)

    def _ready_rec(
        self, rec: Recorder, auth: _Auth, *, adding: int = 0
    ) -> tuple[Organization, list[Domain]]:
        return self._ready_domains(rec.uow, auth.org_id, rec.now, adding=adding, org=rec.org)

    @staticmethod
    def _check_domain(
        uow: UnitOfWork, org: Organization, email: str, domains: Sequence[Domain] | None = None
    ) -> None:
        domain = domain_of(email)
        known = uow.domains.list_for_org(org.id) if domains is None else domains
        if not any(d.covers(domain) for d in known):
            raise invalid_value(
                f"userName {email} is not on a verified domain of organization "
                f"{org.name!r}; verify {domain} first or use an address on a verified domain."
            )

    def _body(self, req: ScimRequest) -> Any:
        try:
            return json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise invalid_syntax("The request body is not valid JSON.") from None

    def _ctx(self, req: ScimRequest) -> RequestContext:
        return RequestContext(
            ip=req.ip[:64] if req.ip else None,
            user_agent=req.user_agent[:1024] if req.user_agent else None,
        )

    def _read(self, fn: Callable[[UnitOfWork], T]) -> T:
        current: UnitOfWork | None = getattr(self._reading, "uow", None)
        if current is not None:
            return fn(current)
        pending: _Pending | None = getattr(self._reading, "pending", None)
        if pending is not None and not pending.verified:
            raise _Unverified
        with self._rt.store.transaction() as uow:
            return fn(uow)

    # -- list and search -----------------------------------------------------------------

    def _query_params(self, req: ScimRequest) -> _ListParams:
        raw = parse_qs(req.query, keep_blank_values=True)

        def one(name: str) -> str | None:
            for key, values in raw.items():
                if key.lower() == name.lower():
                    return values[-1]
            return None

        return self._params(
            one("filter"),
            one("sortBy"),
            one("sortOrder"),
            one("startIndex"),
            one("count"),
            one("attributes"),
            one("excludedAttributes"),
        )

    def _search_params(self, req: ScimRequest) -> _ListParams:
        body = self._body(req)
        if not isinstance(body, dict):
            raise invalid_syntax("A search body must be a SearchRequest object.")
        d = {k.lower(): v for k, v in body.items() if isinstance(k, str)}
        schemas = d.get("schemas")
        if schemas is not None and (
            not isinstance(schemas, list) or SEARCH_REQUEST not in schemas
        ):
            raise invalid_syntax(f"A search body must list the schema {SEARCH_REQUEST}.")
        return self._params(
            d.get("filter"),
            d.get("sortby"),
            d.get("sortorder"),
            d.get("startindex"),
            d.get("count"),
            d.get("attributes"),
            d.get("excludedattributes"),
        )

    def _params(
        self,
        filter_text: object,
        sort_by: object,
        sort_order: object,
        start: object,
        count: object,
        attributes: object,
        excluded: object,
    ) -> _ListParams:
        if filter_text is not None and not isinstance(filter_text, str):
            raise ScimError("filter must be a string.", status=400, scim_type="invalidFilter")
        if sort_by is not None and not isinstance(sort_by, str):
            raise invalid_value("sortBy must be an attribute name.")
        order = (sort_order or "ascending") if isinstance(sort_order, str | None) else None
        if order is None or order.lower() not in {"ascending", "descending"}:
            raise invalid_value("sortOrder must be ascending or descending.")
        start_index = max(_int(start, "startIndex", 1), 1)
        wanted = _int(count, "count", self.max_results)
        return _ListParams(
            filter_text if filter_text else None,
            sort_by or None,
            order.lower() == "descending",
            start_index,
            min(max(wanted, 0), self.max_results),
            _split_names(attributes),
            _split_names(excluded),
        )

    def _list(
        self, auth: _Auth, resource: ResourceSchema, params: _ListParams, base: str
    ) -> ScimResponse:
        flt = (
            check_filter(parse_filter(params.filter_text), resource)
            if params.filter_text
            else None
        )
        sort = check_sort(params.sort_by, resource) if params.sort_by else None
        query = ScimQuery(
            auth.org_id, flt, sort, params.descending, params.start_index, params.count
        )

        def read(uow: UnitOfWork) -> tuple[int, list[Json]]:
            self._ready(uow, auth.org_id, self._rt.now(), writing=False)
            docs: list[Json | None]
            if resource is USER_RESOURCE:
                page = uow.scim.query_users(query)
                docs = list(self._user_docs(uow, auth.org_id, page.ids, base, params.excluded))
            else:
                page = uow.scim.query_groups(query)
                docs = [
                    self._group_doc(uow, auth.org_id, ident, base, params) for ident in page.ids
                ]
            return page.total, [d for d in docs if d is not None]

        total, docs = self._read(read)
        shown = [project(d, resource, params.attributes, params.excluded) for d in docs]
        return _json_response(200, _list_doc(shown, total, params.start_index))

    def _search_all(self, auth: _Auth, params: _ListParams, base: str) -> ScimResponse:
        """A search at the root: Users, then Groups, for those the filter applies to."""
        plans: list[tuple[ResourceSchema, ScimQuery]] = []
        first_error: ScimError | None = None
        for resource in RESOURCES:
            try:
                flt = (
                    check_filter(parse_filter(params.filter_text), resource)
                    if params.filter_text
                    else None
                )
                sort = check_sort(params.sort_by, resource) if params.sort_by else None
            except ScimError as exc:
                first_error = first_error or exc
                continue
            plans.append((resource, ScimQuery(auth.org_id, flt, sort, params.descending, 1, 0)))
        if not plans:
            assert first_error is not None  # noqa: S101 - every resource refused the query
            raise first_error

        def read(uow: UnitOfWork) -> tuple[int, list[tuple[ResourceSchema, Json]]]:
            self._ready(uow, auth.org_id, self._rt.now(), writing=False)
            total = 0
            skip = params.start_index - 1
            room = params.count
            out: list[tuple[ResourceSchema, Json]] = []
            for resource, counting in plans:
                run = uow.scim.query_users if resource is USER_RESOURCE else uow.scim.query_groups
                found = run(counting).total
                total += found
                if room <= 0 or skip >= found:
                    skip = max(skip - found, 0)
                    continue
                page = run(attrs.evolve(counting, start_index=skip + 1, count=room))
                skip = 0
                if resource is USER_RESOURCE:
                    users = self._user_docs(uow, auth.org_id, page.ids, base, params.excluded)
                    out.extend((resource, doc) for doc in users)
                else:
                    for ident in page.ids:
                        doc = self._group_doc(uow, auth.org_id, ident, base, params)
                        if doc is not None:
                            out.append((resource, doc))
                room -= len(page.ids)
            return total, out

        total, found_docs = self._read(read)
        shown = [project(d, r, params.attributes, params.excluded) for r, d in found_docs]
        return _json_response(200, _list_doc(shown, total, params.start_index))

    # -- documents ----------------------------------------------------------------------

    def _user_docs(
        self,
        uow: UnitOfWork,
        org_id: str,
        account_ids: Sequence[str],
        base: str,
        excluded: Sequence[str] = (),
    ) -> list[Json]:
        loaded = uow.scim.load_users(org_id, account_ids)
        skip_groups = any(x.lower() == "groups" for x in excluded)
        groups = (
            {}
            if skip_groups or not loaded
            else uow.scim.groups_by_account(org_id, [acc.id for acc, _ in loaded])
        )
        return [
            render_user(
                user_view(account, row),
                row.profile,
                base,
                [(team.id, team.name) for team in groups.get(account.id, [])],
            )
            for account, row in loaded
        ]

    def _user_doc(
        self,
        uow: UnitOfWork,
        org_id: str,
        account_id: str,
        base: str,
        excluded: Sequence[str] = (),
    ) -> Json | None:
        loaded = uow.scim.load_users(org_id, [account_id])
        if not loaded:
            return None
        account, row = loaded[0]
        skip_groups = any(x.lower() == "groups" for x in excluded)
        groups = (
            [] if skip_groups else [(t.id, t.name) for t in uow.scim.groups_of(org_id, account_id)]
        )
        return render_user(user_view(account, row), row.profile, base, groups)

    def _group_doc(
        self,
        uow: UnitOfWork,
        org_id: str,
        team_id: str,
        base: str,
        params: _ListParams | None = None,
    ) -> Json | None:
        team = uow.teams.get(team_id)
        if team is None or team.org_id != org_id:
            return None
        row = uow.scim.get_group(team_id)
        skip = params is not None and (
            any(x.lower() == "members" for x in params.excluded)
            or (
                params.attributes
                and not any(x.lower().startswith("members") for x in params.attributes)
            )
        )
        members = (
            None
            if skip
            else [(a.id, a.display_name) for a in uow.scim.managed_members(org_id, team_id)]
        )
        return render_group(
            group_id=team.id,
            display_name=team.name,
            external_id=row.external_id if row else None,
            members=members,
            created_at=row.created_at if row else team.created_at,
            updated_at=team.updated_at,
            version=group_etag(team),
            base_url=base,
        )

    def _single(
        self, status: int, doc: Json, resource: ResourceSchema, req: ScimRequest
    ) -> ScimResponse:
        params = self._query_params(req) if req.query else None
        shown = project(doc, resource, params.attributes, params.excluded) if params else doc
        meta = doc.get("meta") or {}
        extra = [("ETag", str(meta.get("version")))]
        if status == 201:
            extra.append(("Location", str(meta.get("location"))))
        return _json_response(status, shown, extra)

    # -- GET -------------------------------------------------------------------------------

    def _get(
        self, auth: _Auth, resource: ResourceSchema, ident: str, req: ScimRequest, base: str
    ) -> ScimResponse:
        def read(uow: UnitOfWork) -> Json | None:
            self._ready(uow, auth.org_id, self._rt.now(), writing=False)
            if resource is USER_RESOURCE:
                return self._user_doc(uow, auth.org_id, ident, base)
            return self._group_doc(uow, auth.org_id, ident, base)

        doc = self._read(read)
        if doc is None:
            raise _not_found(resource, ident)
        etag = str(doc["meta"]["version"])
        none_match = req.header("If-None-Match")
        if none_match and _etag_matches(none_match, etag):
            return ScimResponse(304, (("ETag", etag),))
        return self._single(200, doc, resource, req)

    # -- Users: create, replace, patch, delete --------------------------------------------

    def _account_fields(self, inp: UserInput) -> tuple[str, str, str | None, str | None]:
        p = inp.profile
        try:
            email = normalize_email(p.user_name)
        except InvalidInput:
            raise invalid_value(f"userName {p.user_name!r} must be an email address.") from None
        name = (
            p.display_name
            or p.formatted
            or " ".join(x for x in (p.given_name, p.family_name) if x)
            or email.partition("@")[0]
        )
        try:
            display = check_name(name, field="displayName", code="scim.invalid_name")
            lang = check_language(p.preferred_language) if p.preferred_language else None
            tz = check_timezone(p.timezone) if p.timezone else None
        except InvalidInput as exc:
            raise invalid_value(exc.message) from None
        return email, display, lang, tz

    def _create(
        self, auth: _Auth, resource: ResourceSchema, req: ScimRequest, base: str
    ) -> ScimResponse:
        if resource is GROUP_RESOURCE:
            return self._create_group(auth, req, base)
        inp = parse_user(self._body(req))
        email, display, lang, tz = self._account_fields(inp)

        def body(rec: Recorder) -> Json:
            org, domains = self._ready_rec(rec, auth, adding=1)
            account = rec.uow.accounts.get_by_email(email)
            if account is not None and account.managed_by is None:
                raise _NeedsConversion(account)
            self._check_domain(rec.uow, org, email, domains)
            if account is not None:
                if account.managed_by != org.id:
                    raise ScimError(
                        f"userName {email} belongs to an account this organization does not "
                        "manage.",
                        status=409,
                        scim_type="uniqueness",
                    )
                if rec.uow.scim.get_user(org.id, account.id) is not None:
                    raise ScimError(
                        f"A user with userName {email} already exists.",
                        status=409,
                        scim_type="uniqueness",
                    )
                # A managed account created by an admin: provisioning adopts it.
                account = self._write_account(rec, account, inp, email, display, lang, tz)
                rec.meta(adopted=True)
                adopted = True
            else:
                account = Account(
                    id=new_id("acc"),
                    email=email,
                    display_name=display,
                    language=lang or self._rt.config.default_language,
                    timezone=tz or self._rt.config.default_timezone,
                    status=AccountStatus.ACTIVE if inp.active else AccountStatus.DEACTIVATED,
                    managed_by=org.id,
                    created_at=rec.now,
                    updated_at=rec.now,
                )
                rec.uow.accounts.add(account)
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
                adopted = False
            row = ScimUserRow(org.id, account.id, inp.profile, rec.now, rec.now)
            rec.uow.scim.add_user(row)
            joined = self._join_default_team(rec, org, account.id)
            self._sync_role(rec, org, account.id, inp)
            rec.target_account(account)
            rec.meta(active=inp.active)
            if adopted:
                groups = [(t.id, t.name) for t in rec.uow.scim.groups_of(org.id, account.id)]
            else:
                groups = [(joined.id, joined.name)] if joined is not None else []
            return render_user(user_view(account, row), row.profile, base, groups)

        try:
            doc = self._run(auth, "scim.user_created", req, body)
        except _NeedsConversion as needed:
            return self._convert(auth, needed.account, req)
        return self._single(201, doc, USER_RESOURCE, req)

    def _convert(self, auth: _Auth, account: Account, req: ScimRequest) -> ScimResponse:
        def body(rec: Recorder) -> str:
            org = self._ready(rec.uow, auth.org_id, rec.now, adding=1, org=rec.org)
            current = rec.uow.accounts.get(account.id)
            if current is None or current.managed_by is not None:
                raise ScimError(
                    "The account changed; retry the request.", status=409, scim_type="uniqueness"
                )
            if current.status is not AccountStatus.ACTIVE:
                raise ScimError(
                    f"{current.email} belongs to an inactive account that cannot be converted.",
                    status=409,
                    scim_type="uniqueness",
                )
            self._check_domain(rec.uow, org, current.email)
            if rec.uow.conversions.pending(org.id, current.id) is not None:
                return "pending"
            request_id = new_id("cnv")
            nonce = new_nonce()
            token = derive_token(self._rt.secret_key, "conversion", request_id, nonce)
            conversion = ConversionRequest(
                id=request_id,
                org_id=org.id,
                account_id=current.id,
                token_hash=hash_token(token),
                nonce=nonce,
                status=ConversionStatus.PENDING,
                expires_at=rec.now + self._rt.config.conversion_ttl,
                created_at=rec.now,
                updated_at=rec.now,
            )
            rec.uow.conversions.add(conversion)
            rec.email(
                "conversion_request",
                current,
                f"{request_id}:{nonce}",
                org_name=org.name,
                expires_at=conversion.expires_at.isoformat(),
                token_kind="conversion",  # noqa: S106 - names the token type
                token_record=request_id,
                token_nonce=nonce,
            )
            rec.target_account(current)
            rec.meta(conversion_id=request_id, via="scim")
            return "requested"

        outcome = self._run(auth, "conversion.requested", req, body)
        detail = (
            f"An account with userName {account.email} already exists and is not managed by "
            "this organization. Its owner "
            + ("was asked by email" if outcome == "requested" else "has already been asked")
            + " to let the organization manage it; once they accept, the user becomes "
            "visible here."
        )
        return _error(ScimError(detail, status=409, scim_type="uniqueness"))

    def _write_account(
        self,
        rec: Recorder,
        account: Account,
        inp: UserInput,
        email: str,
        display: str,
        lang: str | None,
        tz: str | None,
    ) -> Account:
        status = account.status
        if not inp.active:
            status = AccountStatus.DEACTIVATED
        elif account.status is AccountStatus.DEACTIVATED:
            status = AccountStatus.ACTIVE
        changed = attrs.evolve(
            account,
            email=email,
            display_name=display,
            language=lang or account.language,
            timezone=tz or account.timezone,
            status=status,
        )
        if changed == account:
            return account
        if email != account.email:
            other = rec.uow.accounts.get_by_email(email)
            if other is not None and other.id != account.id:
                raise ScimError(
                    f"A user with userName {email} already exists.",
                    status=409,
                    scim_type="uniqueness",
                )
        updated = rec.uow.accounts.update(attrs.evolve(changed, updated_at=rec.now))
        if status is AccountStatus.DEACTIVATED and account.status is not AccountStatus.DEACTIVATED:
            rec.emit(
                "account.deactivated", f"{account.id}:{updated.version}", account_id=account.id
            )
        return updated

    @staticmethod
    def _join_default_team(rec: Recorder, org: Organization, account_id: str) -> Team | None:
        """Add the account to the organization's default SCIM team; return the team."""
        team_id = org.settings.scim_default_team_id
        if team_id is None:
            return None
        team = rec.uow.teams.get(team_id)
        if team is None or team.org_id != org.id:
            return None
        if not rec.uow.teams.is_member(team_id, account_id):
            rec.uow.teams.add_member(TeamMember(team_id, account_id, rec.now))
            rec.meta(default_team=team_id)
        return team

    @staticmethod
    def _sync_role(rec: Recorder, org: Organization, account_id: str, inp: UserInput) -> None:
        """With role sync on, a ``roles`` value "admin" or ``userType`` "admin" makes the
        member an admin, and anything else (or neither) a member. Plan admin and audit log
        admin are never touched."""
        if not org.settings.scim_role_sync:
            return
        membership = rec.uow.memberships.get(org.id, account_id)
        if membership is None:
            return
        wanted = Role.ADMIN if inp.wants_admin else Role.MEMBER
        if membership.role is wanted:
            return
        rec.uow.memberships.update(attrs.evolve(membership, role=wanted, updated_at=rec.now))
        rec.meta(role_before=membership.role.value, role_after=wanted.value)

    @staticmethod
    def _user_action(account: Account, new_active: bool) -> str:
        was_active = account.status is not AccountStatus.DEACTIVATED
        if was_active and not new_active:
            return "scim.user_deactivated"
        if new_active and not was_active:
            return "scim.user_reactivated"
        return "scim.user_updated"

    def _load_user(
        self, rec: Recorder, auth: _Auth, ident: str
    ) -> tuple[Organization, Account, ScimUserRow]:
        org = self._ready(rec.uow, auth.org_id, rec.now, org=rec.org)
        account = rec.uow.accounts.get(ident)
        row = rec.uow.scim.get_user(auth.org_id, ident)
        if account is None or row is None or account.managed_by != auth.org_id:
            raise _not_found(USER_RESOURCE, ident)
        return org, account, row

    def _check_if_match(self, req: ScimRequest, etag: str) -> None:
        header = req.header("If-Match")
        if header and not _etag_matches(header, etag):
            raise ScimError(
                f"The resource changed (its version is {etag}); fetch it again and retry.",
                status=412,
            )

    def _update_user(
        self,
        auth: _Auth,
        ident: str,
        req: ScimRequest,
        base: str,
        make: Callable[[ScimProfile, Callable[[], Json]], UserInput],
        active_hint: bool | None,
    ) -> ScimResponse:
        """Replace or patch a User in one transaction; ``make`` gets the stored user's
        profile and its document as a function (a PUT never renders it).

        The audit action depends on the stored status (deactivated, reactivated or
        updated), known only inside the transaction: it is guessed from the request and,
        when the guess is wrong, the transaction is rolled back and run once more."""
        action = "scim.user_deactivated" if active_hint is False else "scim.user_updated"

        def body(rec: Recorder) -> Json:
            org, domains = self._ready_rec(rec, auth)
            loaded = rec.uow.scim.load_users(auth.org_id, [ident])
            if not loaded:
                raise _not_found(USER_RESOURCE, ident)
            account, row = loaded[0]
            self._check_if_match(req, user_etag(account, row))
            inp = make(
                row.profile, lambda: render_user(user_view(account, row), row.profile, base)
            )
            wanted = self._user_action(account, inp.active)
            if wanted != action:
                raise _OtherAction(wanted)
            email, display, lang, tz = self._account_fields(inp)
            self._check_domain(rec.uow, org, email, domains)
            updated = self._write_account(rec, account, inp, email, display, lang, tz)
            self._sync_role(rec, org, account.id, inp)
            if inp.profile != row.profile or updated.version != account.version:
                row = rec.uow.scim.update_user(
                    attrs.evolve(row, profile=inp.profile, updated_at=rec.now),
                    emails_changed=inp.profile.emails != row.profile.emails,
                )
            rec.target_account(updated)
            rec.meta(active=inp.active)
            groups = [(t.id, t.name) for t in rec.uow.scim.groups_of(auth.org_id, ident)]
            return render_user(user_view(updated, row), row.profile, base, groups)

        try:
            doc = self._run(auth, action, req, body)
        except _OtherAction as other:
            action = other.action
            doc = self._run(auth, action, req, body)
        return self._single(200, doc, USER_RESOURCE, req)

    def _replace(
        self, auth: _Auth, resource: ResourceSchema, ident: str, req: ScimRequest, base: str
    ) -> ScimResponse:
        if resource is GROUP_RESOURCE:
            return self._replace_group(auth, ident, req, base)
        inp = parse_user(self._body(req))
        return self._update_user(auth, ident, req, base, lambda _stored, _doc: inp, inp.active)

    def _patch(
        self, auth: _Auth, resource: ResourceSchema, ident: str, req: ScimRequest, base: str
    ) -> ScimResponse:
        ops = parse_patch(self._body(req))
        if resource is GROUP_RESOURCE:
            return self._patch_group(auth, ident, req, base, ops)

        active = only_active(ops)

        def make(stored: ScimProfile, current: Callable[[], Json]) -> UserInput:
            if active is not None:
                return UserInput(attrs.evolve(stored, active=active))
            # The stored user is rendered afresh for each application.
            return parse_user(apply_patch(current(), ops, USER_RESOURCE, in_place=True))

        return self._update_user(auth, ident, req, base, make, _active_hint(ops))

    def _delete(
        self, auth: _Auth, resource: ResourceSchema, ident: str, req: ScimRequest
    ) -> ScimResponse:
        if resource is GROUP_RESOURCE:
            return self._delete_group(auth, ident, req)

        def body(rec: Recorder) -> None:
            _org, account, row = self._load_user(rec, auth, ident)
            self._check_if_match(req, user_etag(account, row))
            rec.target_account(account)
            rec.uow.teams.remove_account(auth.org_id, ident)
            rec.uow.memberships.delete(auth.org_id, ident)
            rec.uow.invitations.delete_for_account(ident)
            rec.uow.conversions.delete_for_account(ident)
            rec.uow.scim.delete_user(auth.org_id, ident)
            rec.uow.accounts.delete(ident)
            rec.uow.scim.add_tombstone(
                ScimTombstone(
                    auth.org_id, ident, row.profile.user_name, row.profile.external_id, rec.now
                )
            )
            rec.emit("account.deleted", ident, account_id=ident)

        self._run(auth, "scim.user_deleted", req, body)
        return ScimResponse(204)

    # -- Groups ------------------------------------------------------------------------------

    def _check_members(self, uow: UnitOfWork, org_id: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        found = uow.scim.managed_ids(org_id, ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise invalid_value(
                f"Members must be users of this organization; unknown: {', '.join(missing[:5])}."
            )

    def _team_name(self, name: str) -> str:
        try:
            return check_name(name, field="displayName", code="scim.invalid_name")
        except InvalidInput as exc:
            raise invalid_value(exc.message) from None

    def _create_group(self, auth: _Auth, req: ScimRequest, base: str) -> ScimResponse:
        inp: GroupInput = parse_group(self._body(req))
        name = self._team_name(inp.display_name)

        def body(rec: Recorder) -> str:
            self._ready(rec.uow, auth.org_id, rec.now, org=rec.org)
            if rec.uow.teams.get_by_name(auth.org_id, name) is not None:
                raise ScimError(
                    f"A group named {name!r} already exists.", status=409, scim_type="uniqueness"
                )
            team = Team(new_id("team"), auth.org_id, name, rec.now, rec.now)
            rec.uow.teams.add(team)
            rec.uow.scim.put_group(ScimGroupRow(auth.org_id, team.id, inp.external_id, rec.now))
            members = inp.members or ()
            self._check_members(rec.uow, auth.org_id, members)
            for account_id in members:
                rec.uow.teams.add_member(TeamMember(team.id, account_id, rec.now))
            rec.target("team", team.id)
            rec.meta(name=name, members_added=len(members))
            return team.id

        team_id = self._run(auth, "scim.group_created", req, body)
        doc = self._read(lambda uow: self._group_doc(uow, auth.org_id, team_id, base))
        assert doc is not None  # noqa: S101 - just created in a committed transaction
        return self._single(201, doc, GROUP_RESOURCE, req)

    def _load_team(self, rec: Recorder, auth: _Auth, ident: str, req: ScimRequest) -> Team:
        self._ready(rec.uow, auth.org_id, rec.now, org=rec.org)
        team = rec.uow.teams.get(ident)
        if team is None or team.org_id != auth.org_id:
            raise _not_found(GROUP_RESOURCE, ident)
        self._check_if_match(req, group_etag(team))
        return team

    def _rename(self, rec: Recorder, team: Team, name: str | None) -> Team:
        if name is not None and name != team.name:
            other = rec.uow.teams.get_by_name(team.org_id, name)
            if other is not None and other.id != team.id:
                raise ScimError(
                    f"A group named {name!r} already exists.", status=409, scim_type="uniqueness"
                )
            rec.meta(renamed=True)
            return attrs.evolve(team, name=name)
        return team

    def _replace_group(self, auth: _Auth, ident: str, req: ScimRequest, base: str) -> ScimResponse:
        inp = parse_group(self._body(req))
        name = self._team_name(inp.display_name)

        def body(rec: Recorder) -> None:
            team = self._rename(rec, self._load_team(rec, auth, ident, req), name)
            rec.uow.teams.update(attrs.evolve(team, updated_at=rec.now))
            rec.uow.scim.put_group(self._group_row(rec, team, inp.external_id))
            wanted = list(inp.members or ())
            self._check_members(rec.uow, auth.org_id, wanted)
            current = {a.id for a in rec.uow.scim.managed_members(auth.org_id, ident)}
            removed = [a for a in sorted(current) if a not in set(wanted)]
            added = [a for a in wanted if a not in current]
            for account_id in removed:
                rec.uow.teams.remove_member(ident, account_id)
            for account_id in added:
                rec.uow.teams.add_member(TeamMember(ident, account_id, rec.now))
            rec.target("team", ident)
            rec.meta(members_added=len(added), members_removed=len(removed))

        self._run(auth, "scim.group_updated", req, body)
        doc = self._read(lambda uow: self._group_doc(uow, auth.org_id, ident, base))
        if doc is None:
            raise _not_found(GROUP_RESOURCE, ident)
        return self._single(200, doc, GROUP_RESOURCE, req)

    def _group_row(self, rec: Recorder, team: Team, external_id: str | None) -> ScimGroupRow:
        row = rec.uow.scim.get_group(team.id)
        created = row.created_at if row else team.created_at
        return ScimGroupRow(team.org_id, team.id, external_id, created)

    def _patch_group(
        self, auth: _Auth, ident: str, req: ScimRequest, base: str, ops: Any
    ) -> ScimResponse:
        plan = plan_group_patch(ops)
        if plan.display_name is not None:
            name: str | None = self._team_name(plan.display_name)
        else:
            name = None

        def body(rec: Recorder) -> None:
            team = self._rename(rec, self._load_team(rec, auth, ident, req), name)
            rec.uow.teams.update(attrs.evolve(team, updated_at=rec.now))
            if plan.external_id_set:
                rec.uow.scim.put_group(self._group_row(rec, team, plan.external_id))
            removed = 0
            if plan.remove_all:
                for account in rec.uow.scim.managed_members(auth.org_id, ident):
                    removed += rec.uow.teams.remove_member(ident, account.id)
            if plan.remove:
                for account_id in rec.uow.scim.managed_ids(auth.org_id, plan.remove):
                    removed += rec.uow.teams.remove_member(ident, account_id)
            added = 0
            if plan.add:
                self._check_members(rec.uow, auth.org_id, plan.add)
                for account_id in plan.add:
                    # Adding a member already in the team is a no-op (RFC 7644 §3.5.2.1);
                    # the store's duplicate check costs no extra query, and its conflict
                    # leaves the transaction usable.
                    try:
                        rec.uow.teams.add_member(TeamMember(ident, account_id, rec.now))
                    except Conflict:
                        continue
                    added += 1
            rec.target("team", ident)
            rec.meta(members_added=added, members_removed=removed)

        self._run(auth, "scim.group_updated", req, body)
        if req.query:
            doc = self._read(lambda uow: self._group_doc(uow, auth.org_id, ident, base))
            if doc is None:
                raise _not_found(GROUP_RESOURCE, ident)
            return self._single(200, doc, GROUP_RESOURCE, req)
        return ScimResponse(204)

    def _delete_group(self, auth: _Auth, ident: str, req: ScimRequest) -> ScimResponse:
        def body(rec: Recorder) -> None:
            team = self._load_team(rec, auth, ident, req)
            rec.uow.scim.delete_group(team.id)
            rec.uow.teams.delete(team.id)
            rec.target("team", team.id)
            rec.meta(name=team.name)

        self._run(auth, "scim.group_deleted", req, body)
        return ScimResponse(204)

    # -- running use cases ------------------------------------------------------------------

    def _run(self, auth: _Auth, action: str, req: ScimRequest, body: Callable[[Recorder], T]) -> T:
        pending: _Pending | None = getattr(self._reading, "pending", None)
        run = body
        if pending is not None and not pending.verified:
            checking = pending

            def run(rec: Recorder) -> T:
                self._confirm(rec, checking)
                return body(rec)

        try:
            return self._rt.run(
                scope=auth.org_id, action=action, actor=auth.actor, ctx=self._ctx(req), body=run
            )
        finally:
            self._reading.facts = None


@attrs.define
class _Pending:
    """A token a change is answered on trust with, until its transaction checks it."""

    token_id: str
    org_id: str
    secret_hash: str
    verified: bool = False


class _Unverified(Exception):
    """Rolls back a change whose token did not hold; it is authenticated on its own."""


class _NeedsConversion(Exception):
    """Rolls back a create whose email belongs to a non-managed account."""

    def __init__(self, account: Account) -> None:
        super().__init__(account.id)
        self.account = account


class _OtherAction(Exception):
    """Rolls back an update whose audit action was guessed wrong; carries the right one."""

    def __init__(self, action: str) -> None:
        super().__init__(action)
        self.action = action


def _active_hint(ops: Sequence[PatchOperation]) -> bool | None:
    """The ``active`` value a PATCH sets plainly (path ``active`` or a path-less value
    holding it), or ``None``; only a guess of the audit action depends on it."""
    hint: bool | None = None
    for op in ops:
        if op.op == "remove":
            continue
        if op.path is None and isinstance(op.value, dict):
            value = next((v for k, v in op.value.items() if str(k).lower() == "active"), None)
        elif op.path is not None and op.path.filter is None and op.path.path.urn is None:
            if op.path.path.attr.lower() != "active" or op.path.path.sub is not None:
                continue
            value = op.value
        else:
            continue
        if isinstance(value, bool):
            hint = value
        elif isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            hint = value.strip().lower() == "true"
    return hint


def _list_doc(resources: list[Json], total: int, start: int) -> Json:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def _not_found(resource: ResourceSchema, ident: str) -> ScimError:
    return ScimError(f"There is no {resource.name} {ident!r} in this organization.", status=404)


def _translate(exc: NulabPassError) -> ScimError:
    """Map the library's errors to SCIM errors (RFC 7644 §3.12)."""
    if isinstance(exc, PlanRequired):
        return ScimError(exc.message, status=403, code=exc.code)
    if isinstance(exc, StaleWrite):
        return ScimError(exc.message, status=412, code=exc.code)
    if isinstance(exc, NotFound):
        return ScimError(exc.message, status=404, code=exc.code)
    if isinstance(exc, Conflict):
        unique = exc.code in {"account.email_taken", "team.name_taken", "team.member_exists"}
        return ScimError(
            exc.message, status=409, scim_type="uniqueness" if unique else None, code=exc.code
        )
    if isinstance(exc, PermissionDenied):
        return ScimError(exc.message, status=403, code=exc.code)
    if isinstance(exc, InvalidInput):
        return ScimError(exc.message, status=400, scim_type="invalidValue", code=exc.code)
    return ScimError(exc.message, status=500, code=exc.code)
