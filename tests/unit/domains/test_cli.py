"""The ``nulabpass domains check`` command keeps its argument and exit-code contract."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from nulabpass.domains import CheckResult, LookupStatus, Outcome, ResolverResult
from nulabpass.domains._cli import EXIT_CODES, add_parsers, nameserver, report


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="nulabpass")
    add_parsers(top.add_subparsers(dest="command"))
    return top


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        ("192.0.2.53:5300", ("192.0.2.53", 5300)),
        ("[2001:db8::53]:5300", ("2001:db8::53", 5300)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("[::1]", ("::1", 53)),
        ("localhost:53", ("127.0.0.1", 53)),
    ],
)
def test_nameservers_are_host_and_optional_port(text: str, expected: tuple[str, int]) -> None:
    assert nameserver(text) == expected


@pytest.mark.parametrize("text", ["1.2.3.4:0", "1.2.3.4:70000", "1.2.3.4:x", "[::1", ":53"])
def test_malformed_nameservers_are_usage_errors(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        nameserver(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["domains", "check", "example.com"],
        ["domains", "check", "--token", "t"],
        ["domains", "check", "example.com", "--token", "t", "--nameserver", "1.2.3.4:0"],
        ["domains", "check", "exa mple.com", "--token", "t"],
        ["domains", "check", "example.com", "--token", "has space"],
        ["domains", "check", "example.com", "--token", "t", "--timeout", "0"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parser().parse_args(argv)
    assert info.value.code == 2


def test_the_nameserver_option_repeats_and_the_domain_is_normalised() -> None:
    args = parser().parse_args(
        [
            "domains",
            "check",
            "Example.COM.",
            "--token",
            "abc",
            "--nameserver",
            "192.0.2.1",
            "--nameserver",
            "192.0.2.2:5353",
        ]
    )
    assert args.domain == "example.com"
    assert args.nameserver == [("192.0.2.1", 53), ("192.0.2.2", 5353)]


def test_exit_codes_follow_the_contract() -> None:
    assert EXIT_CODES == {
        Outcome.VERIFIED: 0,
        Outcome.ABSENT: 1,
        Outcome.WRONG_VALUE: 1,
        Outcome.INDETERMINATE: 3,
    }


def test_the_report_names_each_resolver_its_outcome_and_what_it_found() -> None:
    result = CheckResult(
        name="_nulabpass-challenge.example.com",
        expected="nulabpass-verification=t",
        verdict=Outcome.WRONG_VALUE,
        results=(
            ResolverResult(
                resolver="192.0.2.1",
                outcome=Outcome.WRONG_VALUE,
                status=LookupStatus.ANSWER,
                found=("nulabpass-verification=x",),
            ),
        ),
    )
    text = io.StringIO()
    json.dump(report("example.com", result), text)
    assert json.loads(text.getvalue()) == {
        "domain": "example.com",
        "record_name": "_nulabpass-challenge.example.com",
        "expected_value": "nulabpass-verification=t",
        "verdict": "wrong_value",
        "resolvers": [
            {
                "resolver": "192.0.2.1",
                "outcome": "wrong_value",
                "status": "answer",
                "found": ["nulabpass-verification=x"],
                "cname_chain": [],
                "detail": "",
            }
        ],
    }
