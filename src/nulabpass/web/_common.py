"""What the WSGI and ASGI adapters share: prefixes, status lines, request bodies and
the ASGI lifespan protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

__all__ = [
    "Receive",
    "Send",
    "normalize_prefix",
    "read_asgi_body",
    "read_wsgi_body",
    "reason",
    "serve_lifespan",
    "strip_prefix",
]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def normalize_prefix(prefix: str) -> str:
    """``"scim/v2/"`` -> ``"/scim/v2"``; ``""`` or ``"/"`` -> ``""``."""
    cleaned = "/" + prefix.strip("/")
    return "" if cleaned == "/" else cleaned


def strip_prefix(path: str, prefix: str) -> str | None:
    """The path below ``prefix``, or ``None`` when the path is outside it."""
    if not prefix:
        return path or "/"
    if path == prefix:
        return "/"
    if path.startswith(prefix + "/"):
        return path[len(prefix) :]
    return None


def reason(status: int) -> str:
    """``404`` -> ``"404 Not Found"``."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def read_wsgi_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, read to at most one byte past ``limit``: the handler refuses a
    larger body without this process ever holding more than the limit."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    return stream.read(min(length, limit + 1)) if stream is not None and length > 0 else b""


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Answer the ASGI lifespan protocol until shutdown (nothing to start or stop)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_asgi_body(receive: Receive, limit: int) -> bytes | None:
    """The request body up to one byte past ``limit`` (the rest is drained and
    dropped), or ``None`` when the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return None
        chunk = bytes(message.get("body") or b"")
        if size <= limit:
            chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body"))
    return b"".join(chunks)[: limit + 1]
