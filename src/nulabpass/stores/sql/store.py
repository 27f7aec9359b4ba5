"""The SQL store: :class:`~nulabpass.ports.Store` on SQLAlchemy 2 Core.

Theory of operation
-------------------
A :class:`SqlStore` wraps an ``Engine`` or a ``Connection``.

- With an ``Engine`` (the usual case), each :meth:`SqlStore.transaction` checks out a
  connection and runs ``BEGIN ... COMMIT`` on it; leaving the block with an exception
  rolls back.
- With a ``Connection`` that is already inside a transaction, the unit of work joins
  the host's transaction through a SAVEPOINT: a failure rolls back only what
  nulabpass wrote, and success releases the savepoint and leaves the COMMIT to the host,
  so the host's change and nulabpass's change (with its audit event) commit or vanish
  together. A ``Connection`` outside a transaction gets its own ``BEGIN ... COMMIT``.
  A ``Connection`` is not thread-safe; use it from the thread that owns it.

A transaction opened while the same thread already has one open on the same store
joins it as a SAVEPOINT, as the memory store does: its failure undoes only its own
writes.

Writers of one organization are serialised by ``organizations.lock`` (PostgreSQL:
``SELECT ... FOR UPDATE``). SQLite has one writer at a time; every transaction starts
with ``BEGIN IMMEDIATE`` so it takes the write lock up front and waits (busy timeout)
for the current writer instead of failing later when a reader tries to upgrade its lock
(``SQLITE_BUSY``, which no timeout can resolve). :func:`configure_sqlite_engine`
installs that behaviour; :meth:`SqlStore.from_url` calls it for you.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from nulabpass.errors import ConfigurationError
from nulabpass.ports import (
    AccountRepository,
    AuditLedgerRepository,
    AuditRepository,
    ConversionRepository,
    DomainChallengeRepository,
    DomainRepository,
    InvitationRepository,
    MembershipRepository,
    OrganizationRepository,
    OutboxRepository,
    PlanRepository,
    ScimRepository,
    Store,
    TeamRepository,
    UnitOfWork,
)
from nulabpass.stores.sql import _driver
from nulabpass.stores.sql._audit_ledger import SqlAuditLedgerRepository
from nulabpass.stores.sql._domains import SqlDomainChallengeRepository, SqlRateLimitBuckets
from nulabpass.stores.sql._errors import translate
from nulabpass.stores.sql._repositories import (
    Db,
    SqlAccountRepository,
    SqlAuditRepository,
    SqlConversionRepository,
    SqlDomainRepository,
    SqlInvitationRepository,
    SqlMembershipRepository,
    SqlOrganizationRepository,
    SqlOutboxRepository,
    SqlPlanRepository,
    SqlTeamRepository,
)
from nulabpass.stores.sql._saml import SqlSamlReplayRows
from nulabpass.stores.sql._saml_login import SqlSamlLoginRepository
from nulabpass.stores.sql._saml_metadata import SqlSamlMetadataRepository
from nulabpass.stores.sql._scim import SqlScimRepository
from nulabpass.stores.sql.schema import VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["SqlStore", "SqlUnitOfWork", "configure_sqlite_engine"]

_SUPPORTED_DIALECTS = ("sqlite", "postgresql")
_MIGRATIONS = "nulabpass.stores.sql:migrations"
# Key of the PostgreSQL advisory lock that serialises concurrent upgrades (application
# instances starting together); an arbitrary constant, "nlbpass" in ASCII.
_MIGRATION_LOCK_KEY = 0x6E6C6270617373


# ---------------------------------------------------------------------------------------
# SQLite engine configuration


def _sqlite_is_in_memory(database: str | None) -> bool:
    return not database or database == ":memory:" or "mode=memory" in database


#: Page size of the SQLite databases nulabpass creates (see :func:`configure_sqlite_engine`).
SQLITE_PAGE_SIZE = 2048

_SQLITE_PAGE_SIZES = frozenset(1 << n for n in range(9, 17))


def configure_sqlite_engine(
    engine: Engine, *, busy_timeout: float = 30.0, page_size: int = SQLITE_PAGE_SIZE
) -> None:
    """Prepare a SQLite engine for nulabpass; call it right after ``create_engine``.

    On every new connection: foreign keys on, ``busy_timeout`` seconds of waiting for
    the write lock, and write-ahead logging for file databases (readers then never block
    the writer). Every transaction begins with ``BEGIN IMMEDIATE`` (see the module
    documentation), which also makes SAVEPOINTs and DDL transactional: the ``sqlite3``
    module's own transaction handling is switched off. Connections already open in the
    pool are not changed, hence "right after ``create_engine``".

    ``page_size`` (bytes, a power of two from 512 to 65536) applies to a database this
    engine creates; an existing database keeps the page size it was created with. The
    default, 2 KiB rather than SQLite's 4 KiB, lowers the cost of durability: every
    commit writes each B-tree page it changed to the write-ahead log and waits for the
    disk, and a nulabpass change touches a few dozen pages (its rows, their indexes and
    the audit event's), so smaller pages mean fewer bytes to sync per commit (a SCIM
    create: about 100 KiB instead of 165 KiB). 1 KiB pages save a little more per
    commit but slow scans of large indexes (a SCIM filter over every email) by 5 to 15%.
    """
    if page_size not in _SQLITE_PAGE_SIZES:
        raise ConfigurationError(
            f"page_size must be a power of two from 512 to 65536, not {page_size!r}.",
            code="store.invalid_option",
        )
    if engine.dialect.name != "sqlite":
        raise ConfigurationError(
            f"configure_sqlite_engine() needs a SQLite engine, not {engine.dialect.name}.",
            code="store.unsupported_database",
        )
    if event.contains(engine, "begin", _begin_immediate):
        return
    use_wal = not _sqlite_is_in_memory(engine.url.database)
    timeout_ms = max(0, int(busy_timeout * 1000))

    def on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # ``isolation_level = None`` stops the sqlite3 module from issuing BEGIN and
        # COMMIT on its own; SQLAlchemy's ``begin`` event below issues BEGIN instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            # Takes effect only while the database is still empty, so before the
            # journal mode below writes its first page.
            cursor.execute(f"PRAGMA page_size = {page_size}")
            if use_wal:
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", _begin_immediate)


def _on_sqlite_driver(conn: Connection, sql: str) -> None:
    """Run ``sql`` on the SQLite driver connection under ``conn``, its error wrapped as
    SQLAlchemy wraps driver errors."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        conn.connection.driver_connection.execute(sql)  # type: ignore[union-attr]
    except dbapi.Error as exc:
        raise sa_exc.DBAPIError.instance(
            sql, None, exc, dbapi.Error, hide_parameters=True
        ) from exc


#: ``Connection.info`` key set while a connection serves :meth:`SqlStore.snapshot`.
_SNAPSHOT = "nulabpass.snapshot"


def _begin_immediate(conn: Connection) -> None:
    if conn.info.get(_SNAPSHOT):
        # A deferred transaction takes no lock; under write-ahead logging its first read
        # fixes the state it sees until it ends, while writers go on.
        conn.exec_driver_sql("BEGIN")
        return
    if _driver.observed(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return
    # Straight to the driver, as the unit of work's statements (see ``_driver``); a
    # driver error is wrapped as SQLAlchemy would, for the caller's translation.
    _on_sqlite_driver(conn, "BEGIN IMMEDIATE")


def _sqlite_configured(engine: Engine) -> bool:
    return event.contains(engine, "begin", _begin_immediate)


# ---------------------------------------------------------------------------------------
# Unit of work and store


class SqlUnitOfWork:
    """One SQL transaction and its repositories (:class:`~nulabpass.ports.UnitOfWork`)."""

    organizations: OrganizationRepository
    accounts: AccountRepository
    memberships: MembershipRepository
    teams: TeamRepository
    invitations: InvitationRepository
    conversions: ConversionRepository
    domains: DomainRepository
    domain_challenges: DomainChallengeRepository
    audit: AuditRepository
    audit_ledger: AuditLedgerRepository
    outbox: OutboxRepository
    plans: PlanRepository
    scim: ScimRepository
    saml: SqlSamlLoginRepository
    saml_metadata: SqlSamlMetadataRepository

    def __init__(self, db: Db) -> None:
        self.organizations = SqlOrganizationRepository(db)
        self.accounts = SqlAccountRepository(db)
        self.memberships = SqlMembershipRepository(db)
        self.teams = SqlTeamRepository(db)
        self.invitations = SqlInvitationRepository(db)
        self.conversions = SqlConversionRepository(db)
        self.domains = SqlDomainRepository(db)
        self.domain_challenges = SqlDomainChallengeRepository(db)
        self.rate_limits = SqlRateLimitBuckets(db)
        self.saml_replay = SqlSamlReplayRows(db)
        self.audit = SqlAuditRepository(db)
        self.audit_ledger = SqlAuditLedgerRepository(db)
        self.outbox = SqlOutboxRepository(db)
        self.plans = SqlPlanRepository(db)
        self.scim = SqlScimRepository(db)
        self.saml = SqlSamlLoginRepository(db)
        self.saml_metadata = SqlSamlMetadataRepository(db)


@contextlib.contextmanager
def _transaction_scope(conn: Connection, *, nested: bool) -> Iterator[None]:
    """BEGIN (or SAVEPOINT); COMMIT (or RELEASE) on success, ROLLBACK on exception."""
    try:
        tx = conn.begin_nested() if nested else conn.begin()
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc, "transaction") from exc
    try:
        yield
    except BaseException:
        if tx.is_active:
            # The exception that got us here says what went wrong; a failing rollback
            # (a dropped connection) would only hide it.
            with contextlib.suppress(sa_exc.SQLAlchemyError):
                tx.rollback()
        raise
    try:
        tx.commit()
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc, "transaction") from exc


class SqlStore:
    """A :class:`~nulabpass.ports.Store` on SQLite or PostgreSQL through SQLAlchemy Core.

    ``bind`` is an ``Engine`` (each transaction gets its own connection) or a
    ``Connection`` (transactions join the host's transaction through a SAVEPOINT; see
    the module documentation). SQLite engines must be prepared with
    :func:`configure_sqlite_engine`, or built by :meth:`from_url`.

    The schema is created and upgraded by :meth:`upgrade`, which runs the migrations
    shipped with nulabpass; they record their state in their own version table,
    ``nulabpass_alembic_version``, so they never mix with the host's Alembic history.
    """

    def __init__(self, bind: Engine | Connection) -> None:
        dialect = bind.dialect.name
        if dialect not in _SUPPORTED_DIALECTS:
            raise ConfigurationError(
                f"The SQL store supports SQLite and PostgreSQL, not {dialect}.",
                code="store.unsupported_database",
            )
        if dialect == "sqlite":
            engine = bind if isinstance(bind, Engine) else bind.engine
            if not _sqlite_configured(engine):
                raise ConfigurationError(
                    "This SQLite engine was not prepared for nulabpass: call "
                    "nulabpass.stores.sql.configure_sqlite_engine(engine) right after "
                    "create_engine(), or build the store with SqlStore.from_url().",
                    code="store.sqlite_not_configured",
                )
        self._bind = bind
        self._owned_engine: Engine | None = None
        self._local = threading.local()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        busy_timeout: float = 30.0,
        echo: bool = False,
        sqlite_page_size: int = SQLITE_PAGE_SIZE,
    ) -> SqlStore:
        """Create an engine for ``url`` and a store on it.

        ``sqlite:///path/to/file.db`` (or ``sqlite://`` for a private in-memory database)
        and ``postgresql://user@host/db`` (driven by psycopg 3). SQLite engines are
        prepared by :func:`configure_sqlite_engine` with ``busy_timeout`` seconds and,
        for a database they create, ``sqlite_page_size`` bytes per page.
        Bound parameters are kept out of SQLAlchemy's error messages and logs, since
        they may hold personal data. Call :meth:`dispose` to release the connections.
        """
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        options: dict[str, Any] = {"hide_parameters": True, "echo": echo}
        if parsed.get_backend_name() == "sqlite":
            if _sqlite_is_in_memory(parsed.database):
                # One shared connection: each new connection would open another,
                # empty, in-memory database.
                options["poolclass"] = StaticPool
                options["connect_args"] = {"check_same_thread": False}
            engine = create_engine(parsed, **options)
            configure_sqlite_engine(engine, busy_timeout=busy_timeout, page_size=sqlite_page_size)
        else:
            engine = create_engine(parsed, pool_pre_ping=True, **options)
        store = cls(engine)
        store._owned_engine = engine
        return store

    @property
    def bind(self) -> Engine | Connection:
        """The engine or connection this store runs on."""
        return self._bind

    def dispose(self) -> None:
        """Close the pooled connections of an engine created by :meth:`from_url`.

        An engine the host passed in belongs to the host and is left alone.
        """
        if self._owned_engine is not None:
            self._owned_engine.dispose()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        if isinstance(self._bind, Connection):
            yield self._bind
            return
        try:
            conn = self._bind.connect()
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, "connection") from exc
        with conn:
            yield conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SqlUnitOfWork]:
        """Open a unit of work; commit on normal exit, roll back on exception.

        Nested in another transaction of this store on the same thread, or given a
        host ``Connection`` already in a transaction, it runs in a SAVEPOINT and leaves
        the final COMMIT to whoever owns the outer transaction.
        """
        outer: tuple[Connection, SqlUnitOfWork] | None = getattr(self._local, "active", None)
        if outer is not None:
            conn, uow = outer
            with _transaction_scope(conn, nested=True):
                yield uow
            return
        with self._connection() as conn:
            joins_host = isinstance(self._bind, Connection) and conn.in_transaction()
            with self._unit_of_work(conn, nested=joins_host) as uow:
                yield uow

    @contextlib.contextmanager
    def _unit_of_work(self, conn: Connection, *, nested: bool) -> Iterator[SqlUnitOfWork]:
        """A transaction on ``conn`` and its unit of work, the thread's active one."""
        with _transaction_scope(conn, nested=nested):
            db = Db(conn)
            uow = SqlUnitOfWork(db)
            self._local.active = (conn, uow)
            try:
                yield uow
            finally:
                self._local.active = None
                db.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[SqlUnitOfWork]:
        """Open a unit of work for reads that sees one state of the database throughout,
        without holding up writers (:meth:`~nulabpass.ports.Store.snapshot`).

        PostgreSQL: a ``REPEATABLE READ, READ ONLY`` transaction. SQLite: a deferred
        transaction, which takes no lock (under write-ahead logging, file databases)
        and whose first read fixes what it sees; the connection refuses writes
        meanwhile (``PRAGMA query_only``). Nested in a transaction of this store on the
        same thread, or on a host ``Connection``, it joins that transaction as
        :meth:`transaction` does.
        """
        if getattr(self._local, "active", None) is not None or isinstance(self._bind, Connection):
            with self.transaction() as uow:
                yield uow
            return
        with self._connection() as conn:
            sqlite = conn.dialect.name == "sqlite"
            try:
                if sqlite:
                    # On the driver: through SQLAlchemy it would begin a transaction.
                    _on_sqlite_driver(conn, "PRAGMA query_only = 1")
                    conn.info[_SNAPSHOT] = True
                else:
                    conn.execution_options(
                        isolation_level="REPEATABLE READ", postgresql_readonly=True
                    )
            except sa_exc.SQLAlchemyError as exc:
                raise translate(exc, "transaction") from exc
            try:
                with self._unit_of_work(conn, nested=False) as uow:
                    yield uow
            finally:
                if sqlite:
                    conn.info.pop(_SNAPSHOT, None)
                    try:
                        _on_sqlite_driver(conn, "PRAGMA query_only = 0")
                    except sa_exc.SQLAlchemyError:
                        # A connection that may still refuse writes must not go back
                        # to the pool.
                        conn.invalidate()

    # -- migrations ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _admin_connection(self) -> Iterator[Connection]:
        with self._connection() as conn:
            nested = isinstance(self._bind, Connection) and conn.in_transaction()
            with _transaction_scope(conn, nested=nested):
                yield conn

    def upgrade(self, revision: str = "heads") -> None:
        """Create or upgrade the nulabpass tables by running the packaged migrations.

        Safe to call on every start: an up-to-date database is left alone, and
        concurrent callers wait for each other (PostgreSQL: an advisory lock; SQLite:
        the write lock). With a host ``Connection`` in a transaction, the migration
        runs in a SAVEPOINT and commits with the host's transaction.
        """
        from alembic import command
        from alembic.util import CommandError

        try:
            with self._admin_connection() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                command.upgrade(_alembic_config(conn), revision)
        except CommandError as exc:
            raise ConfigurationError(
                f"The nulabpass migrations could not run to revision {revision!r}: {exc}",
                code="store.migration_failed",
            ) from exc
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, "schema") from exc

    def current_revision(self) -> str | None:
        """The migration revision the database is at (several, comma-separated, while
        feature branches of the migrations have not been merged), or ``None`` before
        :meth:`upgrade`."""
        from alembic.runtime.migration import MigrationContext

        try:
            with self._admin_connection() as conn:
                context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
                heads = context.get_current_heads()
                return ",".join(sorted(heads)) if heads else None
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, "schema") from exc

    @staticmethod
    def head_revision() -> str:
        """The newest migration revision shipped with this release of nulabpass."""
        from alembic.script import ScriptDirectory

        heads = ScriptDirectory.from_config(_alembic_config(None)).get_heads()
        if not heads:  # pragma: no cover - the package always ships a migration
            raise ConfigurationError("No nulabpass migration found.", code="store.migration")
        return ",".join(sorted(heads))


def _alembic_config(conn: Connection | None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    config.attributes["connection"] = conn
    return config


if TYPE_CHECKING:

    def _conforms(store: SqlStore, uow: SqlUnitOfWork) -> tuple[Store, UnitOfWork]:
        """Never called: mypy checks here that the SQL store implements the ports."""
        return store, uow
