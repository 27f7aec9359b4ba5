"""SQLite's driver path: statements built once run on the sqlite3 connection with the
values, errors and observability SQLAlchemy's own path gives them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import attrs
import pytest
import sqlalchemy as sa

from nulabpass.errors import Conflict, InvalidInput, NulabPassError
from nulabpass.org._model import DomainStatus, OrgSettings, Role
from nulabpass.stores.sql import SqlStore, schema
from nulabpass.stores.sql import _driver as driver
from nulabpass.testing._store_contract import (
    T0,
    add_all,
    make_account,
    make_domain,
    make_full_plan_record,
    make_membership,
    make_org,
    make_plan,
    read,
)

R = TypeVar("R")


@contextmanager
def _statements(engine: sa.Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def _engine(store: SqlStore) -> sa.Engine:
    bind = store.bind
    assert isinstance(bind, sa.Engine)
    return bind


def _both_paths(store: SqlStore, fn: Callable[[Any], R]) -> tuple[R, R, list[str]]:
    """``fn`` read on the driver path, then through SQLAlchemy (a listener watching)."""
    fast = read(store, fn)
    with _statements(_engine(store)) as seen:
        slow = read(store, fn)
    return fast, slow, seen


def _seeded(store: SqlStore) -> None:
    org = attrs.evolve(
        make_org(),
        settings=OrgSettings(break_glass_requires_admin=True, scim_role_sync=True),
        saml_configured_at=T0 + timedelta(hours=3),
    )
    plan = attrs.evolve(make_plan("org-a", due=5), record=make_full_plan_record())
    add_all(
        store,
        org,
        make_account("acc-1", managed_by="org-a"),
        make_membership("org-a", "acc-1", role=Role.ADMIN, audit_log_admin=True),
        make_domain("dom-1", "org-a", "example.com", status=DomainStatus.VERIFIED, verified_at=T0),
        plan,
    )


def test_reads_give_the_same_values_on_both_paths(sqlite_store: SqlStore) -> None:
    """Times come back as aware datetimes, flags as booleans and settings as the JSON
    document, exactly as through SQLAlchemy, and the second read really went through
    SQLAlchemy (the listener saw it)."""
    _seeded(sqlite_store)

    def everything(uow: Any) -> tuple[object, ...]:
        return (
            uow.organizations.get("org-a"),
            uow.accounts.get("acc-1"),
            uow.accounts.get_by_email("acc-1@example.com"),
            uow.memberships.get("org-a", "acc-1"),
            uow.plans.get("org-a"),
            uow.scim.provisioning_facts("org-a"),
            uow.audit.head("org-a"),
        )

    fast, slow, seen = _both_paths(sqlite_store, everything)
    assert fast == slow
    org, account, _, membership, plan, facts, _ = fast
    assert org.saml_configured_at == T0 + timedelta(hours=3)
    assert org.saml_configured_at.tzinfo is not None
    assert org.settings.scim_role_sync is True
    assert membership.audit_log_admin is True
    assert plan.record == make_full_plan_record()
    assert facts[1][0].verified_at is not None
    assert account.created_at == T0
    assert any("FROM nulabpass_organizations" in s for s in seen)
    assert seen[0] == "BEGIN IMMEDIATE"


def test_writes_on_the_driver_path_are_seen_by_sqlalchemy(sqlite_store: SqlStore) -> None:
    """A row written on the driver path reads back the same through SQLAlchemy, and a
    versioned update reports the row it changed."""
    _seeded(sqlite_store)
    with sqlite_store.transaction() as uow:
        account = uow.accounts.get("acc-1")
        assert account is not None
        uow.accounts.update(attrs.evolve(account, display_name="Renamed", updated_at=T0))
    with _statements(_engine(sqlite_store)):
        again = read(sqlite_store, lambda u: u.accounts.get("acc-1"))
    assert again is not None
    assert (again.display_name, again.version) == ("Renamed", account.version + 1)


def test_driver_errors_are_translated_as_sqlalchemy_errors_are(sqlite_store: SqlStore) -> None:
    """A unique violation of a versioned update raises the caller's error, a foreign
    key violation the store's constraint error, on both paths alike, and the
    transaction stays usable for the next statement."""
    add_all(sqlite_store, make_org(), make_account("acc-1"), make_account("acc-2"))

    def outcomes() -> tuple[str, str]:
        with sqlite_store.transaction() as uow:
            second = uow.accounts.get("acc-2")
            assert second is not None
            with pytest.raises(Conflict) as taken:
                uow.accounts.update(attrs.evolve(second, email="acc-1@example.com"))
            assert uow.accounts.get("acc-2") == second
        with pytest.raises(Conflict) as missing, sqlite_store.transaction() as uow:
            uow.memberships.add(make_membership("org-a", "acc-missing"))
        assert "INSERT" not in missing.value.message
        return taken.value.code, missing.value.code

    fast = outcomes()
    with _statements(_engine(sqlite_store)):
        slow = outcomes()
    assert fast == slow == ("account.email_taken", "store.constraint")


def test_echo_keeps_sqlalchemy_path(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """With echo on, every statement is logged: the driver path is not taken."""
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'echo.sqlite3'}", echo=True)
    try:
        store.upgrade()
        add_all(store, make_org())
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
            assert read(store, lambda u: u.organizations.get("org-a")) == make_org()
        assert any("FROM nulabpass_organizations" in r.getMessage() for r in caplog.records)
    finally:
        store.dispose()


def test_plans_refuse_what_the_driver_path_cannot_run() -> None:
    """Expanding IN lists and Python-side defaults have no plan; a missing required
    parameter gives no values, so SQLAlchemy runs the statement and raises."""
    dialect = sa.create_engine("sqlite://").dialect
    accounts = schema.accounts
    expanding = sa.select(accounts.c.id).where(
        accounts.c.id.in_(sa.bindparam("ids", expanding=True))
    )
    assert driver.plan(expanding, dialect, None) is None
    meta = sa.MetaData()
    defaulted = sa.Table(
        "t",
        meta,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("n", sa.Integer, default=1),
    )
    assert driver.plan(sa.insert(defaulted), dialect, ("id",)) is None
    by_id = sa.select(accounts.c.id).where(accounts.c.id == sa.bindparam("id")).limit(3)
    plan = driver.plan(by_id, dialect, None)
    assert plan is not None
    assert plan.values({}) is None
    assert plan.values({"id": "a"}) == ["a", 3, 0]
    assert driver.plan(by_id, dialect, None) is plan


def test_a_missing_parameter_raises_through_sqlalchemy(sqlite_store: SqlStore) -> None:
    """A look-up called without its parameter fails as SQLAlchemy fails it, as a
    NulabPassError, rather than running with a NULL."""
    stmt = sa.select(schema.accounts.c.id).where(schema.accounts.c.id == sa.bindparam("id"))
    with pytest.raises(NulabPassError), sqlite_store.transaction() as uow:
        uow.accounts._db.fetch(stmt, "account")


def test_processors_run_for_none_as_sqlalchemy_runs_them(sqlite_store: SqlStore) -> None:
    """A JSON column without ``none_as_null`` stores None as the JSON ``null`` text on
    both paths, and reads it back the same."""
    meta = sa.MetaData()
    docs = sa.Table(
        "driver_path_docs",
        meta,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("doc", sa.JSON()),
    )
    engine = _engine(sqlite_store)
    meta.create_all(engine)
    insert = sa.insert(docs)
    by_id = sa.select(docs.c.doc).where(docs.c.id == sa.bindparam("id"))

    def write_and_read(key: str) -> Any:
        with sqlite_store.transaction() as uow:
            uow.accounts._db.write(insert, "doc", [{"id": key, "doc": None}])
        with sqlite_store.transaction() as uow:
            return uow.accounts._db.fetch(by_id, "doc", id=key)

    fast = write_and_read("fast")
    with _statements(engine):
        slow = write_and_read("slow")
    assert fast == slow
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT id, doc FROM driver_path_docs ORDER BY id").all()
    assert [tuple(r) for r in stored] == [("fast", "null"), ("slow", "null")]


_INSTANTS = [
    datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
    datetime(2026, 1, 5, 9, 0, 0, 1, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=9))),
    datetime(2026, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
]


def _times_table(store: SqlStore, name: str) -> tuple[sa.Engine, sa.Table, sa.Select[Any]]:
    """A table ``name`` of ids and timestamps in ``store``'s database, and the query of
    one timestamp by id."""
    times = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("at", schema.UtcDateTime(), nullable=True),
    )
    engine = _engine(store)
    times.create(engine)
    return engine, times, sa.select(times.c.at).where(times.c.id == sa.bindparam("id"))


def test_timestamps_are_stored_and_read_as_sqlalchemy_does(sqlite_store: SqlStore) -> None:
    """The driver path's one-step timestamp conversions store the very text
    SQLAlchemy's chain stores (fixed width, UTC), read back equal aware UTC values, and
    leave every other value to the chain: None, other zones, and the refusal of naive
    values with its code."""
    engine, times, by_id = _times_table(sqlite_store, "driver_path_times")
    insert = sa.insert(times)
    values: list[datetime | None] = [*_INSTANTS, None]

    def write_and_read(prefix: str) -> list[Any]:
        with sqlite_store.transaction() as uow:
            uow.accounts._db.write(
                insert, "time", [{"id": f"{prefix}{i}", "at": v} for i, v in enumerate(values)]
            )
        with sqlite_store.transaction() as uow:
            return [
                uow.accounts._db.fetch(by_id, "time", id=f"{prefix}{i}")[0][0]
                for i in range(len(values))
            ]

    fast = write_and_read("fast")
    with _statements(engine) as seen:
        slow = write_and_read("slow")
    assert seen, "the second run must have gone through SQLAlchemy"
    assert fast == slow == [None if v is None else v.astimezone(UTC) for v in values]
    assert all(v is None or v.tzinfo is UTC for v in fast)
    with engine.connect() as conn:
        stored = dict(conn.exec_driver_sql("SELECT id, at FROM driver_path_times").all())
    for i in range(len(values)):
        assert stored[f"fast{i}"] == stored[f"slow{i}"]
    assert stored["fast0"] == "2026-01-05 09:00:00.000000"
    assert stored["fast2"] == "0001-01-01 00:00:00.000000"
    assert stored["fast5"] == "2026-02-28 23:30:00.000000"
    for path in ("fast", "slow"):
        context = _statements(engine) if path == "slow" else contextlib.nullcontext()
        with context, pytest.raises(InvalidInput) as info, sqlite_store.transaction() as uow:
            uow.accounts._db.write(insert, "time", [{"id": "naive", "at": datetime(2026, 1, 1)}])
        assert info.value.code == "store.naive_datetime"


def test_timestamps_stored_by_others_are_read_as_sqlalchemy_reads_them(
    sqlite_store: SqlStore,
) -> None:
    """Text the fast reading does not take (no microseconds, a date alone, an offset)
    is read by SQLAlchemy's chain, as on its own path."""
    engine, _times, by_id = _times_table(sqlite_store, "driver_path_foreign_times")
    texts = [
        "2026-01-05 09:00:00",
        "2026-01-05",
        "2026-01-05 09:00:00.5",
        "2026-01-05 18:00:00+09:00",
    ]
    with engine.begin() as conn:
        for i, text in enumerate(texts):
            conn.exec_driver_sql(
                "INSERT INTO driver_path_foreign_times VALUES (?, ?)", (str(i), text)
            )

    def read_all() -> list[Any]:
        with sqlite_store.transaction() as uow:
            return [
                uow.accounts._db.fetch(by_id, "time", id=str(i))[0][0] for i in range(len(texts))
            ]

    fast = read_all()
    with _statements(engine):
        slow = read_all()
    assert fast == slow
    assert fast[0] == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert fast[3] == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
