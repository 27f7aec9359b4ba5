"""What the WSGI and ASGI adapters share: prefixes and status lines."""

from __future__ import annotations

from http import HTTPStatus

__all__ = ["normalize_prefix", "reason", "strip_prefix"]


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
