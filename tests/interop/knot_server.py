"""A real authoritative DNS server (Knot DNS) on loopback for interop tests.

Each :class:`KnotServer` runs one ``knotd`` as the package's ``knot`` user, listening on
127.0.0.1 and a high port, with its configuration, zones, database and control socket in
a temporary directory. Records change at run time through ``knotc`` zone transactions.
Tests that need it skip, saying how to install Knot, when ``knotd`` is missing or the
tests do not run as root (``runuser`` needs root).
"""

# The commands run here are fixed programs with arguments the tests build themselves.
# ruff: noqa: S603, S607

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

__all__ = ["KnotServer", "free_port", "require_knot"]

INSTALL_HINT = (
    "Knot DNS is not installed; install it with `apt-get update && "
    "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends knot "
    "knot-dnsutils` (as root) to run the DNS interop tests"
)


def require_knot() -> None:
    """Skip the calling test module unless knotd, knotc and kdig can run here."""
    missing = [tool for tool in ("knotd", "knotc", "kdig") if shutil.which(tool) is None]
    if missing and not all(Path("/usr/sbin", t).exists() for t in missing):
        pytest.skip(f"{INSTALL_HINT} (missing: {', '.join(missing)})", allow_module_level=True)
    if os.geteuid() != 0:
        pytest.skip(
            "the Knot DNS interop tests start knotd as the knot user with runuser, which "
            "needs root",
            allow_module_level=True,
        )


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def free_port() -> int:
    """A loopback port free for both UDP and TCP a moment ago."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


_SOA = (
    "$TTL 60\n"
    "@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n"
    "@ IN NS ns.{zone}.\n"
    "ns IN A 127.0.0.1\n"
)


class KnotServer:
    """One running ``knotd`` serving ``zones`` (zone name -> extra zone-file lines);
    ``broken`` zones get a garbage zone file, so queries into them answer SERVFAIL."""

    def __init__(
        self,
        zones: Mapping[str, str],
        *,
        broken: Iterable[str] = (),
    ) -> None:
        # Its own directory under /tmp: pytest's temporary directories sit below a
        # parent only root may enter, and knotd runs as the knot user.
        self.dir = Path(tempfile.mkdtemp(prefix="nulabpass-knot-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        self.zones = dict(zones)
        self.broken = tuple(broken)
        self.conf = self.dir / "knot.conf"
        self.sock = self.dir / "knot.sock"
        self._write()

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens."""
        return "127.0.0.1", self.port

    def _write(self) -> None:
        zone_dir = self.dir / "zones"
        zone_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "db").mkdir(exist_ok=True)
        for zone, extra in self.zones.items():
            (zone_dir / f"{zone}.zone").write_text(
                f"$ORIGIN {zone}.\n" + _SOA.format(zone=zone) + extra, encoding="utf-8"
            )
        for zone in self.broken:
            (zone_dir / f"{zone}.zone").write_text(
                "this is not a zone file {{{\n", encoding="utf-8"
            )
        lines = [
            "server:",
            f"    listen: 127.0.0.1@{self.port}",
            f"    rundir: {self.dir}",
            "database:",
            f"    storage: {self.dir / 'db'}",
            "control:",
            f"    listen: {self.sock}",
            "log:",
            "  - target: stderr",
            "    any: warning",
            "template:",
            "  - id: default",
            f"    storage: {zone_dir}",
            '    file: "%s.zone"',
            "    zonefile-sync: -1",
            "    zonefile-load: whole",
            "    journal-content: none",
            "    semantic-checks: off",
            "zone:",
        ]
        for zone in (*self.zones, *self.broken):
            lines.append(f"  - domain: {zone}")
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> None:
        """Start knotd and wait until every healthy zone answers."""
        subprocess.run(["chown", "-R", "knot:knot", str(self.dir)], check=True)
        subprocess.run(
            ["runuser", "-u", "knot", "--", _tool("knotd"), "-c", str(self.conf), "-d"],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 20
        pending = set(self.zones)
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"knotd on port {self.port} did not serve {sorted(pending)}")
            for zone in sorted(pending):
                if self._answers_soa(zone):
                    pending.discard(zone)
            if pending:
                time.sleep(0.05)

    def _answers_soa(self, zone: str) -> bool:
        done = subprocess.run(
            [
                _tool("kdig"),
                "@127.0.0.1",
                "-p",
                str(self.port),
                "+short",
                "+time=1",
                "+retry=0",
                "SOA",
                f"{zone}.",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode == 0 and "hostmaster" in done.stdout

    def pid(self) -> int:
        """The process id of the running knotd."""
        return int((self.dir / "knot.pid").read_text(encoding="ascii").strip())

    def _control(self, *args: str) -> None:
        subprocess.run(
            [_tool("knotc"), "-c", str(self.conf), "-s", str(self.sock), *args],
            check=True,
            capture_output=True,
            text=True,
        )

    def change(self, zone: str, *edits: tuple[str, ...]) -> None:
        """Apply edits in one zone transaction. Each edit is ``("set", NAME, TYPE,
        RDATA...)`` or ``("unset", NAME[, TYPE])``."""
        self._control("zone-begin", zone)
        try:
            for op, name, *rest in edits:
                if op == "set":
                    rtype, *rdata = rest
                    self._control("zone-set", zone, name, "60", rtype, *rdata)
                else:
                    self._control("zone-unset", zone, name, *rest)
        except subprocess.CalledProcessError:
            self._control("zone-abort", zone)
            raise
        self._control("zone-commit", zone)

    def set_txt(self, zone: str, name: str, *values: str | Iterable[str]) -> None:
        """Make ``values`` the TXT records at ``name``; a value given as several
        strings is published as one record of several character-strings."""
        edits: list[tuple[str, ...]] = [("unset", name, "TXT")] if self.has(name, "TXT") else []
        for value in values:
            strings = [value] if isinstance(value, str) else list(value)
            edits.append(("set", name, "TXT", *(f'"{s}"' for s in strings)))
        self.change(zone, *edits)

    def has(self, name: str, rtype: str) -> bool:
        """Whether ``name`` currently has records of ``rtype`` (asked over TCP)."""
        done = subprocess.run(
            [
                _tool("kdig"),
                "@127.0.0.1",
                "-p",
                str(self.port),
                "+tcp",
                "+short",
                "+time=2",
                rtype,
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return bool(done.stdout.strip())

    def freeze(self) -> None:
        """Stop the server with SIGSTOP and wait until every thread is stopped."""
        pid = self.pid()
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = [
                (task / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[0]
                for task in Path(f"/proc/{pid}/task").iterdir()
            ]
            if all(state == "T" for state in states):
                return
            time.sleep(0.02)
        raise RuntimeError("knotd did not stop")

    def thaw(self) -> None:
        """Let a frozen server run again."""
        os.kill(self.pid(), signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server (resuming it first if frozen)."""
        try:
            pid = self.pid()
        except (OSError, ValueError):
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        os.kill(pid, signal.SIGCONT)
        try:
            self._control("stop")
        except subprocess.CalledProcessError:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)
