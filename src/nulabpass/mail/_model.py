"""Value objects of the template layer."""

from __future__ import annotations

import attrs

__all__ = ["MailTemplate", "ParamValue"]

#: The values a template parameter may take: the JSON scalars an outbox payload holds.
ParamValue = str | int | bool | None


@attrs.frozen(slots=True)
class MailTemplate:
    """One email in one language: three :meth:`str.format` strings.

    Placeholders are plain names (``{org_name}``); attribute access, indexing and
    conversions (``{x.y}``, ``{x[0]}``, ``{x!r}``) are refused when the template is
    checked. ``{link}`` is the action link built from the catalog's link path, the base
    URL and, for templates that carry one, the token. ``{token}`` itself is never
    available: a token reaches the email only inside ``{link}``.

    In ``html`` every value is HTML-escaped before it is inserted, so the template
    author writes markup and the values cannot add any. Literal braces are doubled
    (``{{``), as with :meth:`str.format`.
    """

    subject: str
    text: str
    html: str
