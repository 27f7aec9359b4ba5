"""Email address normalisation: one person, one account, one email."""

from __future__ import annotations

import re

from nulabpass.errors import InvalidInput

__all__ = ["domain_of", "normalize_email"]

# RFC 5321 limits: 64 octets of local part, 255 of domain, 254 for a usable path.
_MAX_EMAIL = 254
_MAX_LOCAL = 64
# \Z, not $: "$" also matches before a trailing newline.
_LOCAL_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+\Z")
_LABEL_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def normalize_email(raw: str) -> str:
    """Return the canonical form of an email address or raise ``InvalidInput``.

    Surrounding spaces are removed and the address is lower-cased (hosts treat addresses
    case-insensitively in practice, and two accounts differing only by case would be one
    person). An internationalised domain becomes its A-label form. Quoted local parts and
    address literals are refused: identity providers never send them.
    """
    if not isinstance(raw, str):
        raise InvalidInput("An email address must be a string.", code="email.invalid")
    value = raw.strip()
    local, sep, domain = value.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidInput(
            f"{value!r} is not an email address: it needs exactly one '@' with a name "
            "before it and a domain after it.",
            code="email.invalid",
        )
    if len(local) > _MAX_LOCAL or not _LOCAL_RE.match(local) or ".." in local:
        raise InvalidInput(
            f"The part before '@' in {value!r} is not allowed: use letters, digits and "
            "common punctuation, at most 64 characters.",
            code="email.invalid",
        )
    if local.startswith(".") or local.endswith("."):
        raise InvalidInput(
            f"The part before '@' in {value!r} cannot start or end with a dot.",
            code="email.invalid",
        )
    ascii_domain = _normalize_domain(domain, value)
    email = f"{local.lower()}@{ascii_domain}"
    if len(email) > _MAX_EMAIL:
        raise InvalidInput(
            "The email address is longer than 254 characters.", code="email.invalid"
        )
    return email


def _normalize_domain(domain: str, whole: str) -> str:
    name = domain.rstrip(".").lower()
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidInput(
            f"The domain of {whole!r} is not a valid domain name.", code="email.invalid"
        ) from exc
    labels = ascii_name.split(".")
    if len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels):
        raise InvalidInput(
            f"The domain of {whole!r} must be a full domain name such as example.com.",
            code="email.invalid",
        )
    if labels[-1].isdigit():
        raise InvalidInput(
            f"The domain of {whole!r} looks like an IP address; use a domain name.",
            code="email.invalid",
        )
    return ascii_name


def domain_of(email: str) -> str:
    """Return the domain of a normalised email address."""
    return email.rpartition("@")[2]
