"""Rendering emails from the built-in and host-supplied templates."""

from __future__ import annotations

import html
import string
from collections.abc import Mapping
from email import message_from_string
from email.message import EmailMessage as MimeMessage
from email.policy import SMTP, default
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from nulabpass.errors import ConfigurationError, InvalidInput
from nulabpass.mail import (
    DEFAULT_LINK_PATHS,
    DEFAULT_TEMPLATES,
    TEMPLATE_PARAMS,
    MailTemplate,
    ParamValue,
    TemplateCatalog,
    render_email,
)
from nulabpass.ports import EmailMessage

BASE_URL = "https://app.example.com"
TOKEN = "tok_9f8e7d6c5b4a"

SAMPLE_PARAMS: Mapping[str, Mapping[str, ParamValue]] = {
    "invitation": {
        "org_name": "Acme Corp",
        "inviter_name": "Hanako Yamada",
        "display_name": "Taro Suzuki",
        "token": TOKEN,
        "expires_at": "2026-12-11T16:00:00+00:00",
    },
    "conversion_request": {
        "org_name": "Acme Corp",
        "display_name": "Taro Suzuki",
        "token": TOKEN,
        "expires_at": "2026-12-11T16:00:00+00:00",
    },
    "trial_ending": {"org_name": "Acme Corp", "trial_ends_at": "2026-12-04T07:00:00Z"},
    "trial_expired": {"org_name": "Acme Corp"},
    "plan_ended": {"org_name": "Acme Corp"},
    "account_released": {"org_name": "Acme Corp", "display_name": "Taro Suzuki"},
    "domain_record_missing": {
        "org_name": "Acme Corp",
        "domain": "acme.example",
        "grace_ends_at": "2026-12-18T00:00:00+00:00",
    },
    "saml_metadata_updated": {
        "org_name": "Acme Corp",
        "metadata_url": "https://idp.example/metadata",
    },
    "saml_metadata_pending": {
        "org_name": "Acme Corp",
        "metadata_url": "https://idp.example/metadata",
        "reason": "saml.metadata_unsigned",
    },
    "saml_metadata_rejected": {
        "org_name": "Acme Corp",
        "metadata_url": "https://idp.example/metadata",
    },
    "saml_metadata_refresh_failed": {
        "org_name": "Acme Corp",
        "metadata_url": "https://idp.example/metadata",
        "error_code": "saml.fetch_timeout",
    },
}


def render(
    name: str,
    *,
    language: str = "en",
    timezone: str = "UTC",
    params: Mapping[str, ParamValue] | None = None,
    base_url: str = BASE_URL,
    catalog: TemplateCatalog | None = None,
) -> EmailMessage:
    return render_email(
        name,
        to="taro@example.com",
        language=language,
        timezone=timezone,
        params=SAMPLE_PARAMS[name] if params is None else params,
        base_url=base_url,
        message_id="outbox-1",
        catalog=catalog,
    )


def links_in(message: EmailMessage) -> list[str]:
    """Lines of the text part that are links: the templates put each link on its own."""
    return [line for line in message.text.splitlines() if line.startswith(("https://", "http://"))]


# ---------------------------------------------------------------------------------------
# The built-in catalogue


def test_every_template_has_english_and_japanese_copy() -> None:
    """Each template name ships in English and Japanese."""
    names = {name for name, _ in DEFAULT_TEMPLATES}
    assert names == set(TEMPLATE_PARAMS)
    assert set(DEFAULT_TEMPLATES) == {(n, lang) for n in names for lang in ("en", "ja")}


@pytest.mark.parametrize(("name", "language"), sorted(DEFAULT_TEMPLATES))
def test_built_in_copy_uses_every_declared_param_and_the_link(name: str, language: str) -> None:
    """Built-in copy mentions every parameter it is given and offers the link in both
    parts; the token is never a placeholder of its own."""
    template = DEFAULT_TEMPLATES[(name, language)]
    for part in (template.text, template.html):
        used = {field for _, field, _, _ in string.Formatter().parse(part) if field}
        assert used == (TEMPLATE_PARAMS[name] - {"token"}) | {"link"}
    assert name in DEFAULT_LINK_PATHS


@pytest.mark.parametrize(("name", "language"), sorted(DEFAULT_TEMPLATES))
def test_every_built_in_template_renders(name: str, language: str) -> None:
    """Each template renders with its sample parameters into a complete message."""
    message = render(name, language=language, timezone="Asia/Tokyo")
    assert message.language == language
    assert message.message_id == "outbox-1"
    assert message.to == "taro@example.com"
    assert message.subject
    assert "\n" not in message.subject
    assert "{" not in message.subject + message.text
    assert message.html.startswith("<!DOCTYPE html>")
    assert f'<html lang="{language}">' in message.html
    assert links_in(message)[0].startswith(BASE_URL + DEFAULT_LINK_PATHS[name])


def test_invitation_in_english_reads_naturally() -> None:
    """The English invitation names the inviter, the organization and the expiry."""
    message = render("invitation", timezone="Asia/Tokyo")
    assert message.subject == "Hanako Yamada invited you to join Acme Corp"
    assert message.text.startswith("Hello Taro Suzuki,\n\n")
    assert "expires on December 12, 2026 01:00 (Asia/Tokyo)" in message.text
    assert f"{BASE_URL}/invitations/accept?token={TOKEN}\n" in message.text


def test_invitation_in_japanese_reads_naturally() -> None:
    """The Japanese invitation uses Japanese date order and honorifics."""
    message = render("invitation", language="ja", timezone="Asia/Tokyo")
    assert message.subject == "Hanako YamadaさんからAcme Corpへの招待が届いています"
    assert message.text.startswith("Taro Suzuki 様\n\n")
    assert "有効期限は2026年12月12日 01:00 (Asia/Tokyo)です" in message.text


# ---------------------------------------------------------------------------------------
# Language and time zone


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("ja", "ja"),
        ("ja-JP", "ja"),
        ("JA-jp", "ja"),
        ("ja_JP.UTF-8", "ja"),
        ("en-US", "en"),
        ("fr", "en"),
        ("zh-Hant-TW", "en"),
        ("", "en"),
        ("<script>", "en"),
    ],
)
def test_language_falls_back_to_the_primary_subtag_then_english(tag: str, expected: str) -> None:
    """A regional tag finds its language; an unknown or malformed one gets English."""
    assert render("plan_ended", language=tag).language == expected


@pytest.mark.parametrize(
    ("language", "timezone", "expected"),
    [
        ("en", "Asia/Tokyo", "December 4, 2026 16:00 (Asia/Tokyo)"),
        ("ja", "Asia/Tokyo", "2026年12月4日 16:00 (Asia/Tokyo)"),
        ("en", "America/Los_Angeles", "December 3, 2026 23:00 (America/Los_Angeles)"),
        ("en", "UTC", "December 4, 2026 07:00 (UTC)"),
        ("en", "Mars/Olympus_Mons", "December 4, 2026 07:00 (UTC)"),
        ("en", "../../etc/passwd", "December 4, 2026 07:00 (UTC)"),
        ("en", "", "December 4, 2026 07:00 (UTC)"),
        ("ja", "not a zone", "2026年12月4日 07:00 (UTC)"),
    ],
)
def test_dates_show_in_the_recipients_time_zone(
    language: str, timezone: str, expected: str
) -> None:
    """``*_at`` values are converted to the recipient's zone; an invalid zone means UTC."""
    message = render("trial_ending", language=language, timezone=timezone)
    assert expected in message.text
    assert html.escape(expected) in message.html


def test_dates_for_languages_without_a_style_are_iso_like() -> None:
    """A host-added language gets an unambiguous year-month-day date."""
    catalog = TemplateCatalog(
        {("trial_ending", "fr"): MailTemplate("Essai", "Fin : {trial_ends_at}", "{link}")}
    )
    message = render("trial_ending", language="fr-CA", timezone="Europe/Paris", catalog=catalog)
    assert message.language == "fr"
    assert message.text == "Fin : 2026-12-04 08:00 (Europe/Paris)"


@pytest.mark.parametrize(
    "value", ["next tuesday", "2026-12-04T07:00:00", "2026-12-04", "", 1764831600, True]
)
def test_datetime_params_must_be_iso_8601_with_an_offset(value: ParamValue) -> None:
    """A ``*_at`` value that is not an aware ISO-8601 time is refused, not guessed."""
    params = {"org_name": "Acme", "trial_ends_at": value}
    with pytest.raises(ConfigurationError) as caught:
        render("trial_ending", params=params)
    assert caught.value.code in {"mail.invalid_param", "mail.missing_param"}
    assert caught.value.details["param"] == "trial_ends_at"


# ---------------------------------------------------------------------------------------
# Escaping and injection


HOSTILE = "<script>alert('x')</script> & \"quoted\""


def test_html_part_escapes_every_value() -> None:
    """A hostile organization name is inert markup in HTML and verbatim in text."""
    params = {**SAMPLE_PARAMS["invitation"], "org_name": HOSTILE, "display_name": HOSTILE}
    message = render("invitation", params=params)
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in (
        message.html
    )
    assert HOSTILE in message.text
    assert HOSTILE in message.subject


def test_values_cannot_break_out_of_the_href_attribute() -> None:
    """The link inside ``href`` is attribute-escaped, so a token cannot add attributes."""
    params = {**SAMPLE_PARAMS["invitation"], "token": '" onmouseover="steal()'}
    message = render("invitation", params=params)
    assert 'onmouseover="' not in message.html
    assert "onmouseover%3D%22steal%28%29" in message.html


def test_line_breaks_in_values_are_flattened() -> None:
    """A value cannot start a new header or forge a paragraph in the text part."""
    params = {
        **SAMPLE_PARAMS["account_released"],
        "org_name": "Acme\r\nBcc: victim@example.com",
        "display_name": "Taro\n\nOpen https://evil.example/ now\u2028",
    }
    message = render("account_released", params=params)
    assert "\r" not in message.subject
    assert "\n" not in message.subject
    assert message.subject == "Your account is no longer managed by Acme Bcc: victim@example.com"
    assert "\nOpen https://evil.example/" not in message.text
    assert links_in(message) == [f"{BASE_URL}/signin"]


def test_japanese_subject_survives_mime_encoding() -> None:
    """A Japanese subject encodes into a MIME header and parses back unchanged."""
    message = render("domain_record_missing", language="ja")
    mime = MimeMessage(policy=SMTP)
    mime["Subject"] = message.subject
    mime.set_content(message.text)
    wire = mime.as_string()
    header_block = wire.split("\r\n\r\n", 1)[0]
    assert header_block.isascii()
    assert "=?utf-8?" in header_block
    parsed = message_from_string(wire, policy=default)
    assert parsed["Subject"] == message.subject
    assert parsed["Subject"] == "【対応のお願い】acme.exampleの認証用DNSレコードが見つかりません"


# ---------------------------------------------------------------------------------------
# Links and tokens


@pytest.mark.parametrize("token", ["a+b/c=d&e f#g?h", "日本語", "%41", "x" * 200])
def test_token_is_percent_encoded_into_the_link(token: str) -> None:
    """The token is fully percent-encoded and decodes back to itself."""
    params = {**SAMPLE_PARAMS["invitation"], "token": token}
    message = render("invitation", params=params)
    (link,) = set(links_in(message))
    assert link == f"{BASE_URL}/invitations/accept?token={quote(token, safe='')}"
    assert parse_qs(urlsplit(link).query) == {"token": [token]}


@pytest.mark.parametrize("name", ["invitation", "conversion_request"])
@pytest.mark.parametrize("language", ["en", "ja"])
def test_token_appears_only_inside_the_link(name: str, language: str) -> None:
    """Removing the link leaves no trace of the token anywhere in the message."""
    message = render(name, language=language)
    link = links_in(message)[0]
    assert TOKEN in link
    for part in (message.subject, message.text, message.html):
        assert TOKEN not in part.replace(link, "")


def test_templates_without_a_token_ignore_a_stray_token() -> None:
    """A token passed to a template that has none is not printed at all."""
    params = {**SAMPLE_PARAMS["trial_expired"], "token": TOKEN}
    message = render("trial_expired", params=params)
    assert TOKEN not in message.text + message.html + message.subject
    assert links_in(message) == [f"{BASE_URL}/admin/plan"]


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://app.example.com", "https://app.example.com/invitations/accept"),
        ("https://app.example.com/", "https://app.example.com/invitations/accept"),
        ("HTTPS://app.example.com/np/", "https://app.example.com/np/invitations/accept"),
        ("http://localhost:8000/a/b", "http://localhost:8000/a/b/invitations/accept"),
    ],
)
def test_links_join_base_url_and_path_with_one_slash(base_url: str, expected: str) -> None:
    """The base URL's path is kept and joined to the link path with exactly one slash."""
    link = links_in(render("invitation", base_url=base_url))[0]
    assert link == f"{expected}?token={TOKEN}"


@pytest.mark.parametrize(
    "base_url",
    [
        "javascript:alert(1)",
        "ftp://files.example.com",
        "app.example.com",
        "https://",
        "https:///path",
        "https://user:pw@app.example.com",
        "https://app.example.com/?next=x",
        "https://app.example.com/#top",
        "https://app.example.com:99999",
        "https://app.example.com/a b",
        "https://app.example.com/\r\nX-Evil: 1",
        "",
    ],
)
def test_base_url_must_be_a_plain_http_origin(base_url: str) -> None:
    """A base URL with another scheme, no host, credentials or a query is refused."""
    with pytest.raises(ConfigurationError) as caught:
        render("plan_ended", base_url=base_url)
    assert caught.value.code == "mail.invalid_base_url"


# ---------------------------------------------------------------------------------------
# Errors


def test_unknown_template_name_is_a_configuration_error() -> None:
    """Asking for a template nobody defined names it and lists the known ones."""
    with pytest.raises(ConfigurationError) as caught:
        render_email(
            "welcome",
            to="a@example.com",
            language="en",
            timezone="UTC",
            params={},
            base_url=BASE_URL,
            message_id="m",
        )
    assert caught.value.code == "mail.unknown_template"
    assert "'welcome'" in caught.value.message
    assert "invitation" in caught.value.message


@pytest.mark.parametrize("param", sorted(TEMPLATE_PARAMS["invitation"]))
@pytest.mark.parametrize("how", ["absent", "none", "empty"])
def test_missing_params_are_named(param: str, how: str) -> None:
    """Every declared parameter is required; ``None`` and ``""`` count as missing."""
    params: dict[str, ParamValue] = dict(SAMPLE_PARAMS["invitation"])
    if how == "absent":
        del params[param]
    else:
        params[param] = None if how == "none" else ""
    with pytest.raises(ConfigurationError) as caught:
        render("invitation", params=params)
    assert caught.value.code == "mail.missing_param"
    assert caught.value.details == {"template": "invitation", "param": param}
    assert repr(param) in caught.value.message


def test_missing_param_errors_never_echo_the_token() -> None:
    """Errors raised while rendering do not repeat the values they were given."""
    params = {**SAMPLE_PARAMS["invitation"], "expires_at": "soon"}
    with pytest.raises(ConfigurationError) as caught:
        render("invitation", params=params)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize("to", ["", "taro", "taro@", "@example.com", "a@b\r\nBcc: c@d", "a b@c"])
def test_recipient_must_be_one_address(to: str) -> None:
    """A malformed recipient is refused before anything is rendered."""
    with pytest.raises(InvalidInput) as caught:
        render_email(
            "plan_ended",
            to=to,
            language="en",
            timezone="UTC",
            params={"org_name": "Acme"},
            base_url=BASE_URL,
            message_id="m",
        )
    assert caught.value.code == "mail.invalid_recipient"
