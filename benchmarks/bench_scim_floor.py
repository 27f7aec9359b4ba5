"""SCIM POST: how much of nulabpass's time is the database's floor, against scim2-server.

``bench_scim.py`` compares whole requests. This script asks what part of a nulabpass
create is work that no implementation on SQLite can skip: it records the SQL statements
of one ``POST /Users`` (the rows, their indexes and the audit event, exactly as
nulabpass sends them), then replays those statements straight on the ``sqlite3`` driver
with fresh keys, each replay one ``BEGIN IMMEDIATE ... COMMIT`` transaction, on a copy
of the same database. Four sides take turns in batches of ten requests, the order
reversed from one batch to the next:

- ``scim2-server``: its POST, in memory;
- ``nulabpass``: our POST through the WSGI application, SQLite as shipped;
- ``driver``: the replayed statements, durable (``synchronous = FULL``, as the store);
- ``driver_unsynced``: the same without waiting for the disk (``synchronous = OFF``).

It prints each median and context lines, no ``ratio`` lines: ``driver`` is the floor of
a durable create on this machine, and ``driver`` minus ``driver_unsynced`` is what the
disk sync alone costs. The replay sends every statement as text with its values inlined
(as recorded), so it also pays SQLite's statement compilation, which nulabpass's cached
statements do not: the floor is, if anything, high.

Run: ``.venv/bin/python benchmarks/bench_scim_floor.py`` (``--users 2000`` for a quick
run; ``--creates N`` timed creates per side, default 1,000).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sqlite3
import statistics
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from bench_scim import BATCH, anchor_app, app, user_body


def record_post(np: Any, call: Callable[..., tuple[int, Any]], i: int) -> list[str]:
    """The statements of user ``i``'s POST as SQLite ran them (values inlined), without
    the ``BEGIN IMMEDIATE`` and ``COMMIT`` around them."""
    seen: list[str] = []

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.set_trace_callback(seen.append)

    def checkin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(None)

    engine = np.store.bind
    sa.event.listen(engine, "checkout", checkout)
    sa.event.listen(engine, "checkin", checkin)
    try:
        status, doc = call("POST", "/Users", user_body(i))
    finally:
        sa.event.remove(engine, "checkout", checkout)
        sa.event.remove(engine, "checkin", checkin)
    if status != 201:
        raise SystemExit(f"POST failed: {status} {doc}")
    return [s for s in seen if s not in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")]


class Replay:
    """Replays one recorded POST with fresh keys: the account and event ids, the user's
    name and emails, and the event's place in the organization's audit chain."""

    def __init__(self, statements: list[str], i: int) -> None:
        text = "\n".join(statements)
        self.account = _one(r"'(acc_[0-9a-f]+)'", text)
        self.event = _one(r"'(evt_[0-9a-f]+)'", text)
        self.seq = int(
            _one(
                r"INSERT INTO nulabpass_audit_events \(.*?\) VALUES \('evt_\w+', '\w+', (\d+),",
                text,
            )
        )
        self.names = (f"user{i:06d}@", f"u{i}@")
        self.statements = statements

    def statements_for(self, n: int) -> list[str]:
        # Far above any key or sequence number the recorded run used.
        k = 10_000_000 + n
        out = []
        for recorded in self.statements:
            s = recorded.replace(self.account, f"acc_{k:024x}")
            s = s.replace(self.event, f"evt_{k:024x}")
            s = s.replace(self.names[0], f"user{k:08d}@").replace(self.names[1], f"u{k}@")
            if s.startswith("INSERT INTO nulabpass_audit_events "):
                s = s.replace(f"', {self.seq},", f"', {self.seq + k},", 1)
            out.append(s)
        return out


def _one(pattern: str, text: str) -> str:
    found = set(re.findall(pattern, text))
    if len(found) != 1:
        raise SystemExit(f"expected one match of {pattern!r} in the recorded POST: {found}")
    return found.pop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--creates", type=int, default=1_000)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"sqlite {sqlite3.sqlite_version}, users before timing: {args.users}")
    np, _org, ours = app("sqlite")
    anchor = anchor_app()
    for i in range(args.users):
        for call in (anchor, ours):
            status, doc = call("POST", "/Users", user_body(i))
            if status != 201:
                raise SystemExit(f"seeding failed: {status} {doc}")
    replay = Replay(record_post(np, ours, args.users), args.users)
    path = np.store.bind.url.database
    copy = path + ".replay"
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    raw = {
        mode: sqlite3.connect(copy, isolation_level=None, check_same_thread=False)
        for mode in ("FULL", "OFF")
    }
    for mode, conn in raw.items():
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA synchronous = {mode}")

    counter = iter(range(10**9))

    def driver(mode: str) -> Callable[[int], float]:
        def run(_i: int) -> float:
            conn = raw[mode]
            statements = replay.statements_for(next(counter))
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            for statement in statements:
                conn.execute(statement).fetchall()
            conn.execute("COMMIT")
            return time.perf_counter() - start

        return run

    def post(call: Callable[..., tuple[int, Any]]) -> Callable[[int], float]:
        def run(i: int) -> float:
            body = user_body(i)
            start = time.perf_counter()
            status, doc = call("POST", "/Users", body)
            elapsed = time.perf_counter() - start
            if status != 201:
                raise SystemExit(f"POST failed: {status} {doc}")
            return elapsed

        return run

    sides: dict[str, Callable[[int], float]] = {
        "scim2-server": post(anchor),
        "nulabpass": post(ours),
        "driver": driver("FULL"),
        "driver_unsynced": driver("OFF"),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    first = args.users + 1
    names = list(sides)
    for batch, start in enumerate(range(first, first + args.creates, BATCH)):
        for name in names if batch % 2 == 0 else names[::-1]:
            for i in range(start, min(start + BATCH, first + args.creates)):
                times[name].append(sides[name](i))
    median = {name: statistics.median(v) * 1000 for name, v in times.items()}
    print(f"{'side':<18}{'POST median ms':>16}")
    for name, value in median.items():
        print(f"{name:<18}{value:>16.3f}")
    print(
        f"durable floor: {median['driver']:.3f} ms of the anchor's {median['scim2-server']:.3f}"
        f" (disk sync alone {median['driver'] - median['driver_unsynced']:.3f} ms); "
        f"nulabpass spends {median['nulabpass'] - median['driver']:.3f} ms above the floor"
    )
    for conn in raw.values():
        conn.close()
    np.store.dispose()
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)


if __name__ == "__main__":
    main()
