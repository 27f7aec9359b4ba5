"""Host overrides of templates and link paths."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from nulabpass.errors import ConfigurationError
from nulabpass.mail import (
    DEFAULT_LINK_PATHS,
    DEFAULT_TEMPLATES,
    MailTemplate,
    ParamValue,
    TemplateCatalog,
    render_email,
)
from nulabpass.ports import EmailMessage

BASE_URL = "https://app.example.com"

INVITATION_PARAMS = {
    "org_name": "Acme",
    "inviter_name": "Hanako",
    "display_name": "Taro",
    "token": "t0k3n",
    "expires_at": "2026-12-11T16:00:00+00:00",
}


def render(
    name: str,
    catalog: TemplateCatalog,
    params: Mapping[str, ParamValue],
    language: str = "en",
) -> EmailMessage:
    return render_email(
        name,
        to="taro@example.com",
        language=language,
        timezone="Asia/Tokyo",
        params=params,
        base_url=BASE_URL,
        message_id="m1",
        catalog=catalog,
    )


def test_default_catalog_holds_the_built_in_templates() -> None:
    """A catalog without overrides is exactly the built-in set."""
    catalog = TemplateCatalog()
    assert catalog.templates == DEFAULT_TEMPLATES
    assert catalog.link_paths == DEFAULT_LINK_PATHS
    assert TemplateCatalog.DEFAULT_TEMPLATES is DEFAULT_TEMPLATES


def test_override_replaces_one_language_and_keeps_the_others() -> None:
    """Overriding English changes English only; Japanese stays built in."""
    custom = MailTemplate(
        subject="Join {org_name} on Cacoo",
        text="{display_name}, {inviter_name} added you. {link} (until {expires_at})",
        html="<p>{display_name}</p><a href='{link}'>Join</a>",
    )
    catalog = TemplateCatalog({("invitation", "en"): custom})
    english = render("invitation", catalog, INVITATION_PARAMS)
    assert english.subject == "Join Acme on Cacoo"
    assert english.text == (
        "Taro, Hanako added you. "
        "https://app.example.com/invitations/accept?token=t0k3n "
        "(until December 12, 2026 01:00 (Asia/Tokyo))"
    )
    japanese = render("invitation", catalog, INVITATION_PARAMS, language="ja")
    assert japanese.subject == "HanakoさんからAcmeへの招待が届いています"


def test_override_language_keys_are_normalized() -> None:
    """``("invitation", "pt_BR")`` serves ``pt-BR`` readers; plain ``pt`` falls back."""
    custom = MailTemplate(subject="Convite de {org_name}", text="{link}", html="{link}")
    catalog = TemplateCatalog({("invitation", "pt_BR"): custom})
    assert ("invitation", "pt-br") in catalog.templates
    assert render("invitation", catalog, INVITATION_PARAMS, "pt-BR").language == "pt-br"
    assert render("invitation", catalog, INVITATION_PARAMS, "pt").language == "en"


def test_link_paths_can_be_moved_by_the_host() -> None:
    """A host mounts its pages elsewhere through ``link_paths``."""
    catalog = TemplateCatalog(link_paths={"invitation": "/cacoo/join/"})
    message = render("invitation", catalog, INVITATION_PARAMS)
    assert "https://app.example.com/cacoo/join?token=t0k3n" in message.text.splitlines()
    assert catalog.link_paths["invitation"] == "/cacoo/join"
    assert catalog.link_paths["plan_ended"] == DEFAULT_LINK_PATHS["plan_ended"]


@pytest.mark.parametrize(
    "path", ["../admin", "/a/../b", "//evil.example/x", "/a?b=c", "/a#b", "/a b", "/é", "x//y"]
)
def test_link_paths_are_plain_paths(path: str) -> None:
    """A link path cannot climb, name another host, or carry a query or fragment."""
    with pytest.raises(ConfigurationError) as caught:
        TemplateCatalog(link_paths={"invitation": path})
    assert caught.value.code == "mail.invalid_link_path"


def test_host_can_add_a_template_of_its_own() -> None:
    """A new name renders with whatever parameters its placeholders use."""
    catalog = TemplateCatalog(
        {
            ("seat_report", "en"): MailTemplate(
                subject="{org_name}: {seats:,} seats",
                text="{org_name} uses {seats:,} seats as of {report_at}. {link}",
                html="<b>{org_name}</b> {seats:,}",
            )
        },
        link_paths={"seat_report": "/admin/seats"},
    )
    assert "seat_report" in catalog.names
    message = render(
        "seat_report",
        catalog,
        {"org_name": "A&B", "seats": 1200, "report_at": "2026-12-01T00:00:00Z"},
    )
    assert message.subject == "A&B: 1,200 seats"
    assert message.text == (
        "A&B uses 1,200 seats as of December 1, 2026 09:00 (Asia/Tokyo). "
        "https://app.example.com/admin/seats"
    )
    assert message.html == "<b>A&amp;B</b> 1,200"


def test_host_template_with_a_link_path_carries_a_given_token() -> None:
    """A host's own template puts a supplied token in its link, and nowhere else."""
    catalog = TemplateCatalog(
        {("magic_link", "en"): MailTemplate(subject="Sign in", text="{link}", html="{link}")},
        link_paths={"magic_link": "/magic"},
    )
    message = render("magic_link", catalog, {"token": "a&b"})
    assert message.text == "https://app.example.com/magic?token=a%26b"


def test_host_template_missing_a_param_names_it() -> None:
    """A placeholder without a value is reported when rendering a host template."""
    catalog = TemplateCatalog({("digest", "en"): MailTemplate("{title}", "{body}", "{body}")})
    with pytest.raises(ConfigurationError) as caught:
        render("digest", catalog, {"title": "Weekly"})
    assert caught.value.code == "mail.missing_param"
    assert caught.value.details["param"] == "body"


def test_host_template_without_english_fails_for_other_readers() -> None:
    """A template only in French cannot serve an English reader: that is reported."""
    catalog = TemplateCatalog({("bulletin", "fr"): MailTemplate("Bulletin", "x", "x")})
    assert render("bulletin", catalog, {}, language="fr").subject == "Bulletin"
    with pytest.raises(ConfigurationError) as caught:
        render("bulletin", catalog, {}, language="ja")
    assert caught.value.code == "mail.unknown_template"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (MailTemplate("Hi", "Your token: {token}", "{link}"), "{token}"),
        (MailTemplate("Hi", "{link}", "<a href='?t={token}'>go</a>"), "{token}"),
        (MailTemplate("Hi {org_name.__class__}", "{link}", "{link}"), "plain names"),
        (MailTemplate("Hi {org_name[0]}", "{link}", "{link}"), "plain names"),
        (MailTemplate("Hi {}", "{link}", "{link}"), "plain names"),
        (MailTemplate("Hi {org_name!r}", "{link}", "{link}"), "conversion"),
        (MailTemplate("Hi {org_name:{width}}", "{link}", "{link}"), "nested"),
        (MailTemplate("Hi {org_name", "{link}", "{link}"), "does not parse"),
        (MailTemplate("Hi {team_name}", "{link}", "{link}"), "team_name"),
    ],
)
def test_overrides_are_checked_when_the_catalog_is_built(
    template: MailTemplate, reason: str
) -> None:
    """Bad placeholders fail at start-up, and ``{token}`` is never allowed."""
    with pytest.raises(ConfigurationError) as caught:
        TemplateCatalog({("invitation", "en"): template})
    assert caught.value.code == "mail.invalid_template"
    assert reason in caught.value.message


def test_token_is_refused_in_host_templates_too() -> None:
    """Even a template of the host's own cannot print the token outside the link."""
    with pytest.raises(ConfigurationError) as caught:
        TemplateCatalog({("magic_link", "en"): MailTemplate("x", "{token}", "x")})
    assert caught.value.code == "mail.invalid_template"


def test_override_language_must_be_a_tag() -> None:
    """An override keyed by something that is not a language tag is refused."""
    with pytest.raises(ConfigurationError) as caught:
        TemplateCatalog({("invitation", "English!"): MailTemplate("x", "x", "x")})
    assert caught.value.code == "mail.invalid_template"


def test_resolve_reports_the_language_used() -> None:
    """``resolve`` tells which language served a request."""
    catalog = TemplateCatalog()
    language, template = catalog.resolve("plan_ended", "ja-JP")
    assert language == "ja"
    assert template is DEFAULT_TEMPLATES[("plan_ended", "ja")]
