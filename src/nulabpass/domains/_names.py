"""Domain names as organizations type them: normalised, then checked to be claimable.

A claimable domain is a registrable domain (or a name under one) that belongs to an
organization: not an IP literal, not a public suffix (``co.uk``, ``github.io``), not a
free-mail provider (``gmail.com``). Public suffixes come from the ``publicsuffixlist``
package, which ships the Public Suffix List offline and is updated with it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from nulabpass.domains._freemail import FREE_MAIL_DOMAINS
from nulabpass.errors import InvalidInput

__all__ = ["check_claimable", "is_free_mail", "normalize_domain", "registrable_part"]

# RFC 1035 section 2.3.4: 63 octets per label, 253 characters of name in text form.
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_MAX_NAME = 253


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def normalize_domain(raw: str) -> str:
    """The canonical form of a domain name: trimmed, lower case, without the trailing
    dot, internationalised labels as A-labels (``bücher.example`` becomes
    ``xn--bcher-kva.example``). Raises ``InvalidInput`` (``domain.invalid``)."""
    if not isinstance(raw, str):
        raise InvalidInput("A domain name must be a string.", code="domain.invalid")
    value = raw.strip()
    if value.endswith("."):
        value = value[:-1]
    if not value:
        raise InvalidInput("Enter a domain name such as example.com.", code="domain.invalid")
    if _is_ip_literal(value):
        raise InvalidInput(
            f"{value!r} is an IP address. Enter the domain name of your organization's email "
            "addresses, such as example.com.",
            code="domain.ip_literal",
        )
    if "@" in value or "/" in value or ":" in value or any(c.isspace() for c in value):
        raise InvalidInput(
            f"{value!r} is not a domain name. Enter only the part after '@' of your email "
            "addresses, such as example.com.",
            code="domain.invalid",
        )
    try:
        ascii_name = value.lower().encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidInput(
            f"{value!r} is not a valid domain name.", code="domain.invalid"
        ) from None
    labels = ascii_name.split(".")
    if len(ascii_name) > _MAX_NAME or not all(_LABEL_RE.match(label) for label in labels):
        raise InvalidInput(
            f"{value!r} is not a valid domain name: use letters, digits and hyphens in "
            "labels separated by dots.",
            code="domain.invalid",
        )
    if labels[-1].isdigit():
        raise InvalidInput(
            f"{value!r} looks like an IP address; enter a domain name.",
            code="domain.ip_literal",
        )
    return ascii_name


def _is_ip_literal(value: str) -> bool:
    candidate = value.strip("[]")
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def registrable_part(name: str) -> str | None:
    """The registrable domain containing the normalised ``name``, or ``None`` when
    ``name`` is itself a public suffix."""
    return _psl().privatesuffix(name)


def is_free_mail(name: str, extra: Collection[str] = ()) -> bool:
    """Whether the normalised ``name`` is (or is under) a free-mail provider's domain."""
    labels = name.split(".")
    for start in range(len(labels) - 1):
        candidate = ".".join(labels[start:])
        if candidate in FREE_MAIL_DOMAINS or candidate in extra:
            return True
    return False


def check_claimable(raw: str, *, extra_free_mail: Collection[str] = ()) -> str:
    """Normalise ``raw`` and refuse names no organization can own.

    Returns the normalised name. Raises ``InvalidInput`` with the codes
    ``domain.invalid``, ``domain.ip_literal``, ``domain.public_suffix`` or
    ``domain.free_mail``.
    """
    name = normalize_domain(raw)
    if len(name.split(".")) < 2 or registrable_part(name) is None:
        raise InvalidInput(
            f"{name} is a public suffix (like com or co.uk): anyone can register names "
            "under it, so no organization can verify it. Enter your own domain, such as "
            f"yourcompany.{name}.",
            code="domain.public_suffix",
            details={"domain": name},
        )
    if is_free_mail(name, extra_free_mail):
        raise InvalidInput(
            f"{name} belongs to a free email provider, whose addresses belong to the "
            "public rather than to one organization, so it cannot be verified. Enter the "
            "domain of your organization's own email addresses.",
            code="domain.free_mail",
            details={"domain": name},
        )
    return name
