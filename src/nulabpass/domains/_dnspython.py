"""The :class:`~nulabpass.ports.TxtResolver` adapter on dnspython.

Theory of operation
-------------------
One :class:`DnsPythonTxtResolver` is one vantage point: a list of name servers tried in
order (the system's from ``/etc/resolv.conf`` when none is given). A lookup sends a TXT
query over UDP with an EDNS buffer of 1232 bytes (the size DNS Flag Day 2020 settled
on) and repeats it over TCP when the answer comes back truncated (RFC 7766 section 5).
A server that answers SERVFAIL or REFUSED, or does not answer in ``timeout`` seconds,
is skipped for the next one; the whole lookup gives up after ``lifetime`` seconds.

Authoritative servers answer a name that is a CNAME with the CNAME and, when the target
lives in the same zone, the target's records; a target in another zone comes back as
the bare CNAME and is asked for in a further query. Chains longer than
``max_cname_depth`` and chains that return to a name already seen end the lookup with
:attr:`~nulabpass.domains.LookupStatus.ERROR` (indeterminate, never absent).

The character-strings of each TXT record are joined into one value (RFC 7208 section
3.3), so a value longer than 255 bytes compares whole.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.TXT import TXT

from nulabpass.domains._model import LookupStatus, TxtLookup
from nulabpass.errors import ConfigurationError

__all__ = ["DnsPythonTxtResolver"]

#: EDNS(0) UDP payload size, as recommended by DNS Flag Day 2020.
_EDNS_PAYLOAD = 1232


class _Failed(Exception):
    """One query to every name server failed; carries the lookup status and words."""

    def __init__(self, status: LookupStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class DnsPythonTxtResolver:
    """Looks up TXT records with dnspython.

    ``nameservers`` are IP addresses, each optionally with its own port as
    ``(address, port)``; ``port`` applies to the others. ``timeout`` bounds each query
    to one server and ``lifetime`` the whole lookup, CNAME hops included. ``label``
    names this resolver in reports (default: its servers).
    """

    def __init__(
        self,
        nameservers: Sequence[str | tuple[str, int]] | None = None,
        *,
        port: int = 53,
        timeout: float = 2.0,
        lifetime: float = 6.0,
        max_cname_depth: int = 8,
        label: str | None = None,
    ) -> None:
        if timeout <= 0 or lifetime <= 0:
            raise ConfigurationError(
                "DNS timeout and lifetime must be positive numbers of seconds.",
                code="domain.resolver_config",
            )
        if nameservers is None:
            try:
                system = dns.resolver.Resolver(configure=True)
            except dns.resolver.NoResolverConfiguration as exc:
                raise ConfigurationError(
                    "No system DNS resolver is configured (/etc/resolv.conf); name the "
                    "servers to ask explicitly.",
                    code="domain.resolver_config",
                ) from exc
            servers = [(str(ns), system.port) for ns in system.nameservers]
        else:
            servers = [(ns, port) if isinstance(ns, str) else (ns[0], ns[1]) for ns in nameservers]
        if not servers:
            raise ConfigurationError(
                "A DNS resolver needs at least one name server.", code="domain.resolver_config"
            )
        self._servers = tuple(servers)
        self._timeout = timeout
        self._lifetime = lifetime
        self._max_depth = max_cname_depth
        self.label = label or ",".join(_server_text(h, p) for h, p in self._servers)

    def lookup(self, name: str) -> TxtLookup:
        """The TXT records of ``name`` (an ASCII domain name), following CNAMEs."""
        deadline = time.monotonic() + self._lifetime
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException:
            return self._result(name, LookupStatus.ERROR, (), f"{name!r} is not a DNS name")
        seen = {qname}
        chain: list[str] = []
        current = qname
        while True:
            try:
                response = self._ask(current, deadline)
            except _Failed as failure:
                return self._result(name, failure.status, chain, failure.detail)
            rcode = response.rcode()
            walked, records, loop = self._walk(response, current, seen, chain)
            if loop is not None:
                return self._result(name, LookupStatus.ERROR, chain, loop)
            if len(chain) > self._max_depth:
                return self._result(
                    name,
                    LookupStatus.ERROR,
                    chain,
                    f"the CNAME chain is longer than {self._max_depth} names",
                )
            if rcode == dns.rcode.NXDOMAIN:
                return self._result(
                    name,
                    LookupStatus.NXDOMAIN,
                    chain,
                    f"{walked.to_text(omit_final_dot=True)} does not exist (NXDOMAIN)",
                )
            if rcode != dns.rcode.NOERROR:
                return self._result(
                    name, LookupStatus.ERROR, chain, f"unexpected RCODE {dns.rcode.to_text(rcode)}"
                )
            if records is not None:
                return TxtLookup(
                    name=name,
                    status=LookupStatus.ANSWER,
                    records=records,
                    chain=tuple(chain),
                    resolver=self.label,
                )
            if walked == current:
                return self._result(
                    name,
                    LookupStatus.NODATA,
                    chain,
                    f"{walked.to_text(omit_final_dot=True)} has no TXT record",
                )
            # The chain left the zone this server answered for: ask for its target.
            current = walked

    def _walk(
        self,
        response: dns.message.Message,
        start: dns.name.Name,
        seen: set[dns.name.Name],
        chain: list[str],
    ) -> tuple[dns.name.Name, tuple[bytes, ...] | None, str | None]:
        """Follow CNAMEs through the answer section from ``start``; return where the
        chain ended, that name's TXT values if the answer holds them, and a loop
        description if the chain came back on itself."""
        current = start
        for _ in range(self._max_depth + 2):
            txt = _rrset(response, current, dns.rdatatype.TXT)
            if txt is not None:
                values = tuple(b"".join(rd.strings) for rd in txt if isinstance(rd, TXT))
                return current, values, None
            cname = _rrset(response, current, dns.rdatatype.CNAME)
            if cname is None:
                return current, None, None
            target = next(rd.target for rd in cname if isinstance(rd, CNAME))
            chain.append(target.to_text(omit_final_dot=True))
            if target in seen:
                return target, None, f"CNAME loop at {target.to_text(omit_final_dot=True)}"
            seen.add(target)
            current = target
            if len(chain) > self._max_depth:
                return current, None, None
        return current, None, None

    def _ask(self, qname: dns.name.Name, deadline: float) -> dns.message.Message:
        """One question to the servers in turn; the first usable answer wins."""
        failures: list[tuple[LookupStatus, str]] = []
        for host, port in self._servers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            where = _server_text(host, port)
            query = dns.message.make_query(
                qname, dns.rdatatype.TXT, use_edns=0, payload=_EDNS_PAYLOAD
            )
            try:
                response = dns.query.udp(
                    query, host, timeout=min(self._timeout, remaining), port=port
                )
                if response.flags & dns.flags.TC:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise dns.exception.Timeout
                    response = dns.query.tcp(
                        query, host, timeout=min(self._timeout, remaining), port=port
                    )
            except dns.exception.Timeout:
                failures.append((LookupStatus.TIMEOUT, f"{where} did not answer in time"))
                continue
            except OSError as exc:
                failures.append((LookupStatus.ERROR, f"{where} could not be reached: {exc}"))
                continue
            except dns.exception.DNSException as exc:
                failures.append((LookupStatus.ERROR, f"{where} sent a malformed answer: {exc}"))
                continue
            rcode = response.rcode()
            if rcode == dns.rcode.SERVFAIL:
                failures.append((LookupStatus.SERVFAIL, f"{where} answered SERVFAIL"))
                continue
            if rcode == dns.rcode.REFUSED:
                failures.append((LookupStatus.REFUSED, f"{where} answered REFUSED"))
                continue
            return response
        if not failures:
            raise _Failed(LookupStatus.TIMEOUT, "the lookup ran out of time")
        statuses = {status for status, _ in failures}
        status = statuses.pop() if len(statuses) == 1 else LookupStatus.ERROR
        raise _Failed(status, "; ".join(detail for _, detail in failures))

    def _result(
        self, name: str, status: LookupStatus, chain: Sequence[str], detail: str
    ) -> TxtLookup:
        return TxtLookup(
            name=name, status=status, chain=tuple(chain), resolver=self.label, detail=detail
        )


def _rrset(
    response: dns.message.Message, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    for rrset in response.answer:
        if rrset.name == name and rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN:
            return rrset
    return None


def _server_text(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == 53 else f"{shown}:{port}"
