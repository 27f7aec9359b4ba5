"""Formatting helpers for templates: languages, time zones, dates and links.

These are pure functions of their arguments. Hosts pass recipient preferences that came
from SCIM or a profile page, so a bad language tag or time zone must degrade to a
sensible default (English, UTC) rather than lose the email; a bad base URL or link path
is the integrator's mistake and raises :class:`~nulabpass.errors.ConfigurationError`.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, tzinfo
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nulabpass.errors import ConfigurationError

__all__ = [
    "FALLBACK_LANGUAGE",
    "build_link",
    "format_datetime",
    "language_candidates",
    "normalize_language",
    "parse_datetime",
    "resolve_zone",
    "validate_base_url",
    "validate_link_path",
]

#: Used when the recipient's language has no template.
FALLBACK_LANGUAGE = "en"

# BCP 47 tags are ASCII letters, digits and hyphens (RFC 5646, section 2.1).
_LANGUAGE_TAG = re.compile(r"[a-z0-9]{1,8}(?:-[a-z0-9]{1,8})*")

# Characters RFC 3986 allows in a URI (section 2): unreserved, reserved and "%".
_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")

# Link paths are plain segments of unreserved characters (RFC 3986, section 2.3), so
# they never need escaping and cannot smuggle a query, a fragment or another host.
_LINK_PATH = re.compile(r"/?(?:[A-Za-z0-9\-._~]+/)*[A-Za-z0-9\-._~]*")

_EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def normalize_language(tag: str) -> str:
    """Return ``tag`` as a lowercase BCP 47 tag, or ``""`` when it is not one.

    POSIX locale spellings are accepted too: ``ja_JP.UTF-8`` becomes ``ja-jp``.
    """
    cleaned = tag.strip().split(".", 1)[0].split("@", 1)[0].replace("_", "-").lower()
    return cleaned if _LANGUAGE_TAG.fullmatch(cleaned) else ""


def language_candidates(tag: str) -> tuple[str, ...]:
    """Languages to try for ``tag``, most specific first, ending with the fallback.

    ``"ja-JP"`` gives ``("ja-jp", "ja", "en")``; an unusable tag gives ``("en",)``.
    """
    normalized = normalize_language(tag)
    candidates: list[str] = []
    if normalized:
        candidates.append(normalized)
        primary = normalized.split("-", 1)[0]
        if primary != normalized:
            candidates.append(primary)
    if FALLBACK_LANGUAGE not in candidates:
        candidates.append(FALLBACK_LANGUAGE)
    return tuple(candidates)


def resolve_zone(name: str) -> tuple[tzinfo, str]:
    """Return the time zone called ``name`` and its label, or UTC when it is unknown."""
    try:
        zone = ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError covers keys that are not IANA names at all (absolute or "../"
        # paths); OSError covers a zone file that exists but cannot be read.
        return UTC, "UTC"
    return zone, zone.key


def parse_datetime(key: str, value: object) -> datetime:
    """Parse the ISO-8601 value of a ``*_at`` parameter into an aware datetime."""
    if not isinstance(value, str):
        raise ConfigurationError(
            f"mail parameter {key!r} must be an ISO-8601 string with a UTC offset",
            code="mail.invalid_param",
            details={"param": key},
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(
            f"mail parameter {key!r} is not an ISO-8601 date and time: {value!r}",
            code="mail.invalid_param",
            details={"param": key},
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        # A naive time could be read in any zone; guessing would show recipients the
        # wrong deadline.
        raise ConfigurationError(
            f"mail parameter {key!r} has no UTC offset: {value!r}",
            code="mail.invalid_param",
            details={"param": key},
        )
    return parsed


def format_datetime(moment: datetime, language: str, zone: tzinfo, label: str) -> str:
    """Render ``moment`` in ``zone`` the way readers of ``language`` expect.

    English: ``December 4, 2026 16:00 (Asia/Tokyo)``; Japanese:
    ``2026年12月4日 16:00 (Asia/Tokyo)``; other languages: ``2026-12-04 16:00 (UTC)``.
    Month names are spelled here rather than by ``strftime("%B")`` because the latter
    follows the process locale, which the host controls and may not be English.
    """
    local = moment.astimezone(zone)
    clock = f"{local.hour:02d}:{local.minute:02d}"
    primary = language.split("-", 1)[0]
    if primary == "en":
        return f"{_EN_MONTHS[local.month - 1]} {local.day}, {local.year} {clock} ({label})"
    if primary == "ja":
        return f"{local.year}年{local.month}月{local.day}日 {clock} ({label})"
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d} {clock} ({label})"


@functools.lru_cache(maxsize=32)
def validate_base_url(base_url: str) -> str:
    """Check that ``base_url`` is an absolute http(s) URL and return it without a
    trailing slash.

    Links in emails are followed by people who trust the sender, so the base must name
    a real web origin: no other scheme (``javascript:``), no embedded credentials, and
    no query or fragment that a joined path would end up inside.
    """
    if not _URI_CHARS.fullmatch(base_url):
        raise _bad_base_url(base_url, "it must be an ASCII URL without spaces")
    parts = urlsplit(base_url)
    if parts.scheme.lower() not in {"http", "https"}:
        raise _bad_base_url(base_url, "its scheme must be http or https")
    if not parts.hostname:
        raise _bad_base_url(base_url, "it has no host")
    if parts.username is not None or parts.password is not None:
        raise _bad_base_url(base_url, "it must not contain a user name or password")
    if parts.query or parts.fragment or "?" in base_url or "#" in base_url:
        raise _bad_base_url(base_url, "it must not contain a query or fragment")
    try:
        _ = parts.port
    except ValueError:
        raise _bad_base_url(base_url, "its port is not a number from 0 to 65535") from None
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))


def _bad_base_url(base_url: str, reason: str) -> ConfigurationError:
    return ConfigurationError(
        f"the mail base URL {base_url!r} is not usable: {reason}",
        code="mail.invalid_base_url",
    )


def validate_link_path(name: str, path: str) -> str:
    """Check the link path of template ``name`` and return it with one leading slash."""
    segments = [segment for segment in path.split("/") if segment]
    if not _LINK_PATH.fullmatch(path) or any(s in {".", ".."} for s in segments):
        raise ConfigurationError(
            f"the link path {path!r} of mail template {name!r} must be a plain path of "
            "letters, digits and '-._~' segments, such as '/invitations/accept'",
            code="mail.invalid_link_path",
            details={"template": name},
        )
    return "/" + "/".join(segments)


def build_link(base_url: str, path: str, token: str | None) -> str:
    """Join a validated base URL and link path, adding ``token`` as the query.

    The token is percent-encoded completely (``safe=""``) so that characters such as
    ``&``, ``=``, ``+`` or ``#`` cannot end it early or add parameters.
    """
    link = base_url + path
    if token is not None:
        link += "?token=" + quote(token, safe="")
    return link
