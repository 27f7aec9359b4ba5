"""The SCIM endpoints as an ASGI application (HTTP scope only)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from nulabpass.scim._service import ScimRequest
from nulabpass.web._common import (
    Receive,
    Send,
    normalize_prefix,
    read_asgi_body,
    serve_lifespan,
    strip_prefix,
)

if TYPE_CHECKING:
    from nulabpass._facade import NulabPass

__all__ = ["scim_asgi_app"]

Scope = MutableMapping[str, Any]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _send_plain(send: Send, status: int, text: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(text))],
        }
    )
    await send({"type": "http.response.body", "body": text})


def scim_asgi_app(np: NulabPass, prefix: str = "/scim/v2") -> AsgiApp:
    """An ASGI application answering SCIM requests under ``prefix``.

    The synchronous core runs in the event loop's default thread pool.
    """
    mount = normalize_prefix(prefix)
    limit = np.scim.max_body_bytes

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope.get("type") != "http":
            return
        below = strip_prefix(str(scope.get("path") or "/"), mount)
        if below is None:
            await _send_plain(send, 404, b"Not Found")
            return
        body = await read_asgi_body(receive, limit)
        if body is None:
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
        scheme = str(scope.get("scheme") or "http")
        host = headers.get("host") or "localhost"
        root = str(scope.get("root_path") or "")
        client = scope.get("client")
        request = ScimRequest(
            method=str(scope.get("method") or "GET"),
            path=below,
            query=bytes(scope.get("query_string") or b"").decode("latin-1"),
            headers=headers,
            body=body,
            base_url=f"{scheme}://{host}{root}{mount}",
            ip=str(client[0]) if client else None,
            user_agent=headers.get("user-agent"),
        )
        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(None, np.scim.handle, request)
        out = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        out.append((b"content-length", str(len(response.body)).encode("ascii")))
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        await send({"type": "http.response.body", "body": response.body})

    return app
