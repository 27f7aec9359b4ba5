"""SCIM provisioning: nulabpass against scim2-server, the same workload, one process.

Both servers are driven through their WSGI applications in-process (no sockets), with
the same request bodies: ``--users`` users (default 10,000) with two emails each and
the enterprise extension, then

- ``post``: POST /Users (median over every create);
- ``get``: GET /Users/<id>;
- ``username_eq``: ``filter=userName eq "..."``;
- ``complex_filter``: ``filter=emails[type eq "work" and value co "@example.com"]``
  with ``count=100``;
- ``sorted_page``: ``sortBy=userName&startIndex=<users/2>&count=100``;
- ``patch_active``: PATCH replace ``active``;
- ``put``: PUT /Users/<id>;
- ``group_add``: PATCH adding one member to a group that has 1,000 members.

nulabpass runs on SQLite (the ratios) and, when ``NULABPASS_TEST_POSTGRES_URL`` is set,
on PostgreSQL too; scim2-server runs on its in-memory storage. For each operation the
median of its repetitions is reported and, for SQLite::

    ratio scim.<op>.vs_scim2_server: <scim2-server median / nulabpass median>

A third side runs as a diagnostic (``--synced-only`` leaves it out): nulabpass on SQLite
with ``PRAGMA synchronous = OFF`` on the script's own engine, which the store does not
offer. Its medians and, for the writes, ``without sync (diagnostic)`` lines (context,
not ratios) show what the durable commit costs each write.

With PostgreSQL, the scaling check seeds ``--scale-users`` users (default 100,000)
directly into the tables (seeding is not timed) and prints the medians of
``username_eq`` and of the sorted page at ``startIndex=<scale-users/2>`` beside their
medians at ``--users`` (``startIndex=<users/2>``). Both sizes are timed after a
``VACUUM ANALYZE`` of the tables the users live in, so neither runs on stale planner
statistics or visibility maps.

Run: ``.venv/bin/python benchmarks/bench_scim.py`` (``--users 2000`` for a quick run;
``--scaling-only`` for the PostgreSQL scaling check alone, every user seeded directly).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
COMPLEX = 'emails[type eq "work" and value co "@example.com"]'

App = Callable[[dict[str, Any], Callable[..., Any]], Any]
#: Requests per batch when servers take turns (see ``workload``).
BATCH = 10
#: Members of the group that ``group_add`` adds to, and how many adds are timed.
GROUP_SIZE = 1000
GROUP_ADDS = 20


class Wsgi:
    """Calls a WSGI application in-process."""

    def __init__(self, app: App, prefix: str, token: str | None) -> None:
        self.app = app
        self.prefix = prefix
        self.token = token

    def __call__(
        self, method: str, path: str, body: object = None, query: str = ""
    ) -> tuple[int, Any]:
        data = b"" if body is None else json.dumps(body).encode()
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": self.prefix + path,
            "QUERY_STRING": query,
            "CONTENT_LENGTH": str(len(data)),
            "CONTENT_TYPE": "application/scim+json",
            "wsgi.input": io.BytesIO(data),
            "wsgi.url_scheme": "http",
            "SERVER_NAME": "bench.test",
            "SERVER_PORT": "80",
            "HTTP_HOST": "bench.test",
            "SCRIPT_NAME": "",
            "REMOTE_ADDR": "127.0.0.1",
        }
        if self.token:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {self.token}"
        status: list[int] = []

        def start_response(line: str, _headers: list[tuple[str, str]]) -> None:
            status.append(int(line.split(maxsplit=1)[0]))

        out = b"".join(self.app(environ, start_response))
        return status[0], (json.loads(out) if out else None)


def user_body(i: int) -> dict[str, Any]:
    return {
        "schemas": [USER, ENT],
        "userName": f"user{i:06d}@example.com",
        "externalId": f"ext-{i}",
        "name": {"givenName": f"Given{i}", "familyName": f"Family{i % 97}"},
        "displayName": f"User {i}",
        "emails": [
            {"value": f"user{i:06d}@example.com", "type": "work", "primary": True},
            {"value": f"u{i}@home.test", "type": "home"},
        ],
        "active": True,
        ENT: {"employeeNumber": str(i), "department": ["Sales", "R&D", "Ops"][i % 3]},
    }


def q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="=&")


def timed(fn: Callable[[], tuple[int, Any]], expect: int) -> float:
    """Seconds one request took; 200 also accepts 204 (PATCH may answer either)."""
    start = time.perf_counter()
    status, body = fn()
    elapsed = time.perf_counter() - start
    if status != expect and not (expect == 200 and status == 204):
        raise SystemExit(f"unexpected status {status} (wanted {expect}): {body}")
    return elapsed


def workload(
    calls: dict[str, Wsgi], users: int, rng: random.Random
) -> dict[str, dict[str, float]]:
    """Run the workload on every server in ``calls``, interleaved in small batches: each
    operation's requests are cut into batches of ``BATCH`` and every server runs each
    batch in turn (the order alternating from batch to batch), so that a slower moment
    of a shared machine weighs on every side alike while each batch runs with its own
    server's code and data warm in the CPU caches. Return the median seconds of each
    operation, by server."""
    names = list(calls)
    times: dict[str, dict[str, list[float]]] = {n: {} for n in names}

    def each(op: str, n: int, request: Callable[[str, int], float]) -> None:
        for batch, first in enumerate(range(0, n, BATCH)):
            for name in names if batch % 2 == 0 else names[::-1]:
                for k in range(first, min(first + BATCH, n)):
                    times[name].setdefault(op, []).append(request(name, k))

    ids: dict[str, list[str]] = {n: [] for n in names}

    def post(name: str, i: int) -> float:
        start = time.perf_counter()
        status, doc = calls[name]("POST", "/Users", user_body(i))
        elapsed = time.perf_counter() - start
        if status != 201:
            raise SystemExit(f"{name}: POST failed with {status}: {doc}")
        ids[name].append(doc["id"])
        return elapsed

    each("post", users, post)
    sample = [rng.randrange(users) for _ in range(200)]
    each(
        "get",
        len(sample),
        lambda n, k: timed(lambda: calls[n]("GET", f"/Users/{ids[n][sample[k]]}"), 200),
    )
    each(
        "username_eq",
        len(sample),
        lambda n, k: timed(
            lambda: calls[n](
                "GET", "/Users", query=q(f'filter=userName eq "user{sample[k]:06d}@example.com"')
            ),
            200,
        ),
    )
    each(
        "complex_filter",
        15,
        lambda n, _k: timed(
            lambda: calls[n]("GET", "/Users", query=q(f"filter={COMPLEX}&count=100")), 200
        ),
    )
    start_index = users // 2
    each(
        "sorted_page",
        15,
        lambda n, _k: timed(
            lambda: calls[n](
                "GET", "/Users", query=f"sortBy=userName&startIndex={start_index}&count=100"
            ),
            200,
        ),
    )
    patch_picks = [rng.randrange(users) for _ in range(100)]
    each(
        "patch_active",
        len(patch_picks),
        lambda n, k: timed(
            lambda: calls[n](
                "PATCH",
                f"/Users/{ids[n][patch_picks[k]]}",
                {
                    "schemas": [PATCH],
                    "Operations": [{"op": "replace", "path": "active", "value": k % 2 == 1}],
                },
            ),
            200,
        ),
    )
    put_picks = [rng.randrange(users) for _ in range(100)]
    each(
        "put",
        len(put_picks),
        lambda n, k: timed(
            lambda: calls[n](
                "PUT",
                f"/Users/{ids[n][put_picks[k]]}",
                {**user_body(put_picks[k]), "title": "Changed"},
            ),
            200,
        ),
    )
    groups: dict[str, str] = {}
    for name in names:
        members = [{"value": uid} for uid in ids[name][:GROUP_SIZE]]
        status, group = calls[name](
            "POST", "/Groups", {"schemas": [GROUP], "displayName": "Big", "members": members}
        )
        if status != 201:
            raise SystemExit(f"{name}: group create failed: {status} {group}")
        groups[name] = group["id"]

    def group_add(name: str, k: int) -> float:
        body = {
            "schemas": [PATCH],
            "Operations": [
                {"op": "add", "path": "members", "value": [{"value": ids[name][GROUP_SIZE + k]}]}
            ],
        }
        return timed(lambda: calls[name]("PATCH", f"/Groups/{groups[name]}", body), 200)

    each("group_add", GROUP_ADDS, group_add)
    return {n: {op: statistics.median(v) for op, v in times[n].items()} for n in names}


def app(store_kind: str, *, synced: bool = True) -> tuple[Any, Any, Wsgi]:
    """A fresh nulabpass on ``store_kind`` with one SCIM-ready organization.

    ``synced=False`` (SQLite only) turns off the wait for the disk at every commit
    (``PRAGMA synchronous = OFF``) on the benchmark's own engine: not a setting the
    store offers, only a way to measure what durability costs a write."""
    from nulabpass.stores.sql import SqlStore
    from nulabpass.testing import make_nulabpass, scim_ready_org
    from nulabpass.web import scim_wsgi_app

    if store_kind == "sqlite":
        path = os.path.join(tempfile.mkdtemp(prefix="bench-scim-"), "scim.sqlite3")
        store = SqlStore.from_url(f"sqlite:///{path}")
        if not synced:
            import sqlalchemy as sa

            def unsynced(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.execute("PRAGMA synchronous = OFF")

            sa.event.listen(store.bind, "connect", unsynced)
    else:
        import sqlalchemy as sa

        url = os.environ["NULABPASS_TEST_POSTGRES_URL"]
        schema = f"bench_scim_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
        store = SqlStore(engine)
    store.upgrade()
    # The trial has no seat limit unless configured (trial_seats), so no upgrade is needed.
    np = make_nulabpass(store)
    org, token = scim_ready_org(np)
    return np, org, Wsgi(scim_wsgi_app(np, "/scim/v2"), "/scim/v2", token)


def anchor_app() -> Wsgi:
    """scim2-server on its in-memory storage."""
    from scim2_server.applications.wsgi import WSGIApplication
    from scim2_server.memory import InMemoryStorage
    from scim2_server.utils import load_default_provider

    return Wsgi(WSGIApplication(InMemoryStorage(), load_default_provider()), "/v2", None)


def seed_pg(np: Any, org_id: str, first: int, stop: int) -> None:
    """Insert users ``first`` to ``stop - 1`` straight into the tables (not timed)."""
    import sqlalchemy as sa

    from nulabpass.stores.sql import schema as s

    engine = np.store.bind
    now = datetime.now(UTC)
    batch: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    emails: list[dict[str, Any]] = []
    members: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for i in range(first, stop):
            aid = f"acc_seed{i:07d}"
            name = f"user{i:06d}@example.com"
            batch.append(
                {
                    "id": aid,
                    "email": name,
                    "display_name": f"User {i}",
                    "language": "en",
                    "timezone": "UTC",
                    "status": "active",
                    "managed_by": org_id,
                    "created_at": now,
                    "updated_at": now,
                    "version": 1,
                }
            )
            members.append(
                {
                    "org_id": org_id,
                    "account_id": aid,
                    "role": "member",
                    "plan_admin": False,
                    "audit_log_admin": False,
                    "created_at": now,
                    "updated_at": now,
                    "version": 1,
                }
            )
            row = {c.name: None for c in s.scim_users.columns}
            row.update(
                org_id=org_id,
                account_id=aid,
                user_name=name,
                user_name_key=name,
                external_id=f"ext-{i}",
                created_at=now,
                updated_at=now,
                version=1,
            )
            rows.append(row)
            emails.append(
                {
                    "org_id": org_id,
                    "account_id": aid,
                    "position": 0,
                    "value": name,
                    "value_key": name,
                    "type": "work",
                    "is_primary": True,
                    "display": None,
                }
            )
            if len(batch) == 5000 or i == stop - 1:
                conn.execute(sa.insert(s.accounts), batch)
                conn.execute(sa.insert(s.memberships), members)
                conn.execute(sa.insert(s.scim_users), rows)
                conn.execute(sa.insert(s.scim_emails), emails)
                batch, rows, emails, members = [], [], [], []
        # The store keeps each organization's number of SCIM users; rows written around
        # it must be counted as the store would have counted them.
        conn.execute(
            sa.text(
                "INSERT INTO nulabpass_scim_user_counts (org_id, users) VALUES (:org, :n) "
                "ON CONFLICT (org_id) DO UPDATE SET users = "
                "nulabpass_scim_user_counts.users + excluded.users"
            ),
            {"org": org_id, "n": stop - first},
        )


def time_scaling(np: Any, call: Wsgi, size: int) -> dict[str, float]:
    """Bring the statistics and visibility maps up to date, then time the two scaling
    queries with ``size`` users in the organization.

    Both sizes are timed the same way: after a fresh ``VACUUM ANALYZE``, as autovacuum
    would leave a table that stopped growing. Without it the planner guesses from an
    empty table's statistics and index-only scans visit the heap for every row.
    """
    import sqlalchemy as sa

    from nulabpass.stores.sql import schema as s

    # Only the tables the users live in: a database-wide VACUUM would also visit (and
    # can deadlock with) other schemas of a shared database. VACUUM needs autocommit.
    seeded = (s.accounts, s.memberships, s.scim_users, s.scim_emails, s.scim_user_counts)
    with np.store.bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in seeded:
            conn.execute(sa.text(f"VACUUM ANALYZE {table.name}"))
    sample = [random.randrange(size) for _ in range(200)]
    eq = statistics.median(
        timed(
            lambda i=i: call(
                "GET", "/Users", query=q(f'filter=userName eq "user{i:06d}@example.com"')
            ),
            200,
        )
        for i in sample
    )
    page = statistics.median(
        timed(
            lambda: call(
                "GET", "/Users", query=f"sortBy=userName&startIndex={size // 2}&count=100"
            ),
            200,
        )
        for _ in range(15)
    )
    return {"username_eq": eq, "sorted_page": page}


def scaling(np: Any, org_id: str, call: Wsgi, users: int, total: int, *, seeded: bool) -> None:
    """Print the scaling lines: both queries at ``users`` then at ``total`` users.

    With ``seeded`` the first ``users`` are inserted straight into the tables too (the
    ``--scaling-only`` run); otherwise they are the ones the workload created.
    """
    if seeded:
        seed_pg(np, org_id, 0, users)
    small = time_scaling(np, call, users)
    seed_pg(np, org_id, users, total)
    large = time_scaling(np, call, total)
    for op in ("username_eq", "sorted_page"):
        print(
            f"scaling {op}: {small[op] * 1000:.3f} ms at {users} users, "
            f"{large[op] * 1000:.3f} ms at {total} users "
            f"(x{large[op] / small[op]:.2f})"
        )
    _drop_schema(np.store)


def _drop_schema(store: Any) -> None:
    """Drop the benchmark's PostgreSQL schema."""
    import sqlalchemy as sa

    with store.bind.begin() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar()
        if schema and str(schema).startswith("bench_scim_"):
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--scale-users", type=int, default=100_000)
    parser.add_argument(
        "--scaling-only",
        action="store_true",
        help="run only the PostgreSQL scaling check, with every user seeded directly",
    )
    parser.add_argument(
        "--synced-only",
        action="store_true",
        help="skip the diagnostic third server (nulabpass on SQLite without the disk sync)",
    )
    args = parser.parse_args()
    if args.users < GROUP_SIZE + GROUP_ADDS and not args.scaling_only:
        parser.error(
            f"--users must be at least {GROUP_SIZE + GROUP_ADDS}: the group add puts "
            f"{GROUP_ADDS} more users, one at a time, into a group of {GROUP_SIZE}"
        )
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"users: {args.users}")
    if args.scaling_only:
        if not os.environ.get("NULABPASS_TEST_POSTGRES_URL"):
            raise SystemExit("--scaling-only needs NULABPASS_TEST_POSTGRES_URL")
        np, org, call = app("postgres")
        scaling(np, org.id, call, args.users, args.scale_users, seeded=True)
        return
    _np, _org, sqlite_call = app("sqlite")
    servers = {"scim2-server": anchor_app(), "sqlite": sqlite_call}
    if not args.synced_only:
        servers["unsynced"] = app("sqlite", synced=False)[2]
    medians = workload(servers, args.users, random.Random(1))
    theirs, mine = medians["scim2-server"], medians["sqlite"]
    unsynced = medians.get("unsynced")
    header = f"{'operation':<16}{'scim2-server ms':>18}{'nulabpass sqlite ms':>22}"
    print(header + (f"{'without sync ms':>18}" if unsynced else ""))
    for op in theirs:
        line = f"{op:<16}{theirs[op] * 1000:>18.3f}{mine[op] * 1000:>22.3f}"
        print(line + (f"{unsynced[op] * 1000:>18.3f}" if unsynced else ""))
    for op in theirs:
        print(f"ratio scim.{op}.vs_scim2_server: {theirs[op] / mine[op]:.3g}")
    if unsynced:
        # Context, not ratios: what the writes would measure if commits did not wait
        # for the disk, i.e. the share of each write that durability takes.
        for op in ("post", "patch_active", "put", "group_add"):
            print(
                f"without sync (diagnostic) scim.{op}.vs_scim2_server: "
                f"{theirs[op] / unsynced[op]:.3g} (durable commit: "
                f"{(mine[op] - unsynced[op]) * 1000:.3f} ms of {mine[op] * 1000:.3f})"
            )
    if os.environ.get("NULABPASS_TEST_POSTGRES_URL"):
        np, org, call = app("postgres")
        pg = workload({"postgres": call}, args.users, random.Random(1))["postgres"]
        print(f"{'operation':<16}{'nulabpass postgres ms':>24}")
        for op, value in pg.items():
            print(f"{op:<16}{value * 1000:>24.3f}")
        scaling(np, org.id, call, args.users, args.scale_users, seeded=False)
    else:
        print(
            "PostgreSQL skipped: set NULABPASS_TEST_POSTGRES_URL to run it and the scaling check"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
