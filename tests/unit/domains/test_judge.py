"""DNS answers are judged exactly, and resolvers must all agree for a verdict."""

from __future__ import annotations

import pytest

from nulabpass.domains import (
    LookupStatus,
    Outcome,
    ResolverResult,
    TxtLookup,
    combine,
    judge,
    new_token,
)
from nulabpass.errors import ConfigurationError

EXPECTED = b"nulabpass-verification=abc"


def lookup(status: LookupStatus, *records: bytes) -> TxtLookup:
    return TxtLookup(name="_c.example.com", status=status, records=records, resolver="r")


def test_tokens_carry_at_least_128_random_bits_and_never_repeat() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in tokens:
        assert len(token) * 5 >= 128
        assert token.isalnum()
        assert token == token.lower()


def test_the_expected_value_among_other_records_verifies() -> None:
    result = judge(lookup(LookupStatus.ANSWER, b"v=spf1 -all", EXPECTED), EXPECTED)
    assert result.outcome is Outcome.VERIFIED
    assert result.found == ("v=spf1 -all", EXPECTED.decode())


@pytest.mark.parametrize(
    "value",
    [
        EXPECTED + b"x",
        EXPECTED[:-1],
        EXPECTED.upper(),
        b" " + EXPECTED,
        b"nulabpass-verification=other",
    ],
)
def test_any_other_value_is_a_wrong_value(value: bytes) -> None:
    assert judge(lookup(LookupStatus.ANSWER, value), EXPECTED).outcome is Outcome.WRONG_VALUE


def test_long_values_compare_whole() -> None:
    long_expected = b"nulabpass-verification=" + b"a" * 600
    near = long_expected[:-1] + b"b"
    assert judge(lookup(LookupStatus.ANSWER, near), long_expected).outcome is Outcome.WRONG_VALUE
    ok = judge(lookup(LookupStatus.ANSWER, long_expected), long_expected)
    assert ok.outcome is Outcome.VERIFIED


@pytest.mark.parametrize("status", [LookupStatus.NXDOMAIN, LookupStatus.NODATA])
def test_a_missing_name_or_no_txt_is_absent(status: LookupStatus) -> None:
    assert judge(lookup(status), EXPECTED).outcome is Outcome.ABSENT


@pytest.mark.parametrize(
    "status",
    [LookupStatus.SERVFAIL, LookupStatus.REFUSED, LookupStatus.TIMEOUT, LookupStatus.ERROR],
)
def test_failures_are_indeterminate_never_absent(status: LookupStatus) -> None:
    assert judge(lookup(status), EXPECTED).outcome is Outcome.INDETERMINATE


def test_non_utf8_values_are_shown_escaped() -> None:
    result = judge(lookup(LookupStatus.ANSWER, b"\xff\xfe"), EXPECTED)
    assert result.found == ("\\xff\\xfe",)


def _r(outcome: Outcome) -> ResolverResult:
    return ResolverResult(resolver="r", outcome=outcome, status=LookupStatus.ANSWER)


@pytest.mark.parametrize(
    ("outcomes", "verdict"),
    [
        ((Outcome.VERIFIED,), Outcome.VERIFIED),
        ((Outcome.VERIFIED, Outcome.VERIFIED), Outcome.VERIFIED),
        ((Outcome.VERIFIED, Outcome.ABSENT), Outcome.ABSENT),
        ((Outcome.VERIFIED, Outcome.WRONG_VALUE), Outcome.WRONG_VALUE),
        ((Outcome.ABSENT, Outcome.WRONG_VALUE), Outcome.WRONG_VALUE),
        ((Outcome.VERIFIED, Outcome.INDETERMINATE), Outcome.INDETERMINATE),
        ((Outcome.ABSENT, Outcome.INDETERMINATE), Outcome.INDETERMINATE),
        ((Outcome.ABSENT, Outcome.ABSENT), Outcome.ABSENT),
    ],
)
def test_all_resolvers_must_agree_and_any_indeterminate_answer_wins(
    outcomes: tuple[Outcome, ...], verdict: Outcome
) -> None:
    assert combine("n", "v", [_r(o) for o in outcomes]).verdict is verdict


def test_a_check_without_resolvers_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        combine("n", "v", [])
