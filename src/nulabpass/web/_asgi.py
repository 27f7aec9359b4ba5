"""The SCIM endpoints as an ASGI application (HTTP scope only)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from nulabpass.scim._service import ScimRequest
from nulabpass.web._common import normalize_prefix, strip_prefix

if TYPE_CHECKING:
    from nulabpass._facade import NulabPass

__all__ = ["scim_asgi_app"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
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
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope.get("type") != "http":
            return
        below = strip_prefix(str(scope.get("path") or "/"), mount)
        if below is None:
            await _send_plain(send, 404, b"Not Found")
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message.get("type") == "http.disconnect":
                return
            chunk = bytes(message.get("body") or b"")
            if size <= limit:
                chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)[: limit + 1]
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
