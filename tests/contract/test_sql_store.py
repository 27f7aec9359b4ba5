"""What the SQL store promises beyond the storage contract: migrations, transactions
that join the host's, SQLite settings and the translation of driver errors."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from nulabpass.audit._model import AuditQuery, Target
from nulabpass.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    NulabPassError,
    TransientError,
)
from nulabpass.org._model import AccountStatus, Role
from nulabpass.plans import PlanRecord
from nulabpass.stores.sql import SqlStore, configure_sqlite_engine
from nulabpass.stores.sql.schema import VERSION_TABLE, include_name, metadata, plans
from nulabpass.testing._store_contract import (
    add_all,
    make_account,
    make_event,
    make_membership,
    make_org,
    read,
)

# ---------------------------------------------------------------------------------------
# Migrations


def _tables(bind: sa.Engine | sa.Connection) -> set[str]:
    return set(sa.inspect(bind).get_table_names())


def test_migrations_create_exactly_the_schema(sql_store: SqlStore) -> None:
    """After upgrade() the database matches schema.metadata: tables, columns, types,
    nullability, indexes, unique constraints and foreign keys."""
    bind = sql_store.bind
    assert isinstance(bind, sa.Engine)
    with bind.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_name": include_name,
                "compare_type": True,
                "version_table": VERSION_TABLE,
            },
        )
        assert compare_metadata(context, metadata) == []
        assert {t.name for t in metadata.sorted_tables} <= _tables(conn)


def test_every_table_is_prefixed() -> None:
    """Every table of the schema starts with nulabpass_, so it cannot clash with the
    host's tables."""
    assert metadata.sorted_tables
    assert all(t.name.startswith("nulabpass_") for t in metadata.sorted_tables)


def test_every_plan_fact_has_a_column() -> None:
    """Each field of PlanRecord is stored in its own column of nulabpass_plans."""
    columns = set(plans.c.keys())
    assert {f.name for f in attrs.fields(PlanRecord)} <= columns


def test_upgrade_reports_revisions_and_is_idempotent(tmp_path: Path) -> None:
    """current_revision() is None before upgrade() and the head after; upgrading an
    up-to-date database changes nothing."""
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'np.sqlite3'}")
    try:
        assert store.current_revision() is None
        store.upgrade()
        assert store.current_revision() == SqlStore.head_revision()
        assert store.current_revision() is not None
        add_all(store, make_org())
        store.upgrade()
        assert read(store, lambda u: u.organizations.get("org-a")) == make_org()
    finally:
        store.dispose()


def test_migrations_keep_to_their_own_version_table(tmp_path: Path) -> None:
    """The migrations record their revision in nulabpass_alembic_version and leave a
    host's alembic_version and other tables alone."""
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'np.sqlite3'}")
    bind = store.bind
    assert isinstance(bind, sa.Engine)
    try:
        with bind.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
            conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('host_rev_42')")
            conn.exec_driver_sql("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        store.upgrade()
        with bind.connect() as conn:
            host = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
            ours = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").all()
            assert host == [("host_rev_42",)]
            assert sorted(row[0] for row in ours) == SqlStore.head_revision().split(",")
            assert "orders" in _tables(conn)
            context = MigrationContext.configure(
                conn, opts={"include_name": include_name, "version_table": VERSION_TABLE}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        store.dispose()


def test_downgrade_removes_every_nulabpass_table(tmp_path: Path) -> None:
    """The initial migration's downgrade drops exactly what its upgrade created."""
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'np.sqlite3'}")
    bind = store.bind
    assert isinstance(bind, sa.Engine)
    try:
        store.upgrade()
        with bind.begin() as conn:
            config = Config()
            config.set_main_option("script_location", "nulabpass.stores.sql:migrations")
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert _tables(bind) == {VERSION_TABLE}
        assert store.current_revision() is None
    finally:
        store.dispose()


def test_scim_rows_of_accounts_no_longer_managed_go_with_the_foreign_key(
    tmp_path: Path,
) -> None:
    """Migration 0011 deletes the SCIM rows (and emails) that name an account their
    organization does not manage, and counts each organization's remaining users."""
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'np.sqlite3'}")
    bind = store.bind
    assert isinstance(bind, sa.Engine)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    try:
        store.upgrade("0009_scim_indexes")
        add_all(
            store,
            make_org(),
            make_account("acc-1", managed_by="org-a"),
            make_account("acc-2"),
        )
        with bind.begin() as conn:
            for account_id in ("acc-1", "acc-2", "acc-gone"):
                conn.execute(
                    sa.text(
                        "INSERT INTO nulabpass_scim_users (org_id, account_id, user_name, "
                        "user_name_key, created_at, updated_at, version) "
                        "VALUES ('org-a', :a, :a, :a, :t, :t, 1)"
                    ),
                    {"a": account_id, "t": now.isoformat()},
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO nulabpass_scim_emails (org_id, account_id, position, "
                        "value, value_key, is_primary) VALUES ('org-a', :a, 0, :a, :a, 1)"
                    ),
                    {"a": account_id},
                )
        store.upgrade()
        with bind.connect() as conn:
            users = conn.exec_driver_sql("SELECT account_id FROM nulabpass_scim_users").all()
            emails = conn.exec_driver_sql("SELECT account_id FROM nulabpass_scim_emails").all()
            counts = conn.exec_driver_sql("SELECT * FROM nulabpass_scim_user_counts").all()
        assert users == emails == [("acc-1",)]
        assert counts == [("org-a", 1)]
    finally:
        store.dispose()


def test_unknown_revision_is_a_configuration_error(sqlite_store: SqlStore) -> None:
    """Asking for a revision that does not exist raises ConfigurationError."""
    with pytest.raises(ConfigurationError) as info:
        sqlite_store.upgrade("does-not-exist")
    assert info.value.code == "store.migration_failed"


def test_migrations_ship_inside_the_package() -> None:
    """The Alembic environment, template and revisions are package data."""
    root = resources.files("nulabpass.stores.sql") / "migrations"
    for name in ("env.py", "script.py.mako", "versions/0001_initial.py"):
        assert (root / name).is_file(), name


def test_tables_missing_is_a_configuration_error(tmp_path: Path) -> None:
    """Using a database that was never upgraded raises ConfigurationError
    (store.not_migrated) that says what to run."""
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'np.sqlite3'}")
    try:
        with pytest.raises(ConfigurationError) as info, store.transaction() as uow:
            uow.organizations.get("org-a")
        assert info.value.code == "store.not_migrated"
        assert "upgrade()" in info.value.message
    finally:
        store.dispose()


# ---------------------------------------------------------------------------------------
# Time stamps


def test_times_come_back_as_aware_utc(sql_store: SqlStore) -> None:
    """A time written with any offset reads back as the same instant with tzinfo UTC."""
    jst = timezone(timedelta(hours=9))
    org = attrs.evolve(make_org(), created_at=datetime(2024, 5, 1, 18, 0, 0, 5, tzinfo=jst))
    add_all(sql_store, org)
    got = read(sql_store, lambda u: u.organizations.get("org-a"))
    assert got is not None
    assert got.created_at == datetime(2024, 5, 1, 9, 0, 0, 5, tzinfo=UTC)
    assert got.created_at.tzinfo is UTC


def test_naive_datetimes_are_refused(sql_store: SqlStore) -> None:
    """Writing or querying with a naive datetime raises InvalidInput
    (store.naive_datetime) and writes nothing."""
    naive = attrs.evolve(make_org(), created_at=datetime(2024, 5, 1, 9, 0))
    with pytest.raises(InvalidInput) as info, sql_store.transaction() as uow:
        uow.organizations.add(naive)
    assert info.value.code == "store.naive_datetime"
    assert read(sql_store, lambda u: u.organizations.get("org-a")) is None
    with pytest.raises(InvalidInput), sql_store.transaction() as uow:
        uow.audit.query(AuditQuery(scope="org-a", since=datetime(2024, 5, 1)))


# ---------------------------------------------------------------------------------------
# Transactions


class _AbortError(Exception):
    """Raised inside a unit of work to roll it back."""


def _add_org_then_fail(store: SqlStore, org_id: str, *, expect_uow: object = None) -> None:
    with store.transaction() as uow:
        assert expect_uow is None or uow is expect_uow
        uow.organizations.add(make_org(org_id))
        raise _AbortError


def _host_table(conn: sa.Connection) -> None:
    conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS host_orders (id VARCHAR(20) PRIMARY KEY)")
    conn.exec_driver_sql("DELETE FROM host_orders")


def _host_orders(bind: sa.Engine) -> list[str]:
    with bind.connect() as conn:
        return [row[0] for row in conn.exec_driver_sql("SELECT id FROM host_orders")]


@pytest.fixture
def host_engine(sql_store: SqlStore) -> Iterator[sa.Engine]:
    """The engine under ``sql_store``, with a host table next to nulabpass's."""
    bind = sql_store.bind
    assert isinstance(bind, sa.Engine)
    with bind.begin() as conn:
        _host_table(conn)
    yield bind
    with bind.begin() as conn:
        conn.exec_driver_sql("DROP TABLE host_orders")


def test_joined_transaction_leaves_the_commit_to_the_host(host_engine: sa.Engine) -> None:
    """Given a Connection inside a transaction, nulabpass writes in a SAVEPOINT: if the
    host then rolls back, nulabpass's writes vanish with the host's."""
    with host_engine.connect() as conn:
        conn.begin()
        conn.exec_driver_sql("INSERT INTO host_orders VALUES ('o1')")
        joined = SqlStore(conn)
        with joined.transaction() as uow:
            uow.organizations.add(make_org())
        assert conn.in_transaction()
        conn.rollback()
    check = SqlStore(host_engine)
    assert read(check, lambda u: u.organizations.get("org-a")) is None
    assert _host_orders(host_engine) == []


def test_joined_transaction_commits_with_the_host(host_engine: sa.Engine) -> None:
    """When the host commits, its change and nulabpass's change are both stored."""
    with host_engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("INSERT INTO host_orders VALUES ('o1')")
        with SqlStore(conn).transaction() as uow:
            uow.organizations.add(make_org())
    assert read(SqlStore(host_engine), lambda u: u.organizations.get("org-a")) == make_org()
    assert _host_orders(host_engine) == ["o1"]


def test_joined_failure_rolls_back_only_nulabpass(host_engine: sa.Engine) -> None:
    """An exception inside nulabpass's unit of work undoes only its own writes; the
    host's transaction stays usable and commits its change."""
    with host_engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("INSERT INTO host_orders VALUES ('o1')")
        with pytest.raises(_AbortError):
            _add_org_then_fail(SqlStore(conn), "org-a")
        conn.exec_driver_sql("INSERT INTO host_orders VALUES ('o2')")
    assert read(SqlStore(host_engine), lambda u: u.organizations.get("org-a")) is None
    assert sorted(_host_orders(host_engine)) == ["o1", "o2"]


def test_connection_outside_a_transaction_gets_its_own(host_engine: sa.Engine) -> None:
    """Given a Connection not in a transaction, the unit of work begins and commits one."""
    with host_engine.connect() as conn:
        with SqlStore(conn).transaction() as uow:
            uow.organizations.add(make_org())
        assert not conn.in_transaction()
    assert read(SqlStore(host_engine), lambda u: u.organizations.get("org-a")) == make_org()


def test_nested_transaction_is_a_savepoint(sql_store: SqlStore) -> None:
    """A transaction opened inside another on the same thread shares its unit of work;
    its failure undoes only its own writes and the outer one commits the rest."""
    with sql_store.transaction() as outer:
        outer.organizations.add(make_org("org-a"))
        with pytest.raises(_AbortError):
            _add_org_then_fail(sql_store, "org-b", expect_uow=outer)
        with sql_store.transaction() as inner:
            inner.organizations.add(make_org("org-c"))
    got = read(sql_store, lambda u: [u.organizations.get(o) for o in ("org-a", "org-b", "org-c")])
    assert got == [make_org("org-a"), None, make_org("org-c")]


def test_repositories_refuse_use_after_the_transaction(sql_store: SqlStore) -> None:
    """A repository kept past its transaction raises ConfigurationError instead of
    writing outside any transaction."""
    with sql_store.transaction() as uow:
        pass
    with pytest.raises(ConfigurationError) as info:
        uow.organizations.add(make_org())
    assert info.value.code == "store.transaction_closed"


# ---------------------------------------------------------------------------------------
# SQLite settings


def test_sqlite_connections_are_configured(sqlite_store: SqlStore) -> None:
    """SQLite runs with foreign keys on, write-ahead logging, a busy timeout and
    BEGIN IMMEDIATE transactions."""
    with sqlite_store.transaction() as uow:
        uow.organizations.get("x")
    bind = sqlite_store.bind
    assert isinstance(bind, sa.Engine)
    with bind.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_unprepared_sqlite_engine_is_refused() -> None:
    """SqlStore refuses a SQLite engine without configure_sqlite_engine(), whose
    SAVEPOINTs and locking would not be reliable, and accepts it afterwards."""
    engine = sa.create_engine("sqlite://")
    with pytest.raises(ConfigurationError) as info:
        SqlStore(engine)
    assert info.value.code == "store.sqlite_not_configured"
    configure_sqlite_engine(engine)
    configure_sqlite_engine(engine)
    SqlStore(engine)
    engine.dispose()


def test_in_memory_sqlite_keeps_its_data() -> None:
    """sqlite:// is one private database shared by every transaction of the store."""
    store = SqlStore.from_url("sqlite://")
    try:
        store.upgrade()
        add_all(store, make_org())
        assert read(store, lambda u: u.organizations.get("org-a")) == make_org()
    finally:
        store.dispose()


def test_a_busy_sqlite_database_is_a_transient_error(tmp_path: Path) -> None:
    """When another process holds the write lock past the busy timeout, the store
    raises TransientError (store.unavailable) without SQL in its message."""
    path = tmp_path / "np.sqlite3"
    store = SqlStore.from_url(f"sqlite:///{path}", busy_timeout=0.05)
    store.upgrade()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(TransientError) as info, store.transaction() as uow:
            uow.organizations.add(make_org())
        assert info.value.code == "store.unavailable"
        assert "BEGIN" not in info.value.message
        other.execute("ROLLBACK")
        add_all(store, make_org())
    finally:
        other.close()
        store.dispose()


# ---------------------------------------------------------------------------------------


def _page_size(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])


def test_new_sqlite_databases_get_small_pages(tmp_path: Path) -> None:
    """A database the store creates has 2 KiB pages unless told otherwise, and is in
    write-ahead logging mode with them."""
    for name, options, expected in (
        ("default.sqlite3", {}, 2048),
        ("large.sqlite3", {"sqlite_page_size": 8192}, 8192),
    ):
        path = tmp_path / name
        store = SqlStore.from_url(f"sqlite:///{path}", **options)
        try:
            store.upgrade()
            add_all(store, make_org())
        finally:
            store.dispose()
        assert _page_size(path) == expected
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_existing_sqlite_database_keeps_its_page_size(tmp_path: Path) -> None:
    """Opening a database made with another page size changes nothing in it."""
    path = tmp_path / "old.sqlite3"
    old = SqlStore.from_url(f"sqlite:///{path}", sqlite_page_size=4096)
    try:
        old.upgrade()
        add_all(old, make_org())
    finally:
        old.dispose()
    store = SqlStore.from_url(f"sqlite:///{path}")
    try:
        store.upgrade()
        assert read(store, lambda u: u.organizations.get("org-a")) == make_org()
    finally:
        store.dispose()
    assert _page_size(path) == 4096


@pytest.mark.parametrize("size", [0, 256, 1000, 131072])
def test_an_invalid_sqlite_page_size_is_refused(size: int) -> None:
    """Only the page sizes SQLite accepts are; anything else would be silently ignored
    by SQLite, so it is refused before a connection is made."""
    with pytest.raises(ConfigurationError) as info:
        SqlStore.from_url("sqlite://", sqlite_page_size=size)
    assert info.value.code == "store.invalid_option"
    assert str(size) in info.value.message


# Driver errors and messages


def test_foreign_key_violations_are_conflicts_without_values(sql_store: SqlStore) -> None:
    """A write that references a missing row raises Conflict (store.constraint) whose
    message names the resource but no SQL and no values."""
    add_all(sql_store, make_org())
    with pytest.raises(Conflict) as info, sql_store.transaction() as uow:
        uow.memberships.add(make_membership("org-a", "acc-secret-id"))
    assert info.value.code == "store.constraint"
    assert "membership" in info.value.message
    assert "acc-secret-id" not in info.value.message
    assert "INSERT" not in info.value.message


def test_deleting_an_account_still_referenced_is_account_in_use(sql_store: SqlStore) -> None:
    """delete refuses an account that still has memberships (Conflict account.in_use)."""
    add_all(sql_store, make_org(), make_account("acc-1"), make_membership("org-a", "acc-1"))
    with pytest.raises(Conflict) as info, sql_store.transaction() as uow:
        uow.accounts.delete("acc-1")
    assert info.value.code == "account.in_use"
    assert read(sql_store, lambda u: u.accounts.get("acc-1")) == make_account("acc-1")


def test_email_conflict_message_does_not_echo_the_email(sql_store: SqlStore) -> None:
    """The email_taken message does not repeat the address (personal data)."""
    add_all(sql_store, make_account("acc-1", email="private@example.com"))
    with pytest.raises(Conflict) as info, sql_store.transaction() as uow:
        uow.accounts.add(make_account("acc-2", email="private@example.com"))
    assert "private@example.com" not in str(info.value)


def test_every_store_error_is_a_nulabpass_error(sql_store: SqlStore) -> None:
    """Invalid input from the caller (a bad batch size) surfaces as a NulabPassError."""
    with pytest.raises(NulabPassError), sql_store.transaction() as uow:
        list(uow.audit.iter_chain("org-a", batch_size=0))


# ---------------------------------------------------------------------------------------
# Queries stay in the database


class _Statements:
    """Records the SQL statements an engine runs."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def __enter__(self) -> _Statements:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        self.seen.append(statement)

    def selects_from(self, table: str) -> list[str]:
        return [s for s in self.seen if s.lstrip().upper().startswith("SELECT") and table in s]


def test_iter_chain_reads_in_keyset_batches(sql_store: SqlStore) -> None:
    """iter_chain fetches batch_size events per query, never the whole chain at once."""
    events = [make_event("org-a", seq) for seq in range(1, 6)]
    add_all(sql_store, *events)
    bind = sql_store.bind
    assert isinstance(bind, sa.Engine)
    with _Statements(bind) as statements, sql_store.transaction() as uow:
        assert list(uow.audit.iter_chain("org-a", batch_size=2)) == events
    batches = statements.selects_from("FROM nulabpass_audit_events")
    assert len(batches) == 3
    assert all("LIMIT" in s for s in batches)


def test_audit_query_is_one_filtered_limited_query(sql_store: SqlStore) -> None:
    """Every AuditQuery filter is compiled into the SELECT (the target filter as
    EXISTS on audit_targets), with ORDER BY seq and LIMIT."""
    add_all(sql_store, make_event("org-a", 1, targets=(Target("account", "acc-1"),)))
    bind = sql_store.bind
    assert isinstance(bind, sa.Engine)
    query = AuditQuery(
        scope="org-a",
        since=datetime(2024, 1, 1, tzinfo=UTC),
        until=datetime(2025, 1, 1, tzinfo=UTC),
        actions=("member.added",),
        actor_id="acc-actor",
        target_id="acc-1",
        after_seq=10,
        limit=5,
    )
    with _Statements(bind) as statements, sql_store.transaction() as uow:
        assert [e.seq for e in uow.audit.query(query)] == [1]
    (sql,) = statements.selects_from("FROM nulabpass_audit_events")
    for fragment in ("EXISTS", "nulabpass_audit_targets", "occurred_at >=", "occurred_at <"):
        assert fragment in sql
    assert "ORDER BY nulabpass_audit_events.seq DESC" in sql
    assert "LIMIT" in sql


def test_count_break_glass_is_one_query(sql_store: SqlStore) -> None:
    """count_break_glass runs a single SQL statement joining accounts."""
    add_all(
        sql_store,
        make_org(),
        make_account("acc-1"),
        make_account("acc-2", status=AccountStatus.DEACTIVATED),
        make_membership("org-a", "acc-1", role=Role.ADMIN),
        make_membership("org-a", "acc-2", role=Role.ADMIN),
    )
    bind = sql_store.bind
    assert isinstance(bind, sa.Engine)
    with _Statements(bind) as statements, sql_store.transaction() as uow:
        assert uow.memberships.count_break_glass("org-a", require_admin=True) == 1
    statements.seen = [s for s in statements.seen if "nulabpass_" in s]
    assert len(statements.seen) == 1
    assert "JOIN nulabpass_accounts" in statements.seen[0]


@pytest.mark.parametrize("require_admin", [True, False])
def test_break_glass_count_seeks_the_privileged_members_only(
    sqlite_store: SqlStore, require_admin: bool
) -> None:
    """The count runs after every change: on SQLite its plan seeks the (org_id, role
    [, plan_admin]) index, never every member of the organization."""
    add_all(sqlite_store, make_org(), make_account("acc-1"), make_membership("org-a", "acc-1"))
    bind = sqlite_store.bind
    assert isinstance(bind, sa.Engine)
    with _Statements(bind) as statements, sqlite_store.transaction() as uow:
        uow.memberships.count_break_glass("org-a", require_admin=require_admin)
    (sql,) = [s for s in statements.seen if "nulabpass_" in s]
    with bind.connect() as conn:
        plan = [
            row[-1]
            for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {sql}", ("org-a",) * sql.count("?")
            )
        ]
    searches = [p for p in plan if "nulabpass_memberships" in p]
    assert searches, plan
    assert all("org_id=? AND role=?" in p for p in searches), plan
    assert len(searches) == (1 if require_admin else 2)


def test_an_unreachable_database_is_a_transient_error() -> None:
    """A refused PostgreSQL connection raises TransientError (store.unavailable)."""
    store = SqlStore.from_url("postgresql://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(TransientError) as info, store.transaction() as uow:
            uow.organizations.get("org-a")
        assert info.value.code == "store.unavailable"
    finally:
        store.dispose()


# ---------------------------------------------------------------------------------------
# Snapshots


def test_a_snapshot_neither_holds_up_writers_nor_sees_their_changes(
    sql_store: SqlStore,
) -> None:
    """A change committed by another thread while a snapshot is open goes through at
    once (SQLite: no write lock is held; PostgreSQL: a read-only transaction) and stays
    invisible to the snapshot, which sees one state throughout."""
    add_all(sql_store, make_org())
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            add_all(sql_store, make_org("org-b"))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with sql_store.snapshot() as uow:
        assert uow.organizations.get("org-a") == make_org()
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(timeout=10)
        assert not writer.is_alive(), "the writer waited for the snapshot"
        assert outcome == [None]
        assert uow.organizations.get("org-b") is None
    assert read(sql_store, lambda u: u.organizations.get("org-b")) == make_org("org-b")


def test_a_snapshot_refuses_writes_and_leaves_the_connection_writable(
    sql_store: SqlStore,
) -> None:
    with pytest.raises(NulabPassError), sql_store.snapshot() as uow:
        uow.organizations.add(make_org("org-c"))
    add_all(sql_store, make_org("org-d"))
    assert read(sql_store, lambda u: u.organizations.get("org-c")) is None
    assert read(sql_store, lambda u: u.organizations.get("org-d")) == make_org("org-d")


def test_a_snapshot_inside_a_transaction_joins_it(sql_store: SqlStore) -> None:
    with sql_store.transaction() as outer:
        outer.organizations.add(make_org("org-e"))
        with sql_store.snapshot() as uow:
            assert uow.organizations.get("org-e") == make_org("org-e")
    assert read(sql_store, lambda u: u.organizations.get("org-e")) == make_org("org-e")


# ---------------------------------------------------------------------------------------
# Versioned updates set the columns that changed


def test_an_update_sets_only_the_columns_that_changed(sql_store: SqlStore) -> None:
    """An account read in the transaction is updated with only its changed columns (its
    email's unique index is not rewritten when the email stays), and a second update in
    the same transaction diffs against the first one's result."""
    add_all(sql_store, make_account("acc-1"))
    bind = sql_store.bind
    assert isinstance(bind, sa.Engine)
    with _Statements(bind) as statements, sql_store.transaction() as uow:
        account = uow.accounts.get("acc-1")
        assert account is not None
        renamed = uow.accounts.update(attrs.evolve(account, display_name="Renamed"))
        uow.accounts.update(attrs.evolve(renamed, email="new@example.com"))
    updates = [s for s in statements.seen if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 2
    first_set = updates[0].split(" WHERE ")[0]
    second_set = updates[1].split(" WHERE ")[0]
    assert "display_name" in first_set
    assert "email" not in first_set
    assert "email" in second_set
    assert "display_name" not in second_set
    stored = read(sql_store, lambda u: u.accounts.get("acc-1"))
    assert stored is not None
    assert (stored.display_name, stored.email, stored.version) == (
        "Renamed",
        "new@example.com",
        account.version + 2,
    )


def test_another_write_to_the_table_makes_the_next_update_set_every_column(
    sql_store: SqlStore,
) -> None:
    """A row changed by any other statement since it was read is no longer trusted: the
    update then writes every column the caller gave, so the caller's values win."""
    add_all(sql_store, make_account("acc-1"))
    accounts = sa.table("nulabpass_accounts", sa.column("id"), sa.column("display_name"))
    with sql_store.transaction() as uow:
        account = uow.accounts.get("acc-1")
        assert account is not None
        uow.accounts._db.execute(
            sa.update(accounts)
            .where(accounts.c.id == "acc-1")
            .values(display_name="Changed elsewhere"),
            "account",
        )
        uow.accounts.update(attrs.evolve(account, language="en"))
    stored = read(sql_store, lambda u: u.accounts.get("acc-1"))
    assert stored is not None
    assert (stored.display_name, stored.language) == (account.display_name, "en")
