"""Re-verifying 10,000 verified domains with ``reverify_due``, beside bare dnspython.

A real Knot DNS server on loopback serves one ``verify.test`` zone holding the
challenge record of every domain. The domains (and their verified challenges, all due)
are written straight into a memory store before timing starts; each run re-seeds them.

(a) Loopback. Ours: ``np.domains.reverify_due(now)`` with a
:class:`~nulabpass.domains.DnsPythonTxtResolver` pointed at the server, the default
:class:`~nulabpass.domains.DomainPolicy` (batches of 500, 32 lookups at once): it reads
due domains in batches, looks each up, judges the answer and writes the outcome in one
transaction per domain. The anchor: a sequential loop of bare dnspython queries,
``dns.resolver.Resolver(configure=False).resolve(name, "TXT")`` on each record name,
joining the strings and comparing them with the expected value, nothing written.
Target: ratio at least 0.7, i.e. the bookkeeping costs little.

(b) Latency. A small UDP proxy, written for this benchmark and run in its own process,
forwards every query to the server after holding it 20 ms, as a distant name server
would. Ours: the same ``reverify_due`` through the proxy. The anchor: the same
sequential loop through the proxy; since every query of that loop costs the same 20 ms
and more, it is timed on ``--anchor-sample`` queries (1,000 by default; ``0`` for all)
and scaled to the full count. Target: ratio at least 10, i.e. concurrency pays when the
network is slow.

Prints the machine facts, absolute figures and::

    ratio domains.reverify.loopback.vs_bare_dnspython: <anchor seconds / our seconds>
    ratio domains.reverify.latency.vs_sequential: <anchor seconds / our seconds>

Run it with ``.venv/bin/python benchmarks/bench_domains.py`` as root with Knot DNS
installed (``apt-get install knot knot-dnsutils``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import cast

import dns.resolver

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from knot_server import KnotServer, free_port  # noqa: E402

from nulabpass.domains import DnsPythonTxtResolver, DomainChallenge, DomainPolicy  # noqa: E402
from nulabpass.domains._judge import new_token  # noqa: E402
from nulabpass.org._model import Domain, DomainStatus, Organization, OrgSettings  # noqa: E402
from nulabpass.stores.memory import MemoryStore  # noqa: E402
from nulabpass.testing import FrozenClock, make_nulabpass  # noqa: E402

ZONE = "verify.test"
DELAY = 0.020
POLICY = DomainPolicy()


def significant(value: float) -> str:
    """Three significant digits."""
    return f"{value:.3g}"


# -- the delaying proxy (runs in a child process) ---------------------------------------


class _Relay(asyncio.DatagramProtocol):
    """Holds each query ``delay`` seconds, forwards it upstream, relays the answer."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(self.delay, lambda: loop.create_task(self._forward(data, addr)))

    async def _forward(self, data: bytes, client: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()

        class _Once(asyncio.DatagramProtocol):
            def datagram_received(self, reply: bytes, _addr: tuple[str, int]) -> None:
                if not answer.done():
                    answer.set_result(reply)

        transport, _ = await loop.create_datagram_endpoint(
            _Once, remote_addr=self.upstream, family=socket.AF_INET
        )
        try:
            transport.sendto(data)
            reply = await asyncio.wait_for(answer, timeout=5)
        except TimeoutError:
            return
        finally:
            transport.close()
        if self.transport is not None:
            self.transport.sendto(reply, client)


def run_proxy(listen_port: int, upstream_port: int, delay: float) -> None:
    """Serve the delaying proxy until killed."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(
            lambda: _Relay(("127.0.0.1", upstream_port), delay),
            local_addr=("127.0.0.1", listen_port),
        )
        await asyncio.Event().wait()

    asyncio.run(main())


def start_proxy(upstream_port: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - this very script, with fixed arguments
        [sys.executable, __file__, "--proxy", str(port), str(upstream_port)]
    )
    query = dns.message.make_query(f"{ZONE}.", "SOA")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
            return process, port
        except dns.exception.Timeout:
            continue
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the delaying proxy did not start")


# -- the scenario -------------------------------------------------------------------------


def make_domains(count: int) -> list[tuple[str, str]]:
    return [(f"d{i:05d}.{ZONE}", new_token()) for i in range(count)]


def zone_lines(domains: list[tuple[str, str]]) -> str:
    return "".join(
        f'{POLICY.record_name(name)}. IN TXT "{POLICY.record_value(token)}"\n'
        for name, token in domains
    )


def seeded(domains: list[tuple[str, str]], address: tuple[str, int]) -> tuple[object, FrozenClock]:
    """A facade on a fresh memory store holding every domain verified and due now."""
    clock = FrozenClock()
    store = MemoryStore()
    resolver = DnsPythonTxtResolver([address], timeout=2.0, lifetime=6.0)
    np = make_nulabpass(store, clock=clock, resolver=resolver)
    now = clock.now()
    with store.transaction() as uow:
        uow.organizations.add(
            Organization(
                id="org_b", name="Bench", settings=OrgSettings(), created_at=now, updated_at=now
            )
        )
        for index, (name, token) in enumerate(domains):
            domain_id = f"dom_{index:05d}"
            uow.domains.add(
                Domain(
                    id=domain_id,
                    org_id="org_b",
                    name=name,
                    status=DomainStatus.VERIFIED,
                    include_subdomains=False,
                    created_at=now,
                    updated_at=now,
                    verified_at=now,
                )
            )
            uow.domain_challenges.add(
                DomainChallenge(
                    domain_id=domain_id,
                    org_id="org_b",
                    domain=name,
                    token=token,
                    issued_at=now,
                    expires_at=now + timedelta(days=7),
                    verified_at=now,
                    next_check_at=now,
                )
            )
    return np, clock


def time_ours(domains: list[tuple[str, str]], address: tuple[str, int]) -> float:
    np, clock = seeded(domains, address)
    clock.advance(timedelta(seconds=1))
    started = time.perf_counter()
    report = np.domains.reverify_due(clock.now())  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    if report.checked != len(domains) or report.verified != len(domains):
        raise RuntimeError(f"reverify_due did not verify every domain: {report}")
    return elapsed


def time_bare(domains: list[tuple[str, str]], address: tuple[str, int]) -> float:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [address[0]]
    resolver.port = address[1]
    resolver.timeout = 2.0
    resolver.lifetime = 6.0
    resolver.cache = None
    started = time.perf_counter()
    for name, token in domains:
        wanted = POLICY.record_value(token).encode()
        answer = resolver.resolve(POLICY.record_name(name), "TXT")
        if not any(b"".join(r.strings) == wanted for r in answer):
            raise RuntimeError(f"the anchor did not find the record of {name}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--anchor-sample", type=int, default=1_000)
    parser.add_argument("--proxy", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.proxy:
        run_proxy(args.proxy[0], args.proxy[1], DELAY)
        return 0
    if os.geteuid() != 0:
        print("run as root: knotd is started as the knot user with runuser")
        return 2

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus")
    print(f"dnspython {dns.version.version}; {args.domains} domains; policy {POLICY}")
    domains = make_domains(args.domains)
    server = KnotServer({ZONE: zone_lines(domains)})
    server.start()
    proxy = None
    try:
        # Warm up both paths (imports, the server's caches) on a few names.
        time_bare(domains[:200], server.address)
        time_ours(domains[:200], server.address)

        ours = time_ours(domains, server.address)
        bare = time_bare(domains, server.address)
        print(
            f"loopback: reverify_due {ours:.2f} s ({args.domains / ours:.0f}/s); "
            f"bare dnspython loop {bare:.2f} s ({args.domains / bare:.0f}/s)"
        )
        print(f"ratio domains.reverify.loopback.vs_bare_dnspython: {significant(bare / ours)}")

        proxy, proxy_port = start_proxy(server.port)
        slow = ("127.0.0.1", proxy_port)
        ours_slow = time_ours(domains, slow)
        sample = domains if args.anchor_sample <= 0 else domains[: args.anchor_sample]
        bare_sample = time_bare(sample, slow)
        bare_slow = bare_sample * len(domains) / len(sample)
        print(
            f"latency (+{DELAY * 1000:.0f} ms a query): reverify_due {ours_slow:.2f} s; "
            f"sequential loop {bare_sample:.2f} s for {len(sample)} queries, "
            f"{bare_slow:.1f} s scaled to {len(domains)}"
        )
        print(
            f"ratio domains.reverify.latency.vs_sequential: {significant(bare_slow / ours_slow)}"
        )
    finally:
        if proxy is not None:
            proxy.kill()
            proxy.wait()
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
