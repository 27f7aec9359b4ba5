"""Domain names are normalised and only claimable domains are accepted."""

from __future__ import annotations

import pytest

from nulabpass.domains import (
    FREE_MAIL_DOMAINS,
    check_claimable,
    is_free_mail,
    normalize_domain,
    registrable_part,
)
from nulabpass.errors import InvalidInput


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.COM", "example.com"),
        ("  example.com.  ", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com", "example.com"),  # full width
        ("mail.eng.example.co.jp", "mail.eng.example.co.jp"),
    ],
)
def test_domain_names_are_lower_cased_without_trailing_dot_and_as_a_labels(
    raw: str, expected: str
) -> None:
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("192.0.2.1", "domain.ip_literal"),
        ("[2001:db8::1]", "domain.ip_literal"),
        ("2001:db8::1", "domain.ip_literal"),
        ("example.123", "domain.ip_literal"),
        ("", "domain.invalid"),
        ("user@example.com", "domain.invalid"),
        ("https://example.com/", "domain.invalid"),
        ("exa mple.com", "domain.invalid"),
        ("-bad.example.com", "domain.invalid"),
        ("a..b.com", "domain.invalid"),
        ("x" * 64 + ".com", "domain.invalid"),
    ],
)
def test_malformed_names_and_ip_literals_are_refused_with_a_clear_code(
    raw: str, code: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_domain(raw)
    assert info.value.code == code


@pytest.mark.parametrize("suffix", ["com", "co.uk", "github.io", "jp", "example", "CO.JP."])
def test_public_suffixes_cannot_be_claimed(suffix: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_claimable(suffix)
    assert info.value.code == "domain.public_suffix"


@pytest.mark.parametrize("name", ["gmail.com", "GMail.com.", "yahoo.co.jp", "outlook.com"])
def test_free_mail_domains_cannot_be_claimed(name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_claimable(name)
    assert info.value.code == "domain.free_mail"
    assert "free email provider" in info.value.message


def test_a_host_can_extend_the_free_mail_list() -> None:
    assert check_claimable("mail.example") == "mail.example"
    with pytest.raises(InvalidInput) as info:
        check_claimable("mail.example", extra_free_mail={"mail.example"})
    assert info.value.code == "domain.free_mail"


def test_subdomains_of_free_mail_providers_are_free_mail_too() -> None:
    assert is_free_mail("eu.gmail.com")
    assert not is_free_mail("gmail.com.example")


def test_registrable_domains_and_names_under_them_are_claimable() -> None:
    assert check_claimable("Acme.co.uk") == "acme.co.uk"
    assert check_claimable("eng.acme.example") == "eng.acme.example"
    assert registrable_part("eng.acme.co.uk") == "acme.co.uk"
    assert registrable_part("co.uk") is None


def test_the_free_mail_list_holds_only_normalised_registrable_names() -> None:
    for name in FREE_MAIL_DOMAINS:
        assert normalize_domain(name) == name
        assert registrable_part(name) is not None, name
