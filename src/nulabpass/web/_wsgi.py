"""The SCIM endpoints as a WSGI application (PEP 3333)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from nulabpass.scim._service import ScimRequest
from nulabpass.web._common import normalize_prefix, read_wsgi_body, reason, strip_prefix

if TYPE_CHECKING:
    from nulabpass._facade import NulabPass

__all__ = ["scim_wsgi_app"]

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out[key[5:].replace("_", "-").title()] = str(value)
    if environ.get("CONTENT_TYPE"):
        out["Content-Type"] = str(environ["CONTENT_TYPE"])
    return out


def scim_wsgi_app(np: NulabPass, prefix: str = "/scim/v2") -> WsgiApp:
    """A WSGI application answering SCIM requests under ``prefix``; other paths are 404."""
    mount = normalize_prefix(prefix)
    limit = np.scim.max_body_bytes

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "/")
        below = strip_prefix(path, mount)
        if below is None:
            start_response(reason(404), [("Content-Type", "text/plain")])
            return [b"Not Found"]
        body = read_wsgi_body(environ, limit)
        scheme = str(environ.get("wsgi.url_scheme") or "http")
        host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "localhost")
        script = str(environ.get("SCRIPT_NAME") or "")
        request = ScimRequest(
            method=str(environ.get("REQUEST_METHOD") or "GET"),
            path=below,
            query=str(environ.get("QUERY_STRING") or ""),
            headers=_headers(environ),
            body=body,
            base_url=f"{scheme}://{host}{script}{mount}",
            ip=environ.get("REMOTE_ADDR"),
            user_agent=environ.get("HTTP_USER_AGENT"),
        )
        response = np.scim.handle(request)
        headers = list(response.headers)
        headers.append(("Content-Length", str(len(response.body))))
        start_response(reason(response.status), headers)
        return [response.body]

    return app
