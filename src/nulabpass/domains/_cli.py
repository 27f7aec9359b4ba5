"""``nulabpass domains check``: look up a domain's challenge record from the shell.

Contract (stable): ``nulabpass domains check DOMAIN --token TOKEN [--nameserver
HOST[:PORT] ...]`` looks up ``_nulabpass-challenge.DOMAIN`` for the value
``nulabpass-verification=TOKEN`` through each name server given (each one is a
separate resolver and all must agree), or through the system's resolver when none is
given, and prints one JSON object. Exit codes: 0 verified, 1 absent or wrong value,
3 indeterminate, 2 usage errors.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
from typing import TextIO

from nulabpass.domains._model import CheckResult, DomainPolicy, Outcome
from nulabpass.domains._names import normalize_domain
from nulabpass.errors import InvalidInput
from nulabpass.ports import TxtResolver

__all__ = ["add_parsers", "nameserver", "run"]

EXIT_CODES = {
    Outcome.VERIFIED: 0,
    Outcome.ABSENT: 1,
    Outcome.WRONG_VALUE: 1,
    Outcome.INDETERMINATE: 3,
}


def nameserver(value: str) -> tuple[str, int]:
    """Parse ``HOST[:PORT]`` (``[v6]:PORT`` or a bare IPv6 address too) into an address
    and a port; a host name is resolved once, here."""
    text = value.strip()
    host, port = text, 53
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise argparse.ArgumentTypeError(f"{value!r}: missing ']' after an IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise argparse.ArgumentTypeError(f"{value!r}: expected [ADDRESS]:PORT")
            port = _port(rest[1:], value)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, value)
    if not host:
        raise argparse.ArgumentTypeError(f"{value!r}: name a host, e.g. 192.0.2.53:53")
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot resolve name server {host!r}: {exc}") from None
    return str(infos[0][4][0]), port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{whole!r}: the port must be a number from 1 to 65535")
    return int(text)


def _domain(value: str) -> str:
    try:
        return normalize_domain(value)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _token(value: str) -> str:
    if not value or any(c.isspace() or not c.isprintable() or c == '"' for c in value):
        raise argparse.ArgumentTypeError(
            "the token is the part after 'nulabpass-verification=' in the record to publish"
        )
    return value


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 60:
        raise argparse.ArgumentTypeError("the timeout must be between 0 and 60 seconds")
    return seconds


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``domains check`` to the ``nulabpass`` parser."""
    domains = sub.add_parser("domains", help="email domain verification tools")
    domains_sub = domains.add_subparsers(dest="domains_command", metavar="ACTION", required=True)
    check = domains_sub.add_parser(
        "check",
        help="look up a domain's verification record",
        description=(
            "Look up the TXT record _nulabpass-challenge.DOMAIN for the value "
            "nulabpass-verification=TOKEN and print one JSON object with each resolver's "
            "outcome and what it found, and the verdict: verified, absent, wrong_value or "
            "indeterminate. Exit codes: 0 verified, 1 absent or wrong value, "
            "3 indeterminate, 2 usage errors."
        ),
    )
    check.add_argument("domain", metavar="DOMAIN", type=_domain, help="e.g. example.com")
    check.add_argument(
        "--token", required=True, type=_token, help="the token of the record to look for"
    )
    check.add_argument(
        "--nameserver",
        action="append",
        type=nameserver,
        metavar="HOST[:PORT]",
        help=(
            "ask this name server (repeat to ask several; all must agree); "
            "default: the system's resolver"
        ),
    )
    check.add_argument(
        "--timeout",
        type=_seconds,
        default=3.0,
        metavar="SECONDS",
        help="how long to wait for each server (default: 3)",
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``domains check``; return the exit code."""
    from nulabpass._domains_service import check_txt
    from nulabpass.domains._dnspython import DnsPythonTxtResolver

    policy = DomainPolicy()
    resolvers: list[TxtResolver]
    lifetime = args.timeout * 2
    if args.nameserver:
        resolvers = [
            DnsPythonTxtResolver([server], timeout=args.timeout, lifetime=lifetime)
            for server in args.nameserver
        ]
    else:
        resolvers = [DnsPythonTxtResolver(timeout=args.timeout, lifetime=lifetime, label="system")]
    result = check_txt(resolvers, policy.record_name(args.domain), policy.record_value(args.token))
    json.dump(report(args.domain, result), out or sys.stdout, indent=2)
    (out or sys.stdout).write("\n")
    return EXIT_CODES[result.verdict]


def report(domain: str, result: CheckResult) -> dict[str, object]:
    """The JSON object the command prints."""
    return {
        "domain": domain,
        "record_name": result.name,
        "expected_value": result.expected,
        "verdict": result.verdict.value,
        "resolvers": [
            {
                "resolver": r.resolver,
                "outcome": r.outcome.value,
                "status": r.status.value,
                "found": list(r.found),
                "cname_chain": list(r.chain),
                "detail": r.detail,
            }
            for r in result.results
        ],
    }
