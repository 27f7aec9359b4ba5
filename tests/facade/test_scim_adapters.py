"""The WSGI and ASGI adapters mount the SCIM handler under any prefix and translate
HTTP faithfully, without a web framework."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from nulabpass import NulabPass
from nulabpass.testing import make_nulabpass, scim_ready_org
from nulabpass.web import scim_asgi_app, scim_wsgi_app


def _asgi(
    np: NulabPass,
    prefix: str,
    method: str,
    path: str,
    token: str,
    body: bytes = b"",
    query: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    app = scim_asgi_app(np, prefix)
    chunks = [body[:5], body[5:]] if body else [b""]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [(b"host", b"sp.test"), (b"authorization", f"Bearer {token}".encode())],
        "scheme": "https",
        "root_path": "",
        "client": ("192.0.2.1", 1234),
    }
    asyncio.run(app(scope, receive, send))
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def test_the_asgi_adapter_creates_and_reads_users_under_its_prefix() -> None:
    np = make_nulabpass()
    _org, token = scim_ready_org(np)
    body = json.dumps({"userName": "asgi@example.com"}).encode()
    status, headers, out = _asgi(np, "/api/scim", "POST", "/api/scim/Users", token, body)
    assert status == 201
    doc = json.loads(out)
    assert headers["location"] == f"https://sp.test/api/scim/Users/{doc['id']}"
    status, _headers, out = _asgi(
        np, "/api/scim", "GET", "/api/scim/Users", token, query=b"filter=userName%20pr"
    )
    assert status == 200
    assert json.loads(out)["totalResults"] == 1


def test_the_asgi_adapter_answers_404_outside_its_prefix() -> None:
    np = make_nulabpass()
    _org, token = scim_ready_org(np)
    status, _headers, _out = _asgi(np, "/scim/v2", "GET", "/other/Users", token)
    assert status == 404


def test_the_wsgi_adapter_mounts_under_any_prefix_and_uses_script_name() -> None:
    np = make_nulabpass()
    _org, token = scim_ready_org(np)
    app = scim_wsgi_app(np, "tenant/scim/")
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        captured["status"] = status
        captured["headers"] = dict(headers)

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/tenant/scim/ServiceProviderConfig",
        "SCRIPT_NAME": "/app",
        "QUERY_STRING": "",
        "HTTP_HOST": "sp.test",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(b""),
    }
    body = b"".join(app(environ, start_response))
    assert captured["status"] == "200 OK"
    assert captured["headers"]["Content-Type"] == "application/scim+json"
    doc = json.loads(body)
    assert doc["meta"]["location"] == "https://sp.test/app/tenant/scim/ServiceProviderConfig"
    environ["PATH_INFO"] = "/elsewhere"
    b"".join(app(environ, start_response))
    assert captured["status"] == "404 Not Found"
