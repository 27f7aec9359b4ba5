"""The audit log at scale: appends, verification, a filtered query and a CSV export.

1. **Append.** ``--append`` events (default 100,000) are appended to one organization's
   chain through the facade's use-case runner on SQLite and on PostgreSQL: one
   transaction per event that locks the organization, reads the chain head, hashes the
   event with its salted personal-data commitments and inserts the event, its target and
   its personal data. The body of the use case records a target and metadata and
   changes nothing else, so the figure is the cost of auditing itself. The anchor
   inserts exactly the same rows (captured from our run, re-keyed) with SQLAlchemy Core,
   one transaction per event, into a fresh database of the same schema. The two sides
   alternate in blocks of 1,000 events, so that load from elsewhere on the machine
   weighs on both alike. Prints
   ``ratio audit.append.<backend>.vs_raw_insert: <raw seconds / our seconds>``
   (target: at least 0.5).
2. **Verify.** A bulk seeder writes a valid ``--log`` event chain (default 1,000,000)
   straight into SQLite in batches (200 actors, 13 months, a target and personal data
   per event), signs a checkpoint, then ``np.audit.verify`` runs in a fresh child
   process: prints its seconds and the child's own peak resident memory (``VmHWM``;
   targets: under 30 s and under 200 MB).
3. **Query.** ``np.audit.query`` for one actor in one month on that log: prints the
   median of 25 runs (target: under 10 ms).
4. **Export.** ``np.audit.export`` of the whole log to CSV, in a fresh child process:
   prints seconds and peak resident memory (flat: close to the verify figure).

Run ``make bench-audit`` or ``.venv/bin/python benchmarks/bench_audit.py``
(``--append 10000 --log 200000`` for a quicker pass). PostgreSQL is read from
``NULABPASS_BENCH_POSTGRES_URL`` (default: the local test database); ``--backends
sqlite`` skips it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from nulabpass import Actor, NulabPass, RequestContext
from nulabpass._runtime import Recorder
from nulabpass.audit._chain import commit, event_hash
from nulabpass.audit._model import AuditQuery, EventRecord, Outcome, PersonalDatum, Target
from nulabpass.stores.sql import SqlStore
from nulabpass.stores.sql import schema as s
from nulabpass.testing import FrozenClock, MemoryKeyProvider, RecordingMailer, make_nulabpass

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SEED = bytes(range(32))
CTX = RequestContext(
    ip="198.51.100.20",
    user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0",
    request_id="req-bench",
    product="tracker",
)
START = datetime(2025, 1, 1, tzinfo=UTC)


def _peak_mb() -> float:
    # Linux keeps ``ru_maxrss`` across exec, so a spawned child would report the
    # parent's peak (the seeder's) whenever that is higher; ``VmHWM`` is the peak of the
    # child's own address space.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- 1. append ------------------------------------------------------------------------


def _pg_url(base: str) -> tuple[str, str]:
    schema = f"bench_audit_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return base, schema


def _store(backend: str, tmp: Path, pg_base: str, label: str) -> tuple[SqlStore, Any]:
    if backend == "sqlite":
        store = SqlStore.from_url(f"sqlite:///{tmp / f'{label}.sqlite3'}")
        store.upgrade()
        return store, None
    base, schema = _pg_url(pg_base)
    engine = sa.create_engine(base, connect_args={"options": f"-csearch_path={schema}"})
    store = SqlStore(engine)
    store.upgrade()
    return store, schema


def _drop(pg_base: str, schema: str | None) -> None:
    if schema is None:
        return
    admin = sa.create_engine(pg_base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _setup(store: SqlStore) -> tuple[NulabPass, Actor, str]:
    np = make_nulabpass(store, clock=FrozenClock(START), mailer=RecordingMailer())
    founder = np.accounts.register("founder@partner.example", "Aiko Tanaka")
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, "Acme Corp")
    return np, admin, org.id


def _raw_rows(
    events: list[EventRecord], personal: Mapping[str, tuple[PersonalDatum, ...]]
) -> list[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]]:
    """The rows our run wrote for ``events``, re-keyed for the anchor's database."""
    rows = []
    for e in events:
        new_id = "r" + e.id
        event_row = {
            "id": new_id,
            "scope": e.scope,
            "seq": e.seq,
            "occurred_at": e.occurred_at,
            "action": e.action,
            "category": e.category,
            "outcome": e.outcome.value,
            "actor_type": e.actor_type,
            "actor_id": e.actor_id,
            "context": dict(e.context),
            "metadata": dict(e.metadata),
            "commitments": dict(e.commitments),
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        target_rows = [
            {
                "event_id": new_id,
                "scope": e.scope,
                "position": i,
                "type": t.type,
                "target_id": t.id,
            }
            for i, t in enumerate(e.targets)
        ]
        personal_rows = [
            {
                "event_id": new_id,
                "slot": d.slot,
                "subject_id": d.subject_id,
                "salt": d.salt,
                "value": d.value,
                "version": 1,
            }
            for d in personal.get(e.id, ())
        ]
        rows.append((event_row, target_rows, personal_rows))
    return rows


def bench_append(backend: str, n: int, tmp: Path, pg_base: str, block: int = 1000) -> float:
    store, schema = _store(backend, tmp, pg_base, "ours")
    np, admin, org = _setup(store)
    runtime = np._runtime
    raw_store, raw_schema = _store(backend, tmp, pg_base, "raw")
    engine = raw_store.bind
    assert isinstance(engine, sa.Engine)
    ins_e, ins_t, ins_p = (
        sa.insert(s.audit_events),
        sa.insert(s.audit_targets),
        sa.insert(s.audit_personal),
    )

    def body(rec: Recorder) -> None:
        rec.target("team", "team_bench", name="Engineering")
        rec.meta(via="bench")

    def ours(count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            runtime.run(scope=org, action="team.renamed", actor=admin, ctx=CTX, body=body)
        return time.perf_counter() - started

    def raw(after: int, count: int) -> tuple[float, int]:
        # The rows are read back and built before the anchor's clock starts.
        with store.transaction() as uow:
            query = AuditQuery(scope=org, after_seq=after, newest_first=False, limit=count)
            events = uow.audit.query(query)
            personal = uow.audit.personal_for([e.id for e in events])
        rows = _raw_rows(events, personal)
        started = time.perf_counter()
        for event_row, target_rows, personal_rows in rows:
            with engine.begin() as conn:
                conn.execute(ins_e, event_row)
                conn.execute(ins_t, target_rows)
                conn.execute(ins_p, personal_rows)
        return time.perf_counter() - started, events[-1].seq

    with store.transaction() as uow:
        last, _ = uow.audit.head(org)
    ours(100)
    _, last = raw(last, 100)
    ours_s = raw_s = 0.0
    done = 0
    # Both sides run in alternating blocks, so a change of load on a shared machine
    # weighs on both alike.
    while done < n:
        count = min(block, n - done)
        ours_s += ours(count)
        spent, last = raw(last, count)
        raw_s += spent
        done += count
    store.dispose()
    raw_store.dispose()
    _drop(pg_base, schema)
    _drop(pg_base, raw_schema)
    print(
        f"append {backend}: {n} events, ours {ours_s:.2f} s ({ours_s / n * 1e6:.0f} us/event), "
        f"raw inserts {raw_s:.2f} s ({raw_s / n * 1e6:.0f} us/event)"
    )
    print(f"ratio audit.append.{backend}.vs_raw_insert: {raw_s / ours_s:.2f}")
    return raw_s / ours_s


# -- 2. bulk seeder --------------------------------------------------------------------


def seed_log(url: str, n: int) -> tuple[str, str]:
    """Write a valid ``n``-event chain into a migrated store; return (org, one actor)."""
    store = SqlStore.from_url(url)
    store.upgrade()
    np, admin, org = _setup(store)
    np.plans.start_trial(admin, org)
    with store.transaction() as uow:
        seq, prev = uow.audit.head(org)
    store.dispose()
    engine = sa.create_engine(url)
    rng = random.Random(7)
    actors = [f"acc_bench_{i:04d}" for i in range(200)]
    span = timedelta(days=395).total_seconds()
    batch_e: list[dict[str, Any]] = []
    batch_t: list[dict[str, Any]] = []
    batch_p: list[dict[str, Any]] = []
    step = span / n
    for i in range(n):
        seq += 1
        actor = actors[rng.randrange(len(actors))]
        event_id = f"evt_bench_{seq:09d}"
        salt = hashlib.sha256(event_id.encode()).hexdigest()[:32]
        email = f"{actor}@example.com"
        commitments = {"actor.email": commit("actor.email", salt, email)}
        unsigned = EventRecord(
            id=event_id,
            scope=org,
            seq=seq,
            occurred_at=START + timedelta(days=1, seconds=i * step),
            action="team.member_added",
            category="team",
            outcome=Outcome.SUCCESS,
            actor_type="account",
            actor_id=actor,
            targets=(Target("team", f"team_{i % 50}"),),
            context={"product": "tracker"},
            metadata={"via": "seed"},
            commitments=commitments,
            prev_hash=prev,
            hash="",
        )
        h = event_hash(unsigned)
        prev = h
        batch_e.append(
            {
                "id": event_id,
                "scope": org,
                "seq": seq,
                "occurred_at": unsigned.occurred_at,
                "action": unsigned.action,
                "category": unsigned.category,
                "outcome": "success",
                "actor_type": "account",
                "actor_id": actor,
                "context": dict(unsigned.context),
                "metadata": dict(unsigned.metadata),
                "commitments": commitments,
                "prev_hash": unsigned.prev_hash,
                "hash": h,
            }
        )
        batch_t.append(
            {
                "event_id": event_id,
                "scope": org,
                "position": 0,
                "type": "team",
                "target_id": f"team_{i % 50}",
            }
        )
        batch_p.append(
            {
                "event_id": event_id,
                "slot": "actor.email",
                "subject_id": actor,
                "salt": salt,
                "value": email,
                "version": 1,
            }
        )
        if len(batch_e) == 20000 or i == n - 1:
            with engine.begin() as conn:
                conn.execute(sa.insert(s.audit_events), batch_e)
                conn.execute(sa.insert(s.audit_targets), batch_t)
                conn.execute(sa.insert(s.audit_personal), batch_p)
            batch_e, batch_t, batch_p = [], [], []
    engine.dispose()
    return org, actors[0]


def _np(url: str) -> NulabPass:
    clock = FrozenClock(START + timedelta(days=10))
    return make_nulabpass(
        SqlStore.from_url(url), clock=clock, mailer=RecordingMailer(), keys=MemoryKeyProvider(SEED)
    )


def _child_verify(url: str, org: str, out: Any) -> None:
    np = _np(url)
    started = time.perf_counter()
    result = np.audit.verify(org)
    out.put(
        (
            time.perf_counter() - started,
            _peak_mb(),
            result.ok,
            result.events_checked,
            result.checkpoints_checked,
        )
    )


def _child_export(url: str, org: str, path: str, out: Any) -> None:
    np = _np(url)
    founder = np.accounts.find_by_email("founder@partner.example")
    assert founder is not None
    started = time.perf_counter()
    export = np.audit.export(Actor.account(founder.id), org, fmt="csv")
    export.write(path)
    out.put((time.perf_counter() - started, _peak_mb(), export.manifest()["count"]))


def _in_child(target: Any, *args: Any) -> Any:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def bench_log(n: int, tmp: Path) -> None:
    url = f"sqlite:///{tmp / 'log.sqlite3'}"
    started = time.perf_counter()
    org, actor = seed_log(url, n)
    print(f"seeded {n} events in {time.perf_counter() - started:.1f} s")
    np = _np(url)
    started = time.perf_counter()
    np.audit.checkpoint(Actor.system(), org)
    print(f"first checkpoint over {n} events: {time.perf_counter() - started:.2f} s")
    np.store.dispose()  # type: ignore[attr-defined]

    seconds, peak, ok, checked, cps = _in_child(_child_verify, url, org)
    print(
        f"verify {checked} events (ok={ok}, {cps} checkpoint): {seconds:.2f} s, "
        f"peak RSS {peak:.0f} MB (targets: < 30 s, < 200 MB)"
    )

    np = _np(url)
    founder = np.accounts.find_by_email("founder@partner.example")
    assert founder is not None
    admin = Actor.account(founder.id)
    month = START + timedelta(days=120)
    times = []
    for _ in range(25):
        started = time.perf_counter()
        page = np.audit.query(
            admin, org, actor_id=actor, since=month, until=month + timedelta(days=31), limit=100
        )
        times.append(time.perf_counter() - started)
    print(
        f"query one actor, one month ({len(page.entries)} entries on the first page): "
        f"median {statistics.median(times) * 1000:.2f} ms (target: < 10 ms)"
    )
    np.store.dispose()  # type: ignore[attr-defined]

    path = str(tmp / "export.csv")
    seconds, peak, count = _in_child(_child_export, url, org, path)
    size = os.path.getsize(path) / 1e6
    print(f"export {count} events to CSV ({size:.0f} MB): {seconds:.2f} s, peak RSS {peak:.0f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--append", type=int, default=100_000, help="events to append")
    parser.add_argument("--log", type=int, default=1_000_000, help="events in the large log")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args(argv)
    pg_base = os.environ.get("NULABPASS_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    print(f"python {sys.version.split()[0]} on {platform.platform()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            if args.append:
                bench_append(backend.strip(), args.append, Path(tmp), pg_base)
        if args.log:
            bench_log(args.log, Path(tmp))
    print(json.dumps({"append": args.append, "log": args.log}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
