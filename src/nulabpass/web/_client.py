"""An in-process HTTP client for the SCIM WSGI adapter: requests go through the real
WSGI application, without a socket. Useful to test an integration end to end::

    org, token = nulabpass.testing.scim_ready_org(np)
    client = ScimTestClient(np, token)
    reply = client.post("/Users", {"userName": "ann@example.com"})
    assert reply.status == 201
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from wsgiref.util import setup_testing_defaults

import attrs

from nulabpass.web._wsgi import scim_wsgi_app

if TYPE_CHECKING:
    from nulabpass._facade import NulabPass

__all__ = ["Reply", "ScimTestClient"]

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@attrs.frozen
class Reply:
    """A response: status, lower-cased headers, body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None


class ScimTestClient:
    """Sends requests to ``/scim/v2`` of a WSGI app with a bearer token."""

    def __init__(self, np: NulabPass, token: str | None, prefix: str = "/scim/v2") -> None:
        self.app = scim_wsgi_app(np, prefix)
        self.prefix = prefix.rstrip("/")
        self.token = token

    def request(
        self,
        method: str,
        target: str,
        body: object = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = "",
    ) -> Reply:
        """Send one request; ``token`` ``""`` uses the client's token, ``None`` none."""
        url = urlsplit(target)
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": self.prefix + url.path,
            "QUERY_STRING": url.query,
            "CONTENT_LENGTH": str(len(data)),
            "CONTENT_TYPE": "application/scim+json",
            "wsgi.input": io.BytesIO(data),
            "HTTP_HOST": "sp.test",
            "REMOTE_ADDR": "192.0.2.10",
        }
        setup_testing_defaults(environ)
        bearer = self.token if token == "" else token
        if bearer is not None:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {bearer}"
        for name, value in (headers or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        captured: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
            captured["status"] = int(status.split(maxsplit=1)[0])
            captured["headers"] = {k.lower(): v for k, v in response_headers}

        out = b"".join(self.app(environ, start_response))
        return Reply(captured["status"], captured["headers"], out)

    def get(self, target: str, **kw: Any) -> Reply:
        """GET ``target`` (a path below the prefix, with a query string if any)."""
        return self.request("GET", target, **kw)

    def post(self, target: str, body: object, **kw: Any) -> Reply:
        """POST a JSON body."""
        return self.request("POST", target, body, **kw)

    def put(self, target: str, body: object, **kw: Any) -> Reply:
        """PUT a JSON body."""
        return self.request("PUT", target, body, **kw)

    def patch(self, target: str, *ops: dict[str, Any], **kw: Any) -> Reply:
        """PATCH with a PatchOp message holding ``ops``."""
        return self.request("PATCH", target, {"schemas": [PATCH], "Operations": list(ops)}, **kw)

    def delete(self, target: str, **kw: Any) -> Reply:
        """DELETE ``target``."""
        return self.request("DELETE", target, **kw)

    def create_user(self, local: str, domain: str = "example.com", **extra: Any) -> Reply:
        """POST a typical User ``local@domain``; ``extra`` adds or overrides attributes."""
        body: dict[str, Any] = {
            "schemas": [USER],
            "userName": f"{local}@{domain}",
            "name": {"givenName": local.title(), "familyName": "Test"},
            "emails": [{"value": f"{local}@{domain}", "type": "work", "primary": True}],
            "active": True,
        }
        body.update(extra)
        return self.post("/Users", body)
