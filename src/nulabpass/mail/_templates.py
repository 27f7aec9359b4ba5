"""Rendering emails from templates.

Theory of operation
-------------------
A :class:`TemplateCatalog` holds one :class:`MailTemplate` per ``(name, language)`` and
one link path per name. Building it checks every template once: placeholders must be
plain names, known templates may only use the parameters they are given, and nobody
may write ``{token}``. :func:`render_email` then

1. picks the template for the most specific language it has (``ja-jp``, then ``ja``,
   then English);
2. checks that every required parameter is present;
3. turns each ``*_at`` parameter (ISO-8601 with an offset) into a date in the
   recipient's time zone, formatted for the chosen language;
4. builds ``{link}`` from the base URL, the template's link path and, for templates
   that carry one, the percent-encoded token;
5. fills the subject, text and HTML, flattening control characters in every value (a
   display name must not start a new header or paragraph) and HTML-escaping values in
   the HTML part.

The token never becomes a placeholder of its own, so a template, built-in or host
supplied, cannot print it outside the link.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import attrs

from nulabpass.errors import ConfigurationError, InvalidInput
from nulabpass.mail._defaults import DEFAULT_LINK_PATHS, DEFAULT_TEMPLATES, TEMPLATE_PARAMS
from nulabpass.mail._format import (
    build_link,
    format_datetime,
    language_candidates,
    normalize_language,
    parse_datetime,
    resolve_zone,
    validate_base_url,
    validate_link_path,
)
from nulabpass.mail._model import MailTemplate, ParamValue
from nulabpass.ports import EmailMessage

__all__ = ["TemplateCatalog", "render_email"]

# The one parameter that may appear only inside the link (it grants an action).
_LINK_ONLY_PARAM = "token"
_LINK = "link"

# C0 and C1 controls plus Unicode line and paragraph separators: anything that could
# end a header line or start a new visual line inside a one-line value.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")

# A recipient address as far as rendering cares: one "@", no whitespace or controls.
# The SMTP adapter validates it again with the email package's parser.
_ADDRESS = re.compile(r"[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+")

_Segment = tuple[str, str | None, str]  # literal text, placeholder name, format spec


@attrs.frozen(slots=True)
class _Compiled:
    """A template parsed once into literal text and placeholders."""

    template: MailTemplate
    subject: tuple[_Segment, ...]
    text: tuple[_Segment, ...]
    html: tuple[_Segment, ...]

    def placeholders(self) -> frozenset[str]:
        return frozenset(
            field
            for segments in (self.subject, self.text, self.html)
            for _, field, _ in segments
            if field is not None
        )


def _invalid_template(name: str, language: str, reason: str) -> ConfigurationError:
    return ConfigurationError(
        f"mail template {name!r} ({language}) is invalid: {reason}",
        code="mail.invalid_template",
        details={"template": name, "language": language},
    )


def _parse(name: str, language: str, part: str, source: str) -> tuple[_Segment, ...]:
    try:
        parsed = list(string.Formatter().parse(source))
    except ValueError as exc:
        raise _invalid_template(name, language, f"the {part} does not parse: {exc}") from None
    segments: list[_Segment] = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            segments.append((literal, None, ""))
            continue
        # Attribute access and indexing would let a template reach into objects, and
        # positional fields have no name to check; only plain names are allowed.
        if not field.isidentifier():
            raise _invalid_template(
                name, language, f"the {part} has placeholder {{{field}}}; use plain names"
            )
        if conversion is not None or (spec and "{" in spec):
            raise _invalid_template(
                name,
                language,
                f"the {part} uses a conversion or nested field in {{{field}}}",
            )
        if field == _LINK_ONLY_PARAM:
            raise _invalid_template(
                name,
                language,
                f"the {part} uses {{token}}; the token may only appear inside {{link}}",
            )
        segments.append((literal, field, spec or ""))
    return tuple(segments)


def _compile(name: str, language: str, template: MailTemplate) -> _Compiled:
    compiled = _Compiled(
        template=template,
        subject=_parse(name, language, "subject", template.subject),
        text=_parse(name, language, "text", template.text),
        html=_parse(name, language, "html", template.html),
    )
    declared = TEMPLATE_PARAMS.get(name)
    if declared is not None:
        # A built-in email is rendered with exactly its declared parameters, so a
        # placeholder outside them would fail on every send: refuse it up front.
        allowed = (declared - {_LINK_ONLY_PARAM}) | {_LINK}
        unknown = sorted(compiled.placeholders() - allowed)
        if unknown:
            raise _invalid_template(
                name,
                language,
                f"unknown placeholder(s) {', '.join(unknown)}; "
                f"available: {', '.join(sorted(allowed))}",
            )
    return compiled


class TemplateCatalog:
    """The templates and link paths emails are rendered from.

    ``overrides`` replaces built-in templates or adds languages and new template names;
    its keys are ``(name, language)`` with a BCP 47 language tag (``"ja"``, ``"pt-BR"``).
    ``link_paths`` maps template names to the path, under the base URL, that their
    ``{link}`` opens; it is merged over :data:`DEFAULT_LINK_PATHS`.

    Every template is checked here, so a mistake in a host's copy fails at start-up
    with :class:`~nulabpass.errors.ConfigurationError` (``mail.invalid_template``)
    rather than when the first email is due.
    """

    #: The built-in templates, keyed by ``(template name, language)``.
    DEFAULT_TEMPLATES: ClassVar[Mapping[tuple[str, str], MailTemplate]] = DEFAULT_TEMPLATES

    def __init__(
        self,
        overrides: Mapping[tuple[str, str], MailTemplate] | None = None,
        *,
        link_paths: Mapping[str, str] | None = None,
    ) -> None:
        compiled: dict[tuple[str, str], _Compiled] = {
            key: _compile(key[0], key[1], template) for key, template in DEFAULT_TEMPLATES.items()
        }
        for (name, language), template in (overrides or {}).items():
            normalized = normalize_language(language)
            if not normalized:
                raise _invalid_template(name, language, "the language is not a BCP 47 tag")
            compiled[(name, normalized)] = _compile(name, normalized, template)
        paths = dict(DEFAULT_LINK_PATHS)
        for name, path in (link_paths or {}).items():
            paths[name] = validate_link_path(name, path)
        self._compiled: Mapping[tuple[str, str], _Compiled] = MappingProxyType(compiled)
        self._link_paths: Mapping[str, str] = MappingProxyType(paths)
        self._names = frozenset(name for name, _ in compiled)

    @property
    def templates(self) -> Mapping[tuple[str, str], MailTemplate]:
        """Every template of this catalog, keyed by ``(name, normalized language)``."""
        return MappingProxyType({key: c.template for key, c in self._compiled.items()})

    @property
    def link_paths(self) -> Mapping[str, str]:
        """The link path of each template name that has a link."""
        return self._link_paths

    @property
    def names(self) -> frozenset[str]:
        """The template names this catalog can render."""
        return self._names

    def required_params(self, name: str) -> frozenset[str]:
        """The parameters :func:`render_email` insists on for template ``name``.

        Built-in names have a fixed set (:data:`TEMPLATE_PARAMS`); names a host adds
        require whatever their placeholders use, checked when rendering.
        """
        return TEMPLATE_PARAMS.get(name, frozenset())

    def resolve(self, name: str, language: str) -> tuple[str, MailTemplate]:
        """Return ``(language, template)`` for the best match of ``language``."""
        resolved, compiled = self._lookup(name, language)
        return resolved, compiled.template

    def _lookup(self, name: str, language: str) -> tuple[str, _Compiled]:
        if name not in self._names:
            raise ConfigurationError(
                f"there is no mail template named {name!r}; "
                f"known templates: {', '.join(sorted(self._names))}",
                code="mail.unknown_template",
                details={"template": name},
            )
        for candidate in language_candidates(language):
            compiled = self._compiled.get((name, candidate))
            if compiled is not None:
                return candidate, compiled
        raise ConfigurationError(
            f"mail template {name!r} exists neither in {language!r} nor in English; "
            "add an English version so every recipient can be served",
            code="mail.unknown_template",
            details={"template": name, "language": language},
        )


_DEFAULT_CATALOG = TemplateCatalog()


def _flatten(value: str) -> str:
    """Make ``value`` one line: controls and line separators become single spaces."""
    return _CONTROL.sub(" ", value)


def _missing(name: str, param: str) -> ConfigurationError:
    return ConfigurationError(
        f"mail template {name!r} needs the parameter {param!r}, which was not given",
        code="mail.missing_param",
        details={"template": name, "param": param},
    )


def _format_value(name: str, field: str, spec: str, values: Mapping[str, object]) -> str:
    if field not in values:
        raise _missing(name, field)
    try:
        return format(values[field], spec)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"mail template {name!r} cannot format {field!r} with {spec!r}: {exc}",
            code="mail.invalid_template",
            details={"template": name, "param": field},
        ) from None


def _fill(
    name: str,
    segments: tuple[_Segment, ...],
    values: Mapping[str, object],
    *,
    escape: bool = False,
) -> str:
    out: list[str] = []
    for literal, field, spec in segments:
        out.append(literal)
        if field is not None:
            value = _format_value(name, field, spec, values)
            # Escaping after formatting lets format specs work on the raw value while
            # still guaranteeing that no value can open a tag or leave an attribute.
            out.append(html.escape(value, quote=True) if escape else value)
    return "".join(out)


def render_email(
    name: str,
    *,
    to: str,
    language: str,
    timezone: str,
    params: Mapping[str, ParamValue],
    base_url: str,
    message_id: str,
    catalog: TemplateCatalog | None = None,
) -> EmailMessage:
    """Render template ``name`` for one recipient.

    ``language`` and ``timezone`` are the recipient's preferences; an unknown language
    falls back to English and an unknown time zone to UTC. Parameters whose key ends
    in ``_at`` are ISO-8601 date-times with an offset and are shown in ``timezone``.
    ``token`` is only ever used inside ``{link}``. ``None`` or empty values count as
    missing.

    Raises :class:`~nulabpass.errors.ConfigurationError` with code
    ``mail.unknown_template``, ``mail.missing_param``, ``mail.invalid_param`` or
    ``mail.invalid_base_url``, and :class:`~nulabpass.errors.InvalidInput`
    (``mail.invalid_recipient``) when ``to`` is not an address.
    """
    active = catalog if catalog is not None else _DEFAULT_CATALOG
    resolved_language, compiled = active._lookup(name, language)
    if not _ADDRESS.fullmatch(to):
        raise InvalidInput(
            "the recipient is not a single email address", code="mail.invalid_recipient"
        )
    base = validate_base_url(base_url)

    required = active.required_params(name)
    for param in sorted(required):
        if params.get(param) in (None, ""):
            raise _missing(name, param)

    zone, zone_label = resolve_zone(timezone)
    plain: dict[str, object] = {}
    for key, value in params.items():
        if key == _LINK_ONLY_PARAM or value is None or value == "":
            continue
        if key.endswith("_at"):
            moment = parse_datetime(key, value)
            plain[key] = format_datetime(moment, resolved_language, zone, zone_label)
        elif isinstance(value, str):
            plain[key] = _flatten(value)
        else:
            plain[key] = value

    path = active.link_paths.get(name)
    if path is not None:
        # Built-in templates say whether they carry a token; for a host's own template
        # a token given is a token wanted.
        token = params.get(_LINK_ONLY_PARAM)
        wants_token = _LINK_ONLY_PARAM in required or name not in TEMPLATE_PARAMS
        if not wants_token or token is None or token == "":
            token = None
        plain[_LINK] = build_link(base, path, None if token is None else str(token))

    subject = _SPACES.sub(" ", _fill(name, compiled.subject, plain)).strip()
    text = _fill(name, compiled.text, plain)
    html_part = _fill(name, compiled.html, plain, escape=True)
    return EmailMessage(
        to=to,
        subject=subject,
        text=text,
        html=html_part,
        message_id=message_id,
        language=resolved_language,
    )
