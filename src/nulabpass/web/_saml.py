"""The SAML endpoints of every organization as WSGI and ASGI applications.

Theory of operation
-------------------
The facade names three URLs per organization under ``{base_url}/saml/{org_id}/``:
``metadata``, ``login`` and ``acs``. :class:`SamlEndpoints` answers them from a
framework-neutral :class:`HttpRequest`; :func:`saml_wsgi_app` and :func:`saml_asgi_app`
only translate HTTP to it and back, so mount either where ``{base_url}/saml`` points.

- ``GET metadata`` serves :meth:`SamlAPI.sp_metadata <nulabpass.SamlAPI.sp_metadata>`.
- ``GET login?next=/path`` calls :meth:`SamlAPI.begin_login`, puts the state in a
  cookie (``HttpOnly; Secure; SameSite=None`` and, over HTTPS, the ``__Host-`` prefix,
  so no other site or subdomain can plant or read it) and redirects the browser to the
  IdP, or, for an IdP that only takes HTTP-POST, answers an auto-submitting form whose
  script is allowed by a per-response nonce and whose target is the only
  ``form-action`` the page's Content-Security-Policy permits.
- ``POST acs`` reads ``SAMLResponse`` and ``RelayState`` from the form and the state from
  the cookie, calls :meth:`SamlAPI.complete_login`, clears the cookie whatever the
  outcome, and on success lets the host start its own session: ``on_login`` returns the
  headers to add (its session cookie, typically) and the browser is sent, with ``303``,
  to the RelayState path the login began with (or ``landing_path``). The RelayState
  posted by the IdP is never used as a destination: only the one stored at
  :meth:`begin_login` is, which defeats open redirects.

A refusal answers the generic public message of the error and a random reference,
never the code or the reason: they are in the audit event (its ``request_id`` is the
reference) and in :meth:`SamlAPI.recent_failures`, where the IT admin reads them.
Every page is ``no-store`` and cannot be framed.
"""

from __future__ import annotations

import asyncio
import html
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import attrs

from nulabpass._context import RequestContext
from nulabpass.errors import NotFound, NulabPassError
from nulabpass.saml import BINDING_POST
from nulabpass.web._common import (
    Receive,
    Send,
    normalize_prefix,
    read_asgi_body,
    read_wsgi_body,
    reason,
    serve_lifespan,
    strip_prefix,
)

if TYPE_CHECKING:
    from nulabpass._facade import NulabPass
    from nulabpass._saml_service import LoginResult

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "SamlEndpoints",
    "SamlSignIn",
    "saml_asgi_app",
    "saml_wsgi_app",
]

#: The largest ACS form body read: a 256 KB response in base64 and the form's overhead.
MAX_FORM_BYTES = 512 * 1024
#: How long the state cookie lives; the facade's pending request lives as long.
STATE_COOKIE_SECONDS = 600

_SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)
_PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
)


@attrs.frozen(slots=True)
class HttpRequest:
    """One HTTP request below the mount point: ``path`` is e.g. ``/org_1/acs``."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    ip: str | None = None
    user_agent: str | None = None
    secure: bool = True


@attrs.frozen(slots=True)
class HttpResponse:
    """What to answer: status, headers (repeatable, e.g. ``Set-Cookie``) and body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""


@attrs.frozen(slots=True)
class SamlSignIn:
    """A completed sign-in handed to the host's ``on_login``."""

    org_id: str
    result: LoginResult
    request: HttpRequest


OnLogin = Callable[[SamlSignIn], Sequence[tuple[str, str]]]


def _page(
    status: int, title: str, text: str, *, extra: Sequence[tuple[str, str]] = ()
) -> HttpResponse:
    body = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    ).encode()
    headers = (
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Security-Policy", _PAGE_CSP),
        *_SECURITY_HEADERS,
        *extra,
    )
    return HttpResponse(status, headers, body)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class SamlEndpoints:
    """The framework-neutral handler behind :func:`saml_wsgi_app` and
    :func:`saml_asgi_app`; call :meth:`handle` from any other framework."""

    def __init__(
        self,
        np: NulabPass,
        on_login: OnLogin,
        *,
        landing_path: str = "/",
        cookie_name: str = "nulabpass-saml",
    ) -> None:
        if not landing_path.startswith("/") or landing_path.startswith("//"):
            raise ValueError("landing_path must be a path on this site, such as '/'.")
        self._np = np
        self._on_login = on_login
        self._landing = landing_path
        self._cookie = cookie_name

    def cookie_name(self, secure: bool) -> str:
        """The state cookie's name: with the ``__Host-`` prefix over HTTPS."""
        return f"__Host-{self._cookie}" if secure else self._cookie

    def _set_cookie(self, request: HttpRequest, value: str, max_age: int) -> tuple[str, str]:
        # SameSite=None: the IdP posts the response from its own site, and the browser
        # must send the cookie with that cross-site POST. Browsers require Secure with
        # it; over plain HTTP (development only) Lax is the most that works.
        attributes = f"Path=/; Max-Age={max_age}; HttpOnly"
        attributes += "; Secure; SameSite=None" if request.secure else "; SameSite=Lax"
        return ("Set-Cookie", f"{self.cookie_name(request.secure)}={value}; {attributes}")

    def _read_cookie(self, request: HttpRequest) -> str | None:
        raw = request.headers.get("cookie") or request.headers.get("Cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            return None
        morsel = jar.get(self.cookie_name(request.secure))
        return morsel.value if morsel is not None and morsel.value else None

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request below the mount point."""
        parts = request.path.strip("/").split("/")
        if len(parts) != 2 or not parts[0] or parts[1] not in ("metadata", "login", "acs"):
            return _page(404, "Not found", "There is no such page.")
        org_id, endpoint = parts
        # Starting a sign-in writes a pending request: GET only, never HEAD.
        allowed = {"metadata": ("GET", "HEAD"), "login": ("GET",), "acs": ("POST",)}[endpoint]
        if request.method.upper() not in allowed:
            return _page(
                405,
                "Method not allowed",
                f"Use {' or '.join(allowed)} here.",
                extra=(("Allow", ", ".join(allowed)),),
            )
        reference = secrets.token_hex(8)
        ctx = RequestContext(ip=request.ip, user_agent=request.user_agent, request_id=reference)
        try:
            if endpoint == "metadata":
                return self._metadata(org_id)
            if endpoint == "login":
                return self._login(org_id, request, ctx)
            return self._acs(org_id, request, ctx)
        except NotFound:
            return _page(404, "Not found", "There is no such organization.")
        except NulabPassError as exc:
            return self._refused(exc, reference, request, clear=endpoint == "acs")

    def _refused(
        self, exc: NulabPassError, reference: str, request: HttpRequest, *, clear: bool
    ) -> HttpResponse:
        extra = (self._set_cookie(request, "", 0),) if clear else ()
        status = exc.http_status if 400 <= exc.http_status < 500 else 500
        return _page(
            status,
            "Sign-in failed",
            f"{exc.public_message} Reference: {reference}.",
            extra=extra,
        )

    def _metadata(self, org_id: str) -> HttpResponse:
        body = self._np.saml.sp_metadata(org_id)
        return HttpResponse(
            200,
            (
                ("Content-Type", "application/samlmetadata+xml"),
                ("Content-Disposition", f'inline; filename="{quote(org_id)}-sp-metadata.xml"'),
                ("X-Content-Type-Options", "nosniff"),
            ),
            body,
        )

    def _login(self, org_id: str, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        query = parse_qs(request.query, max_num_fields=8)
        wanted = query.get("next", [None])[0]
        redirect = self._np.saml.begin_login(org_id, relay_state=wanted, ctx=ctx)
        cookie = self._set_cookie(request, redirect.state, STATE_COOKIE_SECONDS)
        if redirect.binding != BINDING_POST:
            return HttpResponse(302, (("Location", redirect.url), cookie, *_SECURITY_HEADERS), b"")
        nonce = secrets.token_urlsafe(16)
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in redirect.form.items()
        )
        body = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            "<title>Signing in</title></head><body>"
            f'<form method="post" action="{html.escape(redirect.url)}">{fields}'
            '<noscript><button type="submit">Continue to sign in</button></noscript></form>'
            f'<script nonce="{nonce}">document.forms[0].submit()</script></body></html>'
        ).encode()
        csp = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; "
            f"form-action {_origin(redirect.url)}; frame-ancestors 'none'; base-uri 'none'"
        )
        return HttpResponse(
            200,
            (
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Security-Policy", csp),
                cookie,
                *_SECURITY_HEADERS,
            ),
            body,
        )

    def _acs(self, org_id: str, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        content_type = (
            request.headers.get("content-type") or request.headers.get("Content-Type") or ""
        )
        if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            return _page(415, "Sign-in failed", "The identity provider must post a form.")
        if len(request.body) > MAX_FORM_BYTES:
            return _page(413, "Sign-in failed", "The posted sign-in response is too large.")
        try:
            form = parse_qs(request.body.decode("ascii"), max_num_fields=8, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            form = {}
        values = form.get("SAMLResponse") or []
        if len(values) != 1:
            return _page(
                400,
                "Sign-in failed",
                "The identity provider's answer carries no single SAMLResponse.",
                extra=(self._set_cookie(request, "", 0),),
            )
        state = self._read_cookie(request)
        result = self._np.saml.complete_login(org_id, values[0], state=state, ctx=ctx)
        added = tuple(self._on_login(SamlSignIn(org_id, result, request)))
        target = result.relay_state or self._landing
        return HttpResponse(
            303,
            (
                ("Location", target),
                self._set_cookie(request, "", 0),
                *_SECURITY_HEADERS,
                *added,
            ),
            b"",
        )


# -- WSGI ----------------------------------------------------------------------------------

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def saml_wsgi_app(
    np: NulabPass,
    on_login: OnLogin,
    *,
    prefix: str = "/saml",
    landing_path: str = "/",
    cookie_name: str = "nulabpass-saml",
) -> WsgiApp:
    """A WSGI application serving every organization's SAML endpoints under ``prefix``.

    Mount it so that ``{base_url}/saml`` reaches ``prefix``. ``on_login`` receives each
    completed :class:`SamlSignIn` and returns the response headers that start the host's
    session (e.g. ``[("Set-Cookie", "session=...; Secure; HttpOnly")]``); it runs
    inside the request, after the sign-in was recorded, and a
    :class:`~nulabpass.errors.NulabPassError` it raises answers the refusal page
    instead of the redirect. Requests over plain HTTP
    (``wsgi.url_scheme`` ``http``) get a development cookie without ``Secure``.
    """
    mount = normalize_prefix(prefix)
    endpoints = SamlEndpoints(np, on_login, landing_path=landing_path, cookie_name=cookie_name)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        below = strip_prefix(str(environ.get("PATH_INFO") or "/"), mount)
        if below is None:
            response = _page(404, "Not found", "There is no such page.")
        else:
            body = read_wsgi_body(environ, MAX_FORM_BYTES)
            headers = {
                key[5:].replace("_", "-").lower(): str(value)
                for key, value in environ.items()
                if key.startswith("HTTP_")
            }
            if environ.get("CONTENT_TYPE"):
                headers["content-type"] = str(environ["CONTENT_TYPE"])
            response = endpoints.handle(
                HttpRequest(
                    method=str(environ.get("REQUEST_METHOD") or "GET"),
                    path=below,
                    query=str(environ.get("QUERY_STRING") or ""),
                    headers=headers,
                    body=body,
                    ip=environ.get("REMOTE_ADDR"),
                    user_agent=environ.get("HTTP_USER_AGENT"),
                    secure=str(environ.get("wsgi.url_scheme") or "http") == "https",
                )
            )
        head = [*response.headers, ("Content-Length", str(len(response.body)))]
        start_response(reason(response.status), head)
        if str(environ.get("REQUEST_METHOD") or "").upper() == "HEAD":
            return [b""]
        return [response.body]

    return app


# -- ASGI ----------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def saml_asgi_app(
    np: NulabPass,
    on_login: OnLogin,
    *,
    prefix: str = "/saml",
    landing_path: str = "/",
    cookie_name: str = "nulabpass-saml",
) -> AsgiApp:
    """:func:`saml_wsgi_app` for ASGI servers: the synchronous core and ``on_login`` run
    in the event loop's default thread pool, so the loop never blocks."""
    mount = normalize_prefix(prefix)
    endpoints = SamlEndpoints(np, on_login, landing_path=landing_path, cookie_name=cookie_name)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope.get("type") != "http":
            return
        below = strip_prefix(str(scope.get("path") or "/"), mount)
        body = await read_asgi_body(receive, MAX_FORM_BYTES)
        if body is None:
            return
        if below is None:
            response = _page(404, "Not found", "There is no such page.")
        else:
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1")
                for k, v in scope.get("headers") or []
            }
            client = scope.get("client")
            request = HttpRequest(
                method=str(scope.get("method") or "GET"),
                path=below,
                query=bytes(scope.get("query_string") or b"").decode("latin-1"),
                headers=headers,
                body=body,
                ip=str(client[0]) if client else None,
                user_agent=headers.get("user-agent"),
                secure=str(scope.get("scheme") or "http") == "https",
            )
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(None, endpoints.handle, request)
        out = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        out.append((b"content-length", str(len(response.body)).encode("ascii")))
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        body = b"" if str(scope.get("method") or "").upper() == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})

    return app
