"""Managed-account creation through the facade, beside raw SQL inserts of the same rows.

For each backend (memory, SQLite, PostgreSQL) this creates ``--accounts`` managed
accounts with ``np.members.create_managed(...)``, one call and one transaction per
account, as a host does when an admin invites people one by one. Each call checks the
actor's permission, the plan, the seats, SAML and the verified domain, writes the
account, its membership, its team membership and its invitation, appends the audit
event (with its targets and its erasable personal data) to the organization's hash
chain and queues two outbox messages (the invitation email and the ``invitation.sent``
event), all in one transaction.

The anchor inserts exactly the same rows, table by table, with SQLAlchemy Core
``insert()`` on a connection, one transaction per account, into the same tables
(created by ``SqlStore.upgrade()``) on an engine configured as ``SqlStore.from_url``
configures it: the same durable work without the library's logic. The anchor of the
memory store is those inserts against an in-memory SQLite database (``sqlite://``),
the cheapest durable-free SQL there is.

Row values are realistic (ids, nonces, salts and hashes of the same widths; the same
JSON documents) and are built before the clock starts, so the anchor times only the
inserts and the commits. The setup (founder, organization, trial, SAML, verified domain,
team) is done through the facade on both sides and is not timed; 100 accounts per side
are created before timing starts and not counted. Each backend runs ours, then the
anchor, before the next backend starts.

Prints the machine facts, the absolute figures, and one line per backend::

    ratio store.<backend>.vs_raw_sql: <anchor seconds / our seconds>

above 1 means nulabpass is faster than the raw inserts. Run it with
``.venv/bin/python benchmarks/bench_store.py`` (or ``make bench-store``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import math
import os
import platform
import secrets
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, insert, select

from nulabpass import Actor, NulabPass, RequestContext
from nulabpass.ports import Store
from nulabpass.stores.memory import MemoryStore
from nulabpass.stores.sql import SqlStore
from nulabpass.stores.sql import schema as s
from nulabpass.testing import (
    FrozenClock,
    RecordingMailer,
    make_nulabpass,
    mark_domain_verified,
    mark_saml_configured,
)

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POSTGRES_URL_ENV = "NULABPASS_BENCH_POSTGRES_URL"
BACKENDS = ("memory", "sqlite", "postgres")
WARMUP = 100
DOMAIN = "example.com"
IP = "198.51.100.20"
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
PRODUCT = "tracker"

#: What one ``create_managed`` call writes, table by table. Both sides are checked
#: against it after their run, so the comparison stays "the same rows" if the library
#: ever writes more or less.
ROWS_PER_ACCOUNT: Mapping[str, int] = {
    s.accounts.name: 1,
    s.memberships.name: 1,
    s.team_members.name: 1,
    s.invitations.name: 1,
    s.audit_events.name: 1,
    s.audit_targets.name: 2,
    s.audit_personal.name: 6,
    s.outbox.name: 2,
}

# Statements are built once, as a host writing raw SQL would keep them.
INSERT_ACCOUNT = insert(s.accounts)
INSERT_MEMBERSHIP = insert(s.memberships)
INSERT_TEAM_MEMBER = insert(s.team_members)
INSERT_INVITATION = insert(s.invitations)
INSERT_EVENT = insert(s.audit_events)
INSERT_TARGETS = insert(s.audit_targets)
INSERT_PERSONAL = insert(s.audit_personal)
INSERT_OUTBOX = insert(s.outbox)


# ---------------------------------------------------------------------------------------
# Set-up shared by both sides


@dataclass(frozen=True)
class World:
    """An organization ready for managed accounts, and who acts in it."""

    np: NulabPass
    clock: FrozenClock
    admin: Actor
    founder_id: str
    founder_name: str
    founder_email: str
    org_id: str
    org_name: str
    team_id: str


def build_world(store: Store) -> World:
    """Founder, organization, trial, SAML, verified domain and a team (not timed)."""
    clock = FrozenClock()
    np = make_nulabpass(store, clock=clock, mailer=RecordingMailer())
    ctx = RequestContext(ip=IP, user_agent=USER_AGENT, request_id="req-setup", product=PRODUCT)
    founder = np.accounts.register("founder@partner.example", "Aiko Tanaka", ctx=ctx)
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, "Acme Corp", ctx=ctx)
    np.plans.start_trial(admin, org.id, ctx=ctx)
    mark_saml_configured(np, org.id)
    mark_domain_verified(np, org.id, DOMAIN)
    team = np.teams.create(admin, org.id, "Engineering", ctx=ctx)
    return World(
        np=np,
        clock=clock,
        admin=admin,
        founder_id=founder.id,
        founder_name=founder.display_name,
        founder_email=founder.email,
        org_id=org.id,
        org_name=org.name,
        team_id=team.id,
    )


def email_of(index: int) -> str:
    return f"user{index:06d}@{DOMAIN}"


def name_of(index: int) -> str:
    return f"User {index:06d}"


# ---------------------------------------------------------------------------------------
# Our side: the facade


@dataclass(frozen=True)
class Call:
    email: str
    display_name: str
    ctx: RequestContext


def calls(first: int, count: int) -> list[Call]:
    """The arguments of ``count`` create_managed calls, built before timing."""
    return [
        Call(
            email_of(i),
            name_of(i),
            RequestContext(
                ip=IP, user_agent=USER_AGENT, request_id=f"req-{i:06d}", product=PRODUCT
            ),
        )
        for i in range(first, first + count)
    ]


def run_ours(world: World, batch: Sequence[Call]) -> float:
    """Create one managed account per call, each its own transaction; seconds taken."""
    create = world.np.members.create_managed
    advance = world.clock.advance
    step = timedelta(microseconds=1)
    admin, org_id, team_id = world.admin, world.org_id, world.team_id
    gc.collect()
    start = time.perf_counter()
    for call in batch:
        advance(step)
        create(
            admin,
            org_id,
            team_id=team_id,
            email=call.email,
            display_name=call.display_name,
            ctx=call.ctx,
        )
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------
# The anchor: raw inserts of the same rows


Row = dict[str, Any]


@dataclass(frozen=True)
class RawAccount:
    """Every row one managed account adds, ready to insert."""

    account: Row
    membership: Row
    team_member: Row
    invitation: Row
    event: Row
    targets: list[Row]
    personal: list[Row]
    outbox: list[Row]


@dataclass
class Chain:
    """Head of the organization's audit chain, continued by the raw events."""

    seq: int
    hash: str


def _hex_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _sha256(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def raw_account(world: World, chain: Chain, index: int, now: datetime) -> RawAccount:
    """The rows ``create_managed`` writes for account ``index``, with realistic values."""
    email, name = email_of(index), name_of(index)
    account_id = _hex_id("acc")
    invitation_id = _hex_id("inv")
    event_id = _hex_id("evt")
    nonce = secrets.token_hex(16)
    expires_at = now + timedelta(days=7)
    request_id = f"req-{index:06d}"
    personal_values = [
        ("actor.email", world.founder_id, world.founder_email),
        ("actor.name", world.founder_id, world.founder_name),
        ("context.ip", world.founder_id, IP),
        ("context.user_agent", world.founder_id, USER_AGENT),
        ("target.0.email", account_id, email),
        ("target.0.name", account_id, name),
    ]
    personal: list[Row] = []
    commitments: dict[str, str] = {}
    for slot, subject, value in personal_values:
        salt = secrets.token_hex(16)
        commitments[slot] = _sha256(slot, salt, value)
        personal.append(
            {
                "event_id": event_id,
                "slot": slot,
                "subject_id": subject,
                "salt": salt,
                "value": value,
                "version": 1,
            }
        )
    chain.seq += 1
    prev_hash, chain.hash = chain.hash, _sha256(chain.hash, event_id)
    outbox_common = {
        "scope": world.org_id,
        "created_at": now,
        "next_attempt_at": now,
        "attempts": 0,
        "dispatched_at": None,
        "last_error": None,
        "version": 1,
    }
    return RawAccount(
        account={
            "id": account_id,
            "email": email,
            "display_name": name,
            "language": "en",
            "timezone": "UTC",
            "status": "invited",
            "managed_by": world.org_id,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        },
        membership={
            "org_id": world.org_id,
            "account_id": account_id,
            "role": "member",
            "plan_admin": False,
            "audit_log_admin": False,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        },
        team_member={"team_id": world.team_id, "account_id": account_id, "added_at": now},
        invitation={
            "id": invitation_id,
            "org_id": world.org_id,
            "account_id": account_id,
            "team_id": world.team_id,
            "token_hash": _sha256(invitation_id, nonce),
            "nonce": nonce,
            "status": "pending",
            "expires_at": expires_at,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        },
        event={
            "id": event_id,
            "scope": world.org_id,
            "seq": chain.seq,
            "occurred_at": now,
            "action": "managed_account.created",
            "category": "managed_account",
            "outcome": "success",
            "actor_type": "account",
            "actor_id": world.founder_id,
            "context": {"request_id": request_id, "product": PRODUCT},
            "metadata": {"role": "member", "invitation_id": invitation_id},
            "commitments": commitments,
            "prev_hash": prev_hash,
            "hash": chain.hash,
        },
        targets=[
            {
                "event_id": event_id,
                "scope": world.org_id,
                "position": 0,
                "type": "account",
                "target_id": account_id,
            },
            {
                "event_id": event_id,
                "scope": world.org_id,
                "position": 1,
                "type": "team",
                "target_id": world.team_id,
            },
        ],
        personal=personal,
        outbox=[
            {
                **outbox_common,
                "id": _hex_id("obx"),
                "kind": "email",
                "topic": "invitation",
                "payload": {
                    "to": email,
                    "language": "en",
                    "timezone": "UTC",
                    "display_name": name,
                    "org_name": world.org_name,
                    "inviter_name": world.founder_name,
                    "expires_at": expires_at.isoformat(),
                    "token_kind": "invitation",
                    "token_record": invitation_id,
                    "token_nonce": nonce,
                },
                "idempotency_key": f"email:invitation:{invitation_id}:{nonce}",
            },
            {
                **outbox_common,
                "id": _hex_id("obx"),
                "kind": "event",
                "topic": "invitation.sent",
                "payload": {
                    "scope": world.org_id,
                    "account_id": account_id,
                    "invitation_id": invitation_id,
                },
                "idempotency_key": f"event:invitation.sent:{invitation_id}",
            },
        ],
    )


def chain_head(engine: sa.Engine, scope: str) -> Chain:
    e = s.audit_events
    stmt = select(e.c.seq, e.c.hash).where(e.c.scope == scope).order_by(e.c.seq.desc()).limit(1)
    with engine.connect() as conn:
        row = conn.execute(stmt).one()
    return Chain(seq=int(row.seq), hash=str(row.hash))


def raw_batch(world: World, chain: Chain, first: int, count: int) -> list[RawAccount]:
    """Rows of ``count`` accounts, timestamps a microsecond apart (built before timing)."""
    step = timedelta(microseconds=1)
    return [
        raw_account(world, chain, i, world.clock.advance(step))
        for i in range(first, first + count)
    ]


def run_raw(engine: sa.Engine, batch: Sequence[RawAccount]) -> float:
    """Insert each account's rows in its own transaction; seconds taken."""
    gc.collect()
    start = time.perf_counter()
    for rows in batch:
        with engine.begin() as conn:
            conn.execute(INSERT_ACCOUNT, rows.account)
            conn.execute(INSERT_MEMBERSHIP, rows.membership)
            conn.execute(INSERT_TEAM_MEMBER, rows.team_member)
            conn.execute(INSERT_INVITATION, rows.invitation)
            conn.execute(INSERT_EVENT, rows.event)
            conn.execute(INSERT_TARGETS, rows.targets)
            conn.execute(INSERT_PERSONAL, rows.personal)
            conn.execute(INSERT_OUTBOX, rows.outbox)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------
# Row accounting


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """Rows in every nulabpass table."""
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in s.metadata.sorted_tables
        }


def check_rows(side: str, engine: sa.Engine, before: Mapping[str, int], accounts: int) -> None:
    """Fail loudly unless the run added exactly ``ROWS_PER_ACCOUNT`` per account, and
    nothing to any other table."""
    after = row_counts(engine)
    added = {name: n - before[name] for name, n in after.items() if n != before[name]}
    expected = {name: per * accounts for name, per in ROWS_PER_ACCOUNT.items()}
    if added != expected:
        raise SystemExit(
            f"{side} added {added} rows, expected {expected}: the rows create_managed "
            "writes have changed; update ROWS_PER_ACCOUNT and raw_account()."
        )


def store_counts(world: World) -> tuple[int, int, int]:
    """Managed accounts, audit events and pending outbox messages, read through the
    store's own ports (for the memory store, which has no tables to count)."""
    with world.np.store.transaction() as uow:
        return (
            uow.accounts.count_managed(world.org_id),
            uow.audit.head(world.org_id)[0],
            uow.outbox.pending_count(),
        )


def check_store(world: World, before: tuple[int, int, int], accounts: int) -> None:
    """Fail loudly unless the run added one account, one event and two messages each."""
    after = store_counts(world)
    added = tuple(a - b for a, b in zip(after, before, strict=True))
    per = ROWS_PER_ACCOUNT
    expected = (
        per[s.accounts.name] * accounts,
        per[s.audit_events.name] * accounts,
        per[s.outbox.name] * accounts,
    )
    if added != expected:
        raise SystemExit(
            f"nulabpass added (managed accounts, events, outbox messages) {added}, "
            f"expected {expected}: update ROWS_PER_ACCOUNT and raw_account()."
        )


# ---------------------------------------------------------------------------------------
# Backends


@dataclass
class Side:
    """One database prepared for one side of the comparison."""

    world: World
    engine: sa.Engine | None  # None for the memory store
    close: Callable[[], None]


def sql_side(url: str) -> Side:
    store = SqlStore.from_url(url)
    store.upgrade()
    engine = store.bind
    if not isinstance(engine, sa.Engine):  # pragma: no cover - from_url builds an engine
        raise TypeError("SqlStore.from_url should have built an engine")
    return Side(build_world(store), engine, store.dispose)


@contextlib.contextmanager
def memory_sides() -> Iterator[tuple[Side, Side]]:
    ours = Side(build_world(MemoryStore()), None, lambda: None)
    raw = sql_side("sqlite://")
    try:
        yield ours, raw
    finally:
        raw.close()


@contextlib.contextmanager
def sqlite_sides() -> Iterator[tuple[Side, Side]]:
    with tempfile.TemporaryDirectory(prefix="nulabpass-bench-") as tmp:
        ours = sql_side(f"sqlite:///{Path(tmp) / 'ours.sqlite3'}")
        try:
            raw = sql_side(f"sqlite:///{Path(tmp) / 'raw.sqlite3'}")
            try:
                yield ours, raw
            finally:
                raw.close()
        finally:
            ours.close()


@contextlib.contextmanager
def postgres_sides(url: str) -> Iterator[tuple[Side, Side]]:
    """Two fresh schemas of the database (ours and the anchor's), dropped at the end."""
    prefix = f"nulabpass_bench_{uuid.uuid4().hex[:10]}"
    names = (f"{prefix}_ours", f"{prefix}_raw")
    admin = sa.create_engine(url)
    try:
        with admin.begin() as conn:
            for name in names:
                conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        sides: list[Side] = []
        try:
            for name in names:
                schema_url = sa.make_url(url).update_query_dict(
                    {"options": f"-csearch_path={name}"}
                )
                sides.append(sql_side(schema_url.render_as_string(hide_password=False)))
            yield sides[0], sides[1]
        finally:
            for side in sides:
                side.close()
    finally:
        with admin.begin() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


def postgres_problem(url: str) -> str | None:
    """Why PostgreSQL cannot be used, or ``None`` when it answers."""
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # any driver or network failure means "skip"
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    return None


def postgres_version(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------
# Running and reporting


def significant(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, never in exponent notation."""
    if value == 0 or not math.isfinite(value):
        return f"{value:.{digits - 1}f}"
    decimals = max(digits - 1 - math.floor(math.log10(abs(value))), 0)
    return f"{value:.{decimals}f}"


def figures(label: str, seconds: float, accounts: int) -> str:
    per_account_us = seconds / accounts * 1e6
    return f"{label}: {seconds:.3f} s total, {per_account_us:.1f} us/account ({accounts} accounts)"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_backend(
    backend: str, sides: contextlib.AbstractContextManager[tuple[Side, Side]], accounts: int
) -> None:
    progress(f"[{backend}] setting up")
    with sides as (ours, raw):
        assert raw.engine is not None
        chain = chain_head(raw.engine, raw.world.org_id)

        progress(f"[{backend}] warm-up: {WARMUP} accounts per side")
        run_ours(ours.world, calls(0, WARMUP))
        run_raw(raw.engine, raw_batch(raw.world, chain, 0, WARMUP))

        progress(f"[{backend}] ours: {accounts} accounts")
        if ours.engine is None:
            counted = store_counts(ours.world)
            ours_seconds = run_ours(ours.world, calls(WARMUP, accounts))
            check_store(ours.world, counted, accounts)
        else:
            before = row_counts(ours.engine)
            ours_seconds = run_ours(ours.world, calls(WARMUP, accounts))
            check_rows("nulabpass", ours.engine, before, accounts)

        progress(f"[{backend}] raw SQL: {accounts} accounts")
        batch = raw_batch(raw.world, chain, WARMUP, accounts)
        before = row_counts(raw.engine)
        raw_seconds = run_raw(raw.engine, batch)
        del batch
        check_rows("the raw anchor", raw.engine, before, accounts)

    print(figures(f"store.{backend}.ours", ours_seconds, accounts))
    print(figures(f"store.{backend}.raw_sql", raw_seconds, accounts))
    print(f"ratio store.{backend}.vs_raw_sql: {significant(raw_seconds / ours_seconds)}")
    sys.stdout.flush()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Managed-account creation through nulabpass vs raw SQL inserts."
    )
    parser.add_argument(
        "--accounts", type=int, default=10_000, help="accounts per side (default 10000)"
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated subset of memory,sqlite,postgres (default: all)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL),
        help=f"PostgreSQL database (default: ${POSTGRES_URL_ENV} or {DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    args.backends = [b for b in BACKENDS if b in backends]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    backends: list[str] = args.backends
    postgres_note: str | None = None
    if "postgres" in backends:
        if args.no_postgres:
            postgres_note = "PostgreSQL skipped: --no-postgres"
        else:
            problem = postgres_problem(args.postgres_url)
            if problem is not None:
                postgres_note = f"PostgreSQL skipped: unreachable ({problem})"
        if postgres_note is not None:
            backends.remove("postgres")

    print(
        f"python {platform.python_version()} ({platform.python_implementation()}) "
        f"on {platform.system()} {platform.machine()}; cpu count {os.cpu_count()}"
    )
    versions = f"sqlalchemy {sa.__version__}; sqlite {sqlite3.sqlite_version}"
    if "postgres" in backends:
        versions += f"; postgresql {postgres_version(args.postgres_url)}"
    print(versions)
    per_account = ", ".join(
        f"{name.removeprefix('nulabpass_')} {n}" for name, n in ROWS_PER_ACCOUNT.items()
    )
    print(
        f"{args.accounts} managed accounts per side, one transaction each, after "
        f"{WARMUP} warm-up accounts; rows per account: {per_account}"
    )
    print("anchor: SQLAlchemy Core insert() of the same rows, one transaction per account")
    print("anchor of memory: the same raw inserts on in-memory SQLite (sqlite://)")
    if postgres_note is not None:
        print(postgres_note)

    for backend in backends:
        if backend == "memory":
            sides = memory_sides()
        elif backend == "sqlite":
            sides = sqlite_sides()
        else:
            sides = postgres_sides(args.postgres_url)
        bench_backend(backend, sides, args.accounts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
