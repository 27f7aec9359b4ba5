"""Validation of names, languages and time zones supplied by callers."""

from __future__ import annotations

import re
import unicodedata
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nulabpass.errors import InvalidInput

__all__ = ["check_language", "check_name", "check_timezone"]

# \Z, not $: "$" also matches before a trailing newline.
_LANG_RE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z")


def check_name(value: object, *, field: str, code: str, max_length: int = 100) -> str:
    """A display name: trimmed, 1 to ``max_length`` characters, no control characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"The {field} must be text.", code=code, details={"field": field})
    name = unicodedata.normalize("NFC", value.strip())
    if not name:
        raise InvalidInput(f"The {field} cannot be empty.", code=code, details={"field": field})
    if len(name) > max_length:
        raise InvalidInput(
            f"The {field} is {len(name)} characters long; the limit is {max_length}.",
            code=code,
            details={"field": field},
        )
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in name):
        raise InvalidInput(
            f"The {field} contains control, invisible or unpaired surrogate characters; "
            "remove them.",
            code=code,
            details={"field": field},
        )
    return name


def check_language(value: object) -> str:
    """A BCP 47 language tag such as ``en`` or ``ja-JP`` (case normalised)."""
    if not isinstance(value, str) or not _LANG_RE.match(value):
        raise InvalidInput(
            f"{value!r} is not a language tag; use a code such as 'en' or 'ja'.",
            code="account.invalid_language",
        )
    head, *rest = value.split("-")
    return "-".join([head.lower(), *(part.upper() if len(part) == 2 else part for part in rest)])


def check_timezone(value: object) -> str:
    """An IANA time zone name such as ``Asia/Tokyo``."""
    if not isinstance(value, str) or not value or len(value) > 64:
        raise InvalidInput(
            f"{value!r} is not a time zone; use an IANA name such as 'Asia/Tokyo'.",
            code="account.invalid_timezone",
        )
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # OSError: a name such as "America" is a directory of the zone database.
        raise InvalidInput(
            f"{value!r} is not a known time zone; use an IANA name such as 'Asia/Tokyo'.",
            code="account.invalid_timezone",
        ) from exc
    return value
