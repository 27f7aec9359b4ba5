"""The SAML endpoints over HTTP (WSGI in-process, ASGI, and a real stdlib server): SP
metadata, sign-in start with the state cookie, the assertion consumer service, and what
the browser is told when something is refused."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import zlib
from collections.abc import Iterator, Sequence
from http.client import HTTPConnection
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from lxml import etree

from nulabpass import NulabPass
from nulabpass.audit._model import AuditQuery, Outcome
from nulabpass.errors import PermissionDenied
from nulabpass.saml.testing import TestIdentityProvider
from nulabpass.web import SamlSignIn, saml_asgi_app, saml_wsgi_app

from .conftest import World

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"


@pytest.fixture(scope="module")
def idp() -> TestIdentityProvider:
    return TestIdentityProvider()


class Host:
    """What a host does in ``on_login``: start its session (here: remember the sign-in)."""

    def __init__(self) -> None:
        self.signed_in: list[SamlSignIn] = []
        self.refuse = False

    def on_login(self, sign_in: SamlSignIn) -> Sequence[tuple[str, str]]:
        if self.refuse:
            raise PermissionDenied("The host refuses this person.", code="host.refused")
        self.signed_in.append(sign_in)
        return [("Set-Cookie", f"session={sign_in.result.account_id}; Secure; HttpOnly")]


class Reply:
    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = int(status.split(maxsplit=1)[0])
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        return found[-1] if found else None

    def cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]


def call(
    app: Any,
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes = b"",
    content_type: str | None = None,
    cookie: str | None = None,
    scheme: str = "https",
) -> Reply:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": scheme,
        "REMOTE_ADDR": "203.0.113.9",
        "HTTP_USER_AGENT": "pytest-browser",
        "HTTP_HOST": "app.example.test",
    }
    if content_type:
        environ["CONTENT_TYPE"] = content_type
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        captured["status"] = status
        captured["headers"] = headers

    chunks = app(environ, start_response)
    return Reply(captured["status"], captured["headers"], b"".join(chunks))


def request_id_of(location: str) -> str:
    query = parse_qs(urlsplit(location).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
    root = etree.fromstring(xml)
    assert root.tag == f"{{{SAMLP}}}AuthnRequest"
    return str(root.get("ID"))


def state_cookie(reply: Reply) -> str:
    (cookie,) = reply.cookies()
    return cookie.split(";")[0]


def form(value: str, relay_state: str | None = None) -> bytes:
    fields = {"SAMLResponse": value}
    if relay_state is not None:
        fields["RelayState"] = relay_state
    return urlencode(fields).encode()


def response_for(
    np: NulabPass, world: World, idp: TestIdentityProvider, name_id: str, request_id: str | None
) -> str:
    xml = idp.response(
        sp_entity_id=np.saml.sp_entity_id(world.org.id),
        acs_url=np.saml.acs_url(world.org.id),
        name_id=name_id,
        now=np.clock.now(),
        in_response_to=request_id,
    )
    return TestIdentityProvider.post_value(xml)


@pytest.fixture
def host() -> Host:
    return Host()


@pytest.fixture
def app(np: NulabPass, world: World, idp: TestIdentityProvider, host: Host) -> Any:
    np.saml.configure(world.admin, world.org.id, metadata_xml=idp.metadata())
    return saml_wsgi_app(np, host.on_login, landing_path="/home")


FORM = "application/x-www-form-urlencoded"


# -- metadata --------------------------------------------------------------------------------


def test_metadata_is_served_for_each_organization(np: NulabPass, world: World, app: Any) -> None:
    reply = call(app, "GET", f"/saml/{world.org.id}/metadata")
    assert reply.status == 200
    assert reply.header("Content-Type") == "application/samlmetadata+xml"
    assert reply.body == np.saml.sp_metadata(world.org.id)
    head = call(app, "HEAD", f"/saml/{world.org.id}/metadata")
    assert head.status == 200
    assert head.body == b""
    assert call(app, "GET", "/saml/no-such-org/metadata").status == 404
    assert call(app, "GET", "/elsewhere").status == 404
    assert call(app, "GET", f"/saml/{world.org.id}/unknown").status == 404


# -- the whole sign-in -------------------------------------------------------------------------


def test_sp_initiated_sign_in_sets_and_checks_the_state_cookie(
    np: NulabPass, world: World, idp: TestIdentityProvider, app: Any, host: Host
) -> None:
    account_id = world.managed("ann")
    start = call(app, "GET", f"/saml/{world.org.id}/login", query="next=%2Fprojects%2F7")
    assert start.status == 302
    location = start.header("Location")
    assert location is not None
    assert location.startswith(idp.sso_url + "?SAMLRequest=")
    assert start.header("Cache-Control") == "no-store"
    (cookie,) = start.cookies()
    assert cookie.startswith("__Host-nulabpass-saml=")
    for attribute in ("Path=/", "HttpOnly", "Secure", "SameSite=None", "Max-Age=600"):
        assert attribute in cookie

    value = response_for(np, world, idp, "ann@example.com", request_id_of(location))
    # The IdP's RelayState is never a destination: only the stored one is.
    done = call(
        app,
        "POST",
        f"/saml/{world.org.id}/acs",
        body=form(value, "https://evil.example/"),
        content_type=FORM,
        cookie=state_cookie(start),
    )
    assert done.status == 303
    assert done.header("Location") == "/projects/7"
    assert f"session={account_id}; Secure; HttpOnly" in done.cookies()
    cleared = [c for c in done.cookies() if c.startswith("__Host-nulabpass-saml=")]
    assert cleared == [
        "__Host-nulabpass-saml=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=None"
    ]
    (sign_in,) = host.signed_in
    assert sign_in.org_id == world.org.id
    assert sign_in.result.name_id == "ann@example.com"
    assert sign_in.request.ip == "203.0.113.9"


def test_a_response_posted_without_the_browsers_state_is_refused(
    np: NulabPass, world: World, idp: TestIdentityProvider, app: Any, host: Host
) -> None:
    world.managed("ann")
    start = call(app, "GET", f"/saml/{world.org.id}/login")
    value = response_for(
        np, world, idp, "ann@example.com", request_id_of(start.header("Location") or "")
    )
    # Another browser (no cookie) posting a response to someone else's request.
    stolen = call(app, "POST", f"/saml/{world.org.id}/acs", body=form(value), content_type=FORM)
    assert stolen.status == 403
    assert host.signed_in == []


def test_a_refusal_shows_a_generic_message_and_a_reference_found_in_the_audit_log(
    np: NulabPass, world: World, idp: TestIdentityProvider, app: Any, host: Host
) -> None:
    world.managed("ann")
    start = call(app, "GET", f"/saml/{world.org.id}/login")
    value = response_for(
        np, world, idp, "ann@example.com", request_id_of(start.header("Location") or "")
    )
    cookie = state_cookie(start)
    first = call(
        app,
        "POST",
        f"/saml/{world.org.id}/acs",
        body=form(value),
        content_type=FORM,
        cookie=cookie,
    )
    assert first.status == 303
    again = call(
        app,
        "POST",
        f"/saml/{world.org.id}/acs",
        body=form(value),
        content_type=FORM,
        cookie=cookie,
    )
    assert again.status == 403
    text = again.body.decode()
    assert "could not sign you in" in text
    assert "saml." not in text  # no error code, no reason: those are for the IT admin
    reference = text.split("Reference: ")[1].split(".")[0]
    with np.store.transaction() as uow:
        failures = list(
            uow.audit.query(
                AuditQuery(scope=world.org.id, actions=("saml.login_failed",), limit=10)
            )
        )
    assert [e.context.get("request_id") for e in failures] == [reference]
    assert failures[0].outcome is Outcome.FAILURE
    assert again.header("Content-Security-Policy") is not None
    assert again.header("X-Frame-Options") == "DENY"
    assert len(host.signed_in) == 1


def test_idp_initiated_sign_in_lands_on_the_landing_path(
    np: NulabPass, world: World, idp: TestIdentityProvider, host: Host
) -> None:
    np.saml.configure(
        world.admin, world.org.id, metadata_xml=idp.metadata(), allow_idp_initiated=True
    )
    app = saml_wsgi_app(np, host.on_login, landing_path="/home")
    world.managed("ann")
    value = response_for(np, world, idp, "ann@example.com", None)
    done = call(
        app, "POST", f"/saml/{world.org.id}/acs", body=form(value, "/admin"), content_type=FORM
    )
    assert done.status == 303
    assert done.header("Location") == "/home"


def test_the_host_can_refuse_a_sign_in_in_on_login(
    np: NulabPass, world: World, idp: TestIdentityProvider, host: Host, app: Any
) -> None:
    world.managed("ann")
    host.refuse = True
    start = call(app, "GET", f"/saml/{world.org.id}/login")
    value = response_for(
        np, world, idp, "ann@example.com", request_id_of(start.header("Location") or "")
    )
    done = call(
        app,
        "POST",
        f"/saml/{world.org.id}/acs",
        body=form(value),
        content_type=FORM,
        cookie=state_cookie(start),
    )
    assert done.status == 403
    assert not [c for c in done.cookies() if c.startswith("session=")]


# -- what is refused before the facade -----------------------------------------------------------


def test_an_absolute_next_url_is_refused_without_a_cookie(world: World, app: Any) -> None:
    reply = call(
        app, "GET", f"/saml/{world.org.id}/login", query="next=https%3A%2F%2Fevil.example%2F"
    )
    assert reply.status == 400
    assert reply.cookies() == []


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", "acs", "POST"), ("HEAD", "login", "GET"), ("POST", "metadata", "GET, HEAD")],
)
def test_wrong_methods_answer_405_with_allow(
    world: World, app: Any, method: str, path: str, allow: str
) -> None:
    reply = call(app, method, f"/saml/{world.org.id}/{path}")
    assert reply.status == 405
    assert reply.header("Allow") == allow


def test_the_acs_wants_one_samlresponse_in_a_form(world: World, app: Any) -> None:
    acs = f"/saml/{world.org.id}/acs"
    assert call(app, "POST", acs, body=b"{}", content_type="application/json").status == 415
    assert call(app, "POST", acs, body=b"RelayState=%2F", content_type=FORM).status == 400
    twice = b"SAMLResponse=a&SAMLResponse=b"
    assert call(app, "POST", acs, body=twice, content_type=FORM).status == 400
    huge = b"SAMLResponse=" + b"A" * (600 * 1024)
    assert call(app, "POST", acs, body=huge, content_type=FORM).status == 413


def test_plain_http_gets_a_development_cookie(world: World, app: Any) -> None:
    reply = call(app, "GET", f"/saml/{world.org.id}/login", scheme="http")
    (cookie,) = reply.cookies()
    assert cookie.startswith("nulabpass-saml=")
    assert "Secure" not in cookie
    assert "SameSite=Lax" in cookie


def test_an_idp_that_only_takes_post_gets_an_auto_submitting_form(
    np: NulabPass, world: World, idp: TestIdentityProvider, host: Host
) -> None:
    np.saml.configure(
        world.admin,
        world.org.id,
        entity_id=idp.entity_id,
        signing_certificates=[idp.keys.cert_pem],
        sso_post_url=idp.sso_url,
    )
    app = saml_wsgi_app(np, host.on_login)
    reply = call(app, "GET", f"/saml/{world.org.id}/login")
    assert reply.status == 200
    csp = reply.header("Content-Security-Policy") or ""
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert "form-action https://idp.example.test;" in csp
    page = reply.body.decode()
    assert f'<script nonce="{nonce}">' in page
    assert f'action="{idp.sso_url}"' in page
    assert 'name="SAMLRequest"' in page
    assert reply.cookies()[0].startswith("__Host-nulabpass-saml=")


# -- ASGI and a real server ---------------------------------------------------------------


def _asgi(
    app: Any,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": headers or [],
        "scheme": "https",
        "client": ("198.51.100.4", 5000),
    }
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[0]["headers"], sent[1]["body"]


def test_the_asgi_app_runs_the_same_sign_in(
    np: NulabPass, world: World, idp: TestIdentityProvider, host: Host
) -> None:
    np.saml.configure(world.admin, world.org.id, metadata_xml=idp.metadata())
    app = saml_asgi_app(np, host.on_login)
    world.managed("ann")
    status, headers, _ = _asgi(app, "GET", f"/saml/{world.org.id}/login", query=b"next=%2Fx")
    assert status == 302
    found = dict(headers)
    cookie = found[b"set-cookie"].split(b";")[0]
    value = response_for(
        np, world, idp, "ann@example.com", request_id_of(found[b"location"].decode())
    )
    status, headers, _ = _asgi(
        app,
        "POST",
        f"/saml/{world.org.id}/acs",
        body=form(value),
        headers=[(b"content-type", FORM.encode()), (b"cookie", cookie)],
    )
    assert status == 303
    assert dict(headers)[b"location"] == b"/x"
    assert host.signed_in[0].request.ip == "198.51.100.4"
    assert _asgi(app, "GET", "/other")[0] == 404


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server(app: Any) -> Iterator[int]:
    httpd = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_port
    httpd.shutdown()
    httpd.server_close()


def test_a_real_http_server_carries_the_cookie_round_trip(
    np: NulabPass, world: World, idp: TestIdentityProvider, host: Host, server: int
) -> None:
    world.managed("ann")
    conn = HTTPConnection("127.0.0.1", server, timeout=10)
    conn.request("GET", f"/saml/{world.org.id}/login?next=%2Fdocs")
    start = conn.getresponse()
    start.read()
    assert start.status == 302
    # Over plain HTTP the development cookie is used.
    cookie = (start.getheader("Set-Cookie") or "").split(";")[0]
    assert cookie.startswith("nulabpass-saml=")
    value = response_for(
        np, world, idp, "ann@example.com", request_id_of(start.getheader("Location") or "")
    )
    conn.request(
        "POST",
        f"/saml/{world.org.id}/acs",
        body=form(value),
        headers={"Content-Type": FORM, "Cookie": cookie},
    )
    done = conn.getresponse()
    done.read()
    conn.close()
    assert done.status == 303
    assert done.getheader("Location") == "/docs"
    assert len(host.signed_in) == 1
