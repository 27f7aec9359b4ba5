"""Repositories of the SQL store: one class per port Protocol, on SQLAlchemy Core.

Theory of operation: every repository of a unit of work shares one :class:`Db`, the
transaction's connection wrapped with error translation. Inserts that may hit a unique
constraint use ``INSERT ... ON CONFLICT DO NOTHING`` and report the conflict from the
row count, and updates that may hit one run inside a SAVEPOINT: either way a
:class:`~nulabpass.errors.Conflict` leaves the transaction usable, as it is with the
memory store (PostgreSQL would otherwise abort the whole transaction on the error).
Optimistic updates are ``UPDATE ... WHERE key AND version = :v``; no row updated means
a stale write, or a missing row, which a second lookup tells apart.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Generator, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    ScalarSelect,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.sql import Executable, FromClause
from sqlalchemy.sql.dml import Insert, Update, UpdateBase

from nulabpass.audit._model import (
    GENESIS_HASH,
    AuditQuery,
    ChainRow,
    EventRecord,
    Outcome,
    PersonalDatum,
    Target,
)
from nulabpass.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    NotFound,
    NulabPassError,
    StaleWrite,
)
from nulabpass.org._model import (
    Account,
    AccountStatus,
    ConversionRequest,
    ConversionStatus,
    Domain,
    DomainStatus,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    OrgSettings,
    Role,
    Team,
    TeamMember,
)
from nulabpass.outbox._model import OutboxKind, OutboxMessage
from nulabpass.plans import PlanRecord
from nulabpass.ports import FailureCounter, StoredPlan
from nulabpass.scim._errors import scim_provisioned
from nulabpass.stores.sql import _driver
from nulabpass.stores.sql import schema as s
from nulabpass.stores.sql._errors import ConstraintKind, constraint_kind, translate

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

    AnyRow = Row[*tuple[Any, ...]]
    AnyResult = CursorResult[*tuple[Any, ...]]

__all__ = [
    "Db",
    "SqlAccountRepository",
    "SqlAuditRepository",
    "SqlConversionRepository",
    "SqlDomainRepository",
    "SqlInvitationRepository",
    "SqlMembershipRepository",
    "SqlOrganizationRepository",
    "SqlOutboxRepository",
    "SqlPlanRepository",
    "SqlTeamRepository",
]

#: Bound parameters per ``IN (...)`` list; well under SQLite's and PostgreSQL's limits.
_IN_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


#: Tables whose versioned updates set only the columns that changed (see Db.changed):
#: the rows SCIM rewrites, whose unchanged indexed columns would otherwise cost index
#: writes on every update.
_DIFFED = frozenset({s.accounts.name, s.scim_users.name})
#: ``INSERT ... ON CONFLICT DO NOTHING`` per (table, is PostgreSQL), built once.
_INSERT_IGNORE: dict[tuple[str, bool], Insert] = {}
#: ``UPDATE ... WHERE key AND version = :v`` per (table, key columns), built once; the
#: new values travel as parameters named after their columns (SQLAlchemy's SET clause).
_UPDATE_VERSIONED: dict[tuple[str, tuple[str, ...]], Update] = {}


def _translated(
    exc: sa_exc.SQLAlchemyError,
    resource: str,
    on_unique: NulabPassError | None,
    on_foreign_key: NulabPassError | None,
) -> NulabPassError:
    if isinstance(exc, sa_exc.IntegrityError):
        kind = constraint_kind(exc)
        if kind is ConstraintKind.UNIQUE and on_unique is not None:
            return on_unique
        if kind is ConstraintKind.FOREIGN_KEY and on_foreign_key is not None:
            return on_foreign_key
    return translate(exc, resource)


class Db:
    """The connection of one unit of work, with driver errors translated."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.is_postgres = conn.dialect.name == "postgresql"
        self._open = True
        # SQLite's driver connection, for fetch(); SQLAlchemy's own path costs about
        # three times what SQLite takes to run a one-row look-up.
        self._driver: Any = None
        if conn.dialect.name == "sqlite":
            self._driver = conn.connection.driver_connection
            self._driver_error: type[Exception] = conn.dialect.loaded_dbapi.Error
        #: Whether something watches this connection's statements (read once: a
        #: listener added during a transaction sees the statements of the next one).
        self._watched = _driver.observed(conn)
        #: Organizations whose row this transaction locked with ``organizations.lock``.
        self.locked: set[str] = set()
        #: Rows of the tables in ``_DIFFED`` as this transaction last read or wrote them,
        #: by (table, key values); see :meth:`changed`.
        self._rows: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = {}

    def remember(self, table: Table, key: tuple[Any, ...], values: Mapping[Any, Any]) -> None:
        """Note a whole row of ``table`` as this transaction read it."""
        if table.name in _DIFFED:
            self._rows[table.name, key] = dict(values)

    def changed(
        self, table: Table, key: tuple[Any, ...], version: int, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The columns of ``values`` an update of the row at ``version`` must set: those
        that differ from the row as this transaction read it at that version, or all of
        them when it did not. An indexed column set to its own value still rewrites its
        index entry (on SQLite a page more for the commit to write and sync)."""
        seen = self._rows.get((table.name, key))
        if seen is None or seen.get("version") != version:
            return dict(values)
        return {k: v for k, v in values.items() if k not in seen or seen[k] != v}

    def _wrote(self, stmt: Executable) -> None:
        # Any other write to a table whose rows are remembered may have changed them.
        table = getattr(stmt, "table", None)
        name = getattr(table, "name", None)
        if name in _DIFFED and self._rows:
            for found in [k for k in self._rows if k[0] == name]:
                del self._rows[found]

    def close(self) -> None:
        """Refuse further use: the transaction this connection served has ended."""
        self._open = False

    def _connection(self) -> Connection:
        if not self._open:
            raise ConfigurationError(
                "This unit of work has ended; use the repositories only inside their "
                "store.transaction() block.",
                code="store.transaction_closed",
            )
        return self._conn

    def execute(
        self,
        stmt: Executable,
        resource: str,
        *,
        params: Sequence[Mapping[str, Any]] | None = None,
        on_unique: NulabPassError | None = None,
        on_foreign_key: NulabPassError | None = None,
    ) -> AnyResult:
        """Execute ``stmt``; translate driver errors.

        With ``on_unique`` a unique violation raises ``on_unique`` and leaves the
        transaction usable (on PostgreSQL, by running the statement inside a SAVEPOINT)."""
        conn = self._connection()
        if isinstance(stmt, UpdateBase):
            self._wrote(stmt)
        try:
            # SQLite backs out only the failing statement and keeps the transaction
            # usable, so the SAVEPOINT (two more statements) is for PostgreSQL alone.
            if on_unique is None or not self.is_postgres:
                return conn.execute(stmt, list(params) if params is not None else None)
            with conn.begin_nested():
                return conn.execute(stmt, list(params) if params is not None else None)
        except sa_exc.SQLAlchemyError as exc:
            err = _translated(exc, resource, on_unique, on_foreign_key)
            if err is on_unique:
                raise err from None
            raise err from exc

    def _on_driver(
        self,
        stmt: Executable,
        params: Sequence[Mapping[str, Any]],
        resource: str,
        *,
        writes: bool,
        on_unique: NulabPassError | None = None,
        on_foreign_key: NulabPassError | None = None,
    ) -> tuple[_driver.DriverPlan, Any] | None:
        """Run a statement built once on SQLite's driver connection (see
        :mod:`nulabpass.stores.sql._driver`): the plan and the rows of a query, or the
        rows a write changed; ``None`` when it must go through SQLAlchemy instead."""
        if self._driver is None or not params:
            return None
        conn = self._connection()
        if self._watched:
            return None
        columns = tuple(params[0]) if writes else None
        if columns is not None and any(tuple(p) != columns for p in params[1:]):
            return None
        plan = _driver.plan(stmt, conn.dialect, columns)
        if plan is None:
            return None
        rows = [plan.values(p) for p in params]
        if any(r is None for r in rows):
            return None
        try:
            if not writes:
                return plan, plan.convert(self._driver.execute(plan.sql, rows[0]).fetchall())
            if len(rows) == 1:
                return plan, self._driver.execute(plan.sql, rows[0]).rowcount
            return plan, self._driver.executemany(plan.sql, rows).rowcount
        except self._driver_error as exc:
            wrapped = sa_exc.DBAPIError.instance(
                plan.sql, None, exc, self._driver_error, hide_parameters=True
            )
            if not isinstance(wrapped, sa_exc.SQLAlchemyError):
                raise
            err = _translated(wrapped, resource, on_unique, on_foreign_key)
            if err is on_unique:
                raise err from None
            raise err from wrapped

    def fetch(self, stmt: Executable, resource: str, **params: Any) -> Sequence[Sequence[Any]]:
        """Every row of a query built once with bind parameters, read by position.

        On SQLite the statement, compiled once, runs on the driver's connection when
        nothing watches SQLAlchemy's statements (see :mod:`._driver`)."""
        done = self._on_driver(stmt, [params], resource, writes=False)
        if done is not None:
            rows: Sequence[Sequence[Any]] = done[1]
            return rows
        return self.execute(stmt, resource, params=[params]).all()

    def write(
        self,
        stmt: Executable,
        resource: str,
        params: Sequence[Mapping[str, Any]],
        *,
        on_unique: NulabPassError | None = None,
        on_foreign_key: NulabPassError | None = None,
    ) -> int:
        """Run an ``INSERT``, ``UPDATE`` or ``DELETE`` built once, once per parameter
        set (all with the same names); return the number of rows it changed.

        Errors as :meth:`execute`; on SQLite the statement runs on the driver's
        connection when it can (see :mod:`._driver`)."""
        self._wrote(stmt)
        done = self._on_driver(
            stmt,
            params,
            resource,
            writes=True,
            on_unique=on_unique,
            on_foreign_key=on_foreign_key,
        )
        if done is not None:
            return int(done[1])
        result = self.execute(
            stmt, resource, params=params, on_unique=on_unique, on_foreign_key=on_foreign_key
        )
        return int(result.rowcount)

    def stream(
        self, stmt: Executable, params: Mapping[str, Any], resource: str, batch_size: int
    ) -> Generator[AnyRow, None, None]:
        """Rows of a query fetched ``batch_size`` at a time (PostgreSQL: a server-side
        cursor), so a large result never sits in memory whole."""
        conn = self._connection()
        size = max(batch_size, 1)
        options = {"stream_results": True, "yield_per": size}
        try:
            with conn.execute(stmt.execution_options(**options), dict(params)) as result:
                for partition in result.partitions(size):
                    yield from partition
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, resource) from exc

    def first(self, stmt: Executable, resource: str) -> AnyRow | None:
        """The first row of a query, or ``None``."""
        return self.execute(stmt, resource).first()

    def row(self, stmt: Executable, resource: str, **params: Any) -> AnyRow | None:
        """The first row of a statement built once with bind parameters, or ``None``.

        Hot look-ups keep their statement in a constant and pass the values here:
        building a statement and deriving its cache key cost more than running it."""
        done = self._on_driver(stmt, [params], resource, writes=False)
        if done is not None:
            plan, rows = done
            return _driver.DriverRow(plan.keys, rows[0]) if rows else None  # type: ignore[return-value]
        return self.execute(stmt, resource, params=[params]).first()

    def all(self, stmt: Executable, resource: str) -> Sequence[AnyRow]:
        """Every row of a query."""
        return self.execute(stmt, resource).all()

    def scalar_int(self, stmt: Executable, resource: str) -> int:
        """The integer in the first column of the first row (0 when there is none)."""
        value = self.execute(stmt, resource).scalar()
        return int(value) if value is not None else 0

    def insert_ignore(
        self,
        table: Table,
        values: Mapping[str, Any],
        resource: str,
        *,
        on_foreign_key: NulabPassError | None = None,
    ) -> bool:
        """Insert one row unless it violates a unique constraint; return whether it did.

        ``ON CONFLICT DO NOTHING`` covers every unique constraint of the table and,
        unlike catching the error, does not abort a PostgreSQL transaction. A foreign
        key violation raises ``on_foreign_key`` when given.
        """
        key = (table.name, self.is_postgres)
        stmt = _INSERT_IGNORE.get(key)
        if stmt is None:
            base = postgresql.insert(table) if self.is_postgres else sqlite.insert(table)
            # SQLAlchemy reads rowcount for INSERT only when asked to preserve it.
            stmt = base.on_conflict_do_nothing().execution_options(preserve_rowcount=True)
            _INSERT_IGNORE[key] = stmt
        # The row travels as parameters, not in the statement: one cached statement per
        # table, so SQLAlchemy does not derive a new cache key from every row's values.
        return self.write(stmt, resource, [values], on_foreign_key=on_foreign_key) == 1

    def upsert(
        self, table: Table, values: Mapping[str, Any], keys: Sequence[str], resource: str
    ) -> None:
        """Insert one row, or update the row with the same ``keys`` and bump its version."""
        changes: dict[str, Any] = {k: v for k, v in values.items() if k not in keys}
        changes["version"] = table.c.version + 1
        stmt: Insert
        if self.is_postgres:
            pg = postgresql.insert(table).values({**values, "version": 1})
            stmt = pg.on_conflict_do_update(index_elements=list(keys), set_=changes)
        else:
            lite = sqlite.insert(table).values({**values, "version": 1})
            stmt = lite.on_conflict_do_update(index_elements=list(keys), set_=changes)
        self.execute(stmt, resource)

    def ordered(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """``column`` for ORDER BY in code point order, as Python's ``sorted`` does.

        PostgreSQL sorts text by the database collation, which varies between
        installations; ``COLLATE "C"`` makes every database agree with the memory store.
        """
        return column.collate("C") if self.is_postgres else column

    def update_versioned(
        self,
        table: Table,
        key: Mapping[str, str],
        version: int,
        values: Mapping[str, Any],
        resource: str,
        *,
        on_unique: NulabPassError | None = None,
        on_foreign_key: NulabPassError | None = None,
    ) -> None:
        """``UPDATE ... WHERE key AND version = :version``, raising when nothing matched.

        Raises :class:`NotFound` (``<resource>.not_found``) when the row is gone and
        :class:`StaleWrite` when another writer has moved its version on; a foreign key
        violation raises ``on_foreign_key`` when given.
        """
        row_key = tuple(key.values())
        params = self.changed(
            table, row_key, version, {k: v for k, v in values.items() if k not in key}
        )
        params["version"] = version + 1
        names = tuple(key)
        stmt = _UPDATE_VERSIONED.get((table.name, names))
        if stmt is None:
            stmt = update(table).where(
                *(table.c[name] == bindparam(f"key_{name}") for name in names),
                table.c.version == bindparam("key_version"),
            )
            _UPDATE_VERSIONED[(table.name, names)] = stmt
        params.update({f"key_{name}": value for name, value in key.items()})
        params["key_version"] = version
        changed = self.write(
            stmt, resource, [params], on_unique=on_unique, on_foreign_key=on_foreign_key
        )
        if changed == 1:
            self.remember(table, row_key, {**values, "version": version + 1})
            return
        current = self.first(select(table.c.version).where(_key_clause(table, key)), resource)
        ident = "/".join(key.values())
        if current is None:
            raise NotFound(
                f"The {resource} {ident} no longer exists.",
                code=f"{resource}.not_found",
                details={"resource": resource, "id": ident},
            )
        raise StaleWrite(
            f"The {resource} {ident} was changed by another request (version "
            f"{current._mapping['version']}, this write was based on {version}). "
            "Reload it and try again.",
            details={"resource": resource, "id": ident},
        )


def _key_clause(table: Table, key: Mapping[str, str]) -> ColumnElement[bool]:
    return and_(*(table.c[name] == value for name, value in key.items()))


def _exists(db: Db, table: Table, resource: str, *conditions: ColumnElement[bool]) -> bool:
    return db.first(select(literal(1)).select_from(table).where(*conditions), resource) is not None


def _row_values(entity: Any) -> dict[str, Any]:
    # Enumerations are stored as their values; drivers disagree on how to bind them.
    return {
        name: value.value if isinstance(value, enum.Enum) else value
        for name, value in attrs.asdict(entity, recurse=False).items()
    }


# ---------------------------------------------------------------------------------------
# Organizations


def _org_values(org: Organization) -> dict[str, Any]:
    values = _row_values(org)
    values["settings"] = attrs.asdict(org.settings)
    return values


_SETTINGS_FIELDS = frozenset(f.name for f in attrs.fields(OrgSettings))


def _settings(data: Mapping[str, Any]) -> OrgSettings:
    # Keys written by a newer release are ignored, missing ones take their defaults,
    # so settings can grow without a data migration.
    return OrgSettings(**{k: v for k, v in data.items() if k in _SETTINGS_FIELDS})


def _org(row: AnyRow) -> Organization:
    return _org_from(row._mapping)


def _org_from(m: Mapping[Any, Any]) -> Organization:
    return Organization(
        id=m["id"],
        name=m["name"],
        settings=_settings(m["settings"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        saml_configured_at=m["saml_configured_at"],
        version=m["version"],
    )


class SqlOrganizationRepository:
    """Organizations (:class:`~nulabpass.ports.OrganizationRepository`)."""

    _t = s.organizations
    _by_id = select(_t).where(_t.c.id == bindparam("id"))
    _by_id_for_update = _by_id.with_for_update()

    def __init__(self, db: Db) -> None:
        self._db = db

    def get(self, org_id: str) -> Organization | None:
        """Return the organization or ``None``."""
        row = self._db.row(self._by_id, "organization", id=org_id)
        return _org(row) if row is not None else None

    def lock(self, org_id: str) -> Organization | None:
        """Return the organization and hold its write lock until the transaction ends.

        PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite: the transaction began with
        ``BEGIN IMMEDIATE`` and already holds the database's single write lock.
        """
        stmt = self._by_id_for_update if self._db.is_postgres else self._by_id
        row = self._db.row(stmt, "organization", id=org_id)
        if row is None:
            return None
        # The audit chain of a locked organization needs no lock of its own.
        self._db.locked.add(org_id)
        return _org(row)

    def add(self, org: Organization) -> None:
        """Insert; raises ``Conflict`` (``organization.exists``) for a duplicate id."""
        if not self._db.insert_ignore(self._t, _org_values(org), "organization"):
            raise Conflict(f"Organization {org.id} already exists.", code="organization.exists")

    def update(self, org: Organization) -> Organization:
        """Write ``org`` if its version is current; return it with the next version."""
        self._db.update_versioned(
            self._t, {"id": org.id}, org.version, _org_values(org), "organization"
        )
        return attrs.evolve(org, version=org.version + 1)


# ---------------------------------------------------------------------------------------
# Accounts


def _account(row: AnyRow) -> Account:
    return _account_from(row._mapping)


#: The accounts table's column names, in the order ``select(accounts)`` returns them.
_ACCOUNT_NAMES = tuple(c.name for c in s.accounts.columns)


def _account_at(row: Sequence[Any]) -> Account:
    """The account in the first columns of a row read by position."""
    return _account_from(dict(zip(_ACCOUNT_NAMES, row, strict=False)))


def _account_from(m: Mapping[Any, Any]) -> Account:
    return Account(
        id=m["id"],
        email=m["email"],
        display_name=m["display_name"],
        language=m["language"],
        timezone=m["timezone"],
        status=AccountStatus(m["status"]),
        managed_by=m["managed_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        version=m["version"],
    )


def _email_taken() -> Conflict:
    return Conflict("Another account already uses this email address.", code="account.email_taken")


class SqlAccountRepository:
    """Accounts (:class:`~nulabpass.ports.AccountRepository`)."""

    _t = s.accounts
    _by_id = select(_t).where(_t.c.id == bindparam("id"))
    _by_email = select(_t).where(_t.c.email == bindparam("email"))

    def __init__(self, db: Db) -> None:
        self._db = db

    def get(self, account_id: str) -> Account | None:
        """Return the account or ``None``."""
        return self._remembered(self._db.row(self._by_id, "account", id=account_id))

    def get_by_email(self, email: str) -> Account | None:
        """Return the account with this normalised email or ``None``."""
        return self._remembered(self._db.row(self._by_email, "account", email=email))

    def _remembered(self, row: AnyRow | None) -> Account | None:
        if row is None:
            return None
        values = row._mapping
        self._db.remember(self._t, (values["id"],), values)
        return _account_from(values)

    def add(self, account: Account) -> None:
        """Insert; raises ``Conflict`` (``account.email_taken``, ``account.exists``)."""
        if self._db.insert_ignore(self._t, _row_values(account), "account"):
            return
        if _exists(self._db, self._t, "account", self._t.c.email == account.email):
            raise _email_taken()
        raise Conflict(f"Account {account.id} already exists.", code="account.exists")

    def update(self, account: Account) -> Account:
        """Write with a version check; return the account with the next version.

        Raises ``Conflict`` (``account.scim_provisioned``) when the write changes who
        manages an account that still has SCIM attributes.
        """
        self._db.update_versioned(
            self._t,
            {"id": account.id},
            account.version,
            _row_values(account),
            "account",
            on_unique=_email_taken(),
            on_foreign_key=scim_provisioned(account.id),
        )
        return attrs.evolve(account, version=account.version + 1)

    def delete(self, account_id: str) -> None:
        """Remove the account row (memberships must already be gone).

        Raises ``Conflict`` (``account.in_use``) while memberships, team memberships,
        invitations, conversion requests or SCIM attributes still refer to it.
        """
        self._db.execute(
            delete(self._t).where(self._t.c.id == account_id),
            "account",
            on_foreign_key=Conflict(
                f"Account {account_id} still has memberships, team memberships, "
                "invitations, conversion requests or SCIM attributes; remove them before "
                "the account.",
                code="account.in_use",
            ),
        )

    def count_managed(self, org_id: str) -> int:
        """How many accounts ``org_id`` manages (any status)."""
        stmt = select(func.count()).select_from(self._t).where(self._t.c.managed_by == org_id)
        return self._db.scalar_int(stmt, "account")

    def list_managed(self, org_id: str) -> list[Account]:
        """Accounts managed by ``org_id``, ordered by id."""
        stmt = (
            select(self._t)
            .where(self._t.c.managed_by == org_id)
            .order_by(self._db.ordered(self._t.c.id))
        )
        return [_account(row) for row in self._db.all(stmt, "account")]


# ---------------------------------------------------------------------------------------
# Memberships


def _membership(row: AnyRow) -> Membership:
    m = row._mapping
    return Membership(
        org_id=m["org_id"],
        account_id=m["account_id"],
        role=Role(m["role"]),
        plan_admin=bool(m["plan_admin"]),
        audit_log_admin=bool(m["audit_log_admin"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        version=m["version"],
    )


def _break_glass_count(*, require_admin: bool) -> Select[Any]:
    m, a = s.memberships, s.accounts

    def privileged(*conditions: ColumnElement[bool]) -> ScalarSelect[Any]:
        return (
            select(func.count())
            .select_from(m.join(a, a.c.id == m.c.account_id))
            .where(
                m.c.org_id == bindparam("org_id"),
                *conditions,
                a.c.status == AccountStatus.ACTIVE.value,
                a.c.managed_by.is_(None),
            )
            .scalar_subquery()
        )

    # Each part seeks the (org_id, role, plan_admin) index to the privileged members
    # alone: an OR of the two conditions would make the planner walk every member of
    # the organization (0.7 ms at 10,000 managed members on SQLite).
    admins = privileged(m.c.role == Role.ADMIN.value)
    if require_admin:
        return select(admins)
    others = or_(*(m.c.role == role.value for role in Role if role is not Role.ADMIN))
    return select(admins + privileged(others, m.c.plan_admin == true()))


#: The break-glass count runs after every change, so its two statements (keyed by
#: ``require_admin``) are built once.
_BREAK_GLASS = {flag: _break_glass_count(require_admin=flag) for flag in (False, True)}


class SqlMembershipRepository:
    """Memberships (:class:`~nulabpass.ports.MembershipRepository`)."""

    _t = s.memberships
    _by_key = select(_t).where(
        _t.c.org_id == bindparam("org_id"), _t.c.account_id == bindparam("account_id")
    )

    def __init__(self, db: Db) -> None:
        self._db = db

    def _key(self, org_id: str, account_id: str) -> ColumnElement[bool]:
        return and_(self._t.c.org_id == org_id, self._t.c.account_id == account_id)

    def get(self, org_id: str, account_id: str) -> Membership | None:
        """Return the membership or ``None``."""
        row = self._db.row(self._by_key, "membership", org_id=org_id, account_id=account_id)
        return _membership(row) if row is not None else None

    def add(self, membership: Membership) -> None:
        """Insert; raises ``Conflict`` (``membership.exists``) if it exists."""
        if not self._db.insert_ignore(self._t, _row_values(membership), "membership"):
            raise Conflict(
                f"Account {membership.account_id} is already a member of organization "
                f"{membership.org_id}.",
                code="membership.exists",
            )

    def update(self, membership: Membership) -> Membership:
        """Write with a version check; return it with the next version."""
        self._db.update_versioned(
            self._t,
            {"org_id": membership.org_id, "account_id": membership.account_id},
            membership.version,
            _row_values(membership),
            "membership",
        )
        return attrs.evolve(membership, version=membership.version + 1)

    def delete(self, org_id: str, account_id: str) -> None:
        """Remove the membership if present."""
        self._db.execute(delete(self._t).where(self._key(org_id, account_id)), "membership")

    def list_for_org(self, org_id: str) -> list[Membership]:
        """Memberships of one organization, ordered by account id."""
        stmt = (
            select(self._t)
            .where(self._t.c.org_id == org_id)
            .order_by(self._db.ordered(self._t.c.account_id))
        )
        return [_membership(row) for row in self._db.all(stmt, "membership")]

    def list_for_account(self, account_id: str) -> list[Membership]:
        """Memberships of one account, ordered by organization id."""
        stmt = (
            select(self._t)
            .where(self._t.c.account_id == account_id)
            .order_by(self._db.ordered(self._t.c.org_id))
        )
        return [_membership(row) for row in self._db.all(stmt, "membership")]

    def count_break_glass(self, org_id: str, *, require_admin: bool) -> int:
        """Count active non-managed members who are admins (or plan admins, unless
        ``require_admin``), in one query joining accounts."""
        found = self._db.row(_BREAK_GLASS[require_admin], "membership", org_id=org_id)
        return int(found[0]) if found is not None else 0


# ---------------------------------------------------------------------------------------
# Teams


def _team_values(team: Team) -> dict[str, Any]:
    values = _row_values(team)
    values["name_key"] = team.name.casefold()
    return values


def _team(row: AnyRow) -> Team:
    return _team_from(row._mapping)


#: The teams table's column names, in the order ``select(teams)`` returns them.
_TEAM_NAMES = tuple(c.name for c in s.teams.columns)


def _team_at(row: Sequence[Any]) -> Team:
    """The team in the first columns of a row read by position."""
    return _team_from(dict(zip(_TEAM_NAMES, row, strict=False)))


def _team_from(m: Mapping[Any, Any]) -> Team:
    return Team(
        id=m["id"],
        org_id=m["org_id"],
        name=m["name"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        version=m["version"],
    )


def _team_member(row: AnyRow) -> TeamMember:
    m = row._mapping
    return TeamMember(team_id=m["team_id"], account_id=m["account_id"], added_at=m["added_at"])


def _name_taken(name: str) -> Conflict:
    return Conflict(f"The organization already has a team named {name!r}.", code="team.name_taken")


class SqlTeamRepository:
    """Teams and their members (:class:`~nulabpass.ports.TeamRepository`)."""

    _t = s.teams
    _m = s.team_members
    _by_id = select(_t).where(_t.c.id == bindparam("id"))

    def __init__(self, db: Db) -> None:
        self._db = db

    def get(self, team_id: str) -> Team | None:
        """Return the team or ``None``."""
        row = self._db.row(self._by_id, "team", id=team_id)
        return _team(row) if row is not None else None

    def get_by_name(self, org_id: str, name: str) -> Team | None:
        """Return the team of ``org_id`` whose name equals ``name`` case-insensitively."""
        stmt = select(self._t).where(
            self._t.c.org_id == org_id, self._t.c.name_key == name.casefold()
        )
        row = self._db.first(stmt, "team")
        return _team(row) if row is not None else None

    def list_for_org(self, org_id: str) -> list[Team]:
        """Teams of one organization, ordered by name (case-insensitively), then id."""
        stmt = (
            select(self._t)
            .where(self._t.c.org_id == org_id)
            .order_by(self._db.ordered(self._t.c.name_key), self._db.ordered(self._t.c.id))
        )
        return [_team(row) for row in self._db.all(stmt, "team")]

    def add(self, team: Team) -> None:
        """Insert; raises ``Conflict`` (``team.name_taken``, ``team.exists``)."""
        if self._db.insert_ignore(self._t, _team_values(team), "team"):
            return
        if self.get_by_name(team.org_id, team.name) is not None:
            raise _name_taken(team.name)
        raise Conflict(f"Team {team.id} already exists.", code="team.exists")

    def update(self, team: Team) -> Team:
        """Write with a version check; return it with the next version."""
        self._db.update_versioned(
            self._t,
            {"id": team.id},
            team.version,
            _team_values(team),
            "team",
            on_unique=_name_taken(team.name),
        )
        return attrs.evolve(team, version=team.version + 1)

    def delete(self, team_id: str) -> None:
        """Remove the team and all its memberships."""
        self._db.execute(delete(self._m).where(self._m.c.team_id == team_id), "team")
        self._db.execute(delete(self._t).where(self._t.c.id == team_id), "team")

    def add_member(self, member: TeamMember) -> None:
        """Insert one team membership; raises ``Conflict`` (``team.member_exists``)."""
        if not self._db.insert_ignore(self._m, attrs.asdict(member), "team member"):
            raise Conflict(
                f"Account {member.account_id} is already in team {member.team_id}.",
                code="team.member_exists",
            )

    def _member_key(self, team_id: str, account_id: str) -> ColumnElement[bool]:
        return and_(self._m.c.team_id == team_id, self._m.c.account_id == account_id)

    def remove_member(self, team_id: str, account_id: str) -> bool:
        """Remove one team membership; return whether it existed."""
        stmt = delete(self._m).where(self._member_key(team_id, account_id))
        return self._db.execute(stmt, "team member").rowcount > 0

    def is_member(self, team_id: str, account_id: str) -> bool:
        """Whether the account is in the team."""
        return _exists(self._db, self._m, "team member", self._member_key(team_id, account_id))

    def list_members(self, team_id: str) -> list[TeamMember]:
        """Members of one team, ordered by account id."""
        stmt = (
            select(self._m)
            .where(self._m.c.team_id == team_id)
            .order_by(self._db.ordered(self._m.c.account_id))
        )
        return [_team_member(row) for row in self._db.all(stmt, "team member")]

    def remove_account(self, org_id: str, account_id: str) -> int:
        """Remove the account from every team of ``org_id``; return how many."""
        teams_of_org = select(self._t.c.id).where(self._t.c.org_id == org_id)
        stmt = delete(self._m).where(
            self._m.c.account_id == account_id, self._m.c.team_id.in_(teams_of_org)
        )
        return self._db.execute(stmt, "team member").rowcount


# ---------------------------------------------------------------------------------------
# Invitations and conversion requests


def _invitation(row: AnyRow) -> Invitation:
    m = row._mapping
    return Invitation(
        id=m["id"],
        org_id=m["org_id"],
        account_id=m["account_id"],
        team_id=m["team_id"],
        token_hash=m["token_hash"],
        nonce=m["nonce"],
        status=InvitationStatus(m["status"]),
        expires_at=m["expires_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        version=m["version"],
    )


class SqlInvitationRepository:
    """Invitations (:class:`~nulabpass.ports.InvitationRepository`)."""

    _t = s.invitations

    def __init__(self, db: Db) -> None:
        self._db = db

    def get(self, invitation_id: str) -> Invitation | None:
        """Return the invitation or ``None``."""
        row = self._db.first(select(self._t).where(self._t.c.id == invitation_id), "invitation")
        return _invitation(row) if row is not None else None

    def pending_for_account(self, account_id: str) -> Invitation | None:
        """The pending invitation of an account (the newest if several), if any."""
        stmt = (
            select(self._t)
            .where(
                self._t.c.account_id == account_id,
                self._t.c.status == InvitationStatus.PENDING.value,
            )
            .order_by(self._t.c.created_at.desc(), self._db.ordered(self._t.c.id).desc())
            .limit(1)
        )
        row = self._db.first(stmt, "invitation")
        return _invitation(row) if row is not None else None

    def add(self, invitation: Invitation) -> None:
        """Insert; raises ``Conflict`` (``invitation.exists``) for a duplicate id."""
        if not self._db.insert_ignore(self._t, _row_values(invitation), "invitation"):
            raise Conflict(f"Invitation {invitation.id} already exists.", code="invitation.exists")

    def update(self, invitation: Invitation) -> Invitation:
        """Write with a version check; return it with the next version."""
        self._db.update_versioned(
            self._t,
            {"id": invitation.id},
            invitation.version,
            _row_values(invitation),
            "invitation",
        )
        return attrs.evolve(invitation, version=invitation.version + 1)

    def delete_for_account(self, account_id: str) -> None:
        """Remove every invitation of an account."""
        self._db.execute(delete(self._t).where(self._t.c.account_id == account_id), "invitation")


def _conversion(row: AnyRow) -> ConversionRequest:
    m = row._mapping
    return ConversionRequest(
        id=m["id"],
        org_id=m["org_id"],
        account_id=m["account_id"],
        token_hash=m["token_hash"],
        nonce=m["nonce"],
        status=ConversionStatus(m["status"]),
        expires_at=m["expires_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        version=m["version"],
    )


class SqlConversionRepository:
    """Conversion requests (:class:`~nulabpass.ports.ConversionRepository`)."""

    _t = s.conversions

    def __init__(self, db: Db) -> None:
        self._db = db

    def get(self, request_id: str) -> ConversionRequest | None:
        """Return the request or ``None``."""
        row = self._db.first(select(self._t).where(self._t.c.id == request_id), "conversion")
        return _conversion(row) if row is not None else None

    def pending(self, org_id: str, account_id: str) -> ConversionRequest | None:
        """The pending request of ``org_id`` for ``account_id`` (the newest), if any."""
        stmt = (
            select(self._t)
            .where(
                self._t.c.org_id == org_id,
                self._t.c.account_id == account_id,
                self._t.c.status == ConversionStatus.PENDING.value,
            )
            .order_by(self._t.c.created_at.desc(), self._db.ordered(self._t.c.id).desc())
            .limit(1)
        )
        row = self._db.first(stmt, "conversion")
        return _conversion(row) if row is not None else None

    def add(self, request: ConversionRequest) -> None:
        """Insert; raises ``Conflict`` (``conversion.exists``) for a duplicate id."""
        if not self._db.insert_ignore(self._t, _row_values(request), "conversion"):
            raise Conflict(
                f"Conversion request {request.id} already exists.", code="conversion.exists"
            )

    def update(self, request: ConversionRequest) -> ConversionRequest:
        """Write with a version check; return it with the next version."""
        self._db.update_versioned(
            self._t, {"id": request.id}, request.version, _row_values(request), "conversion"
        )
        return attrs.evolve(request, version=request.version + 1)

    def delete_for_account(self, account_id: str) -> None:
        """Remove every request about an account."""
        self._db.execute(delete(self._t).where(self._t.c.account_id == account_id), "conversion")


# ---------------------------------------------------------------------------------------
# Domains


def _domain(row: AnyRow) -> Domain:
    return _domain_from(row._mapping)


def _domain_from(m: Mapping[Any, Any]) -> Domain:
    return Domain(
        id=m["id"],
        org_id=m["org_id"],
        name=m["name"],
        status=DomainStatus(m["status"]),
        include_subdomains=bool(m["include_subdomains"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        verified_at=m["verified_at"],
        version=m["version"],
    )


def _domain_exists(name: str) -> Conflict:
    return Conflict(f"The organization already has the domain {name}.", code="domain.exists")


class SqlDomainRepository:
    """Email domains (:class:`~nulabpass.ports.DomainRepository`)."""

    _t = s.domains
    #: ``list_for_org`` per dialect: PostgreSQL orders in code point order (``Db.ordered``).
    _of_org = {
        postgres: select(s.domains)
        .where(s.domains.c.org_id == bindparam("org_id"))
        .order_by(s.domains.c.name.collate("C") if postgres else s.domains.c.name)
        for postgres in (False, True)
    }

    def __init__(self, db: Db) -> None:
        self._db = db

    def get(self, org_id: str, name: str) -> Domain | None:
        """Return ``org_id``'s record for the (normalised) domain ``name``."""
        stmt = select(self._t).where(self._t.c.org_id == org_id, self._t.c.name == name)
        row = self._db.first(stmt, "domain")
        return _domain(row) if row is not None else None

    def list_for_org(self, org_id: str) -> list[Domain]:
        """Domain records of one organization, ordered by name."""
        stmt = self._of_org[self._db.is_postgres]
        rows = self._db.execute(stmt, "domain", params=[{"org_id": org_id}]).all()
        return [_domain(row) for row in rows]

    def add(self, domain: Domain) -> None:
        """Insert; raises ``Conflict`` (``domain.exists``) when the organization already
        has this domain (or a record with this id exists)."""
        if not self._db.insert_ignore(self._t, _row_values(domain), "domain"):
            raise _domain_exists(domain.name)

    def update(self, domain: Domain) -> Domain:
        """Write with a version check; return it with the next version."""
        self._db.update_versioned(
            self._t,
            {"id": domain.id},
            domain.version,
            _row_values(domain),
            "domain",
            on_unique=_domain_exists(domain.name),
        )
        return attrs.evolve(domain, version=domain.version + 1)

    def delete(self, org_id: str, name: str) -> None:
        """Remove ``org_id``'s record of ``name`` (its challenge must already be gone)."""
        self._db.execute(
            delete(self._t).where(self._t.c.org_id == org_id, self._t.c.name == name), "domain"
        )


# ---------------------------------------------------------------------------------------
# Audit


def _event_values(event: EventRecord) -> dict[str, Any]:
    return {
        "id": event.id,
        "scope": event.scope,
        "seq": event.seq,
        "occurred_at": event.occurred_at,
        "action": event.action,
        "category": event.category,
        "outcome": event.outcome.value,
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "context": dict(event.context),
        "metadata": dict(event.metadata),
        "commitments": dict(event.commitments),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _event(row: AnyRow, targets: tuple[Target, ...]) -> EventRecord:
    m = row._mapping
    return EventRecord(
        id=m["id"],
        scope=m["scope"],
        seq=m["seq"],
        occurred_at=m["occurred_at"],
        action=m["action"],
        category=m["category"],
        outcome=Outcome(m["outcome"]),
        actor_type=m["actor_type"],
        actor_id=m["actor_id"],
        targets=targets,
        context=dict(m["context"]),
        metadata=dict(m["metadata"]),
        commitments=dict(m["commitments"]),
        prev_hash=m["prev_hash"],
        hash=m["hash"],
    )


def _datum(row: AnyRow) -> PersonalDatum:
    m = row._mapping
    return PersonalDatum(
        event_id=m["event_id"],
        slot=m["slot"],
        subject_id=m["subject_id"],
        salt=m["salt"],
        value=m["value"],
    )


def _chain_conflict(event: EventRecord) -> Conflict:
    return Conflict(
        f"The audit chain of scope {event.scope} moved: event {event.seq} does not follow "
        "its current head. Another writer extended the chain; retry the operation.",
        code="audit.chain_conflict",
        details={"scope": event.scope, "seq": str(event.seq)},
    )


# Statements of the audit hot paths, built once: building a statement costs more Python
# time than SQLAlchemy's compiled cache then saves (every value is a bound parameter).
_ae, _at, _ap = s.audit_events, s.audit_targets, s.audit_personal
_SCOPE = bindparam("scope", type_=String())
_AFTER = bindparam("after", type_=BigInteger())
_HEAD = select(_ae.c.seq, _ae.c.hash).where(_ae.c.scope == _SCOPE).order_by(_ae.c.seq.desc())
_HEAD = _HEAD.limit(1)
_ADVISORY_LOCK = select(
    func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key", type_=String()), 0))
)
_PREV_EXISTS = select(literal(1)).where(
    _ae.c.scope == _SCOPE, _ae.c.seq == bindparam("prev", type_=BigInteger())
)
_INSERT_TARGETS = insert(_at)
_INSERT_PERSONAL = insert(_ap)


def _pg_append() -> Select[Any]:
    # One statement, one round trip: the event is inserted in a data-modifying CTE
    # (``ON CONFLICT DO NOTHING``, so a taken seq or id leaves the transaction usable),
    # and the targets and personal data are inserted from it, one row per element of
    # the array parameters (none when the event was not inserted). The foreign keys
    # are checked at the end of the statement, when the event row exists. The result
    # is the number of events inserted, 1 or 0. The statement has one shape whatever
    # the number of targets and data, so it compiles once.
    event = postgresql.insert(_ae).values(
        {c.name: bindparam(f"e_{c.name}", type_=c.type) for c in _ae.columns}
    )
    ev = event.on_conflict_do_nothing().returning(_ae.c.id, _ae.c.scope).cte("ev")

    def rows(prefix: str, table: Table, names: Sequence[str]) -> Select[Any]:
        arrays = [
            bindparam(f"{prefix}_{n}", type_=postgresql.ARRAY(table.c[n].type)) for n in names
        ]
        elements = func.unnest(*arrays).table_valued(*names).render_derived()
        return (
            select(ev.c.id, *(elements.c[n] for n in names)).select_from(ev).join(elements, true())
        )

    target_names = ("position", "type", "target_id")
    targets = insert(_at).from_select(
        ["event_id", *target_names, "scope"],
        rows("t", _at, target_names).add_columns(ev.c.scope),
    )
    personal_names = ("slot", "subject_id", "salt", "value")
    personal = insert(_ap).from_select(
        ["event_id", *personal_names, "version"],
        rows("p", _ap, personal_names).add_columns(literal_column("1", Integer())),
    )
    return select(func.count()).select_from(ev).add_cte(targets.cte("tg"), personal.cte("pd"))


_PG_APPEND = _pg_append()


def _docs_text() -> ColumnElement[str]:
    # The three JSON documents of an event as one JSON array: one parse per event.
    parts: list[ColumnElement[str]] = [
        cast(_ae.c.context, Text()),
        cast(_ae.c.metadata, Text()),
        cast(_ae.c.commitments, Text()),
    ]
    text_: ColumnElement[str] = literal_column("'['", Text())
    for index, part in enumerate(parts):
        text_ = text_ + (part if index == 0 else literal_column("','", Text()) + part)
    return (text_ + literal_column("']'", Text())).label("docs")


_chain_scope = (_ae.c.scope == _SCOPE, _ae.c.seq > _AFTER)
# Verification reads these three ordered streams and merges them by seq: no per-event
# queries, no type processing beyond what the driver does (the time arrives as the
# driver gives it: SQLite's stored text, PostgreSQL's datetime).
_CHAIN_EVENTS = (
    select(
        _ae.c.seq,
        _ae.c.id,
        type_coerce(_ae.c.occurred_at, String()).label("occurred_at"),
        _ae.c.action,
        _ae.c.category,
        _ae.c.outcome,
        _ae.c.actor_type,
        _ae.c.actor_id,
        _docs_text(),
        _ae.c.prev_hash,
        _ae.c.hash,
    )
    .where(*_chain_scope)
    .order_by(_ae.c.seq)
)
_CHAIN_TARGETS = (
    select(_ae.c.seq, _at.c.type, _at.c.target_id)
    .select_from(_at.join(_ae, _ae.c.id == _at.c.event_id))
    .where(*_chain_scope)
    .order_by(_ae.c.seq, _at.c.position)
)


def _chain_personal(slot: ColumnElement[str]) -> Select[Any]:
    return (
        select(_ae.c.seq, _ap.c.slot, _ap.c.salt, _ap.c.value)
        .select_from(_ap.join(_ae, _ae.c.id == _ap.c.event_id))
        .where(*_chain_scope)
        .order_by(_ae.c.seq, slot)
    )


# Slots in code point order, as the memory store sorts them (see ``Db.ordered``).
_CHAIN_PERSONAL = {
    False: _chain_personal(_ap.c.slot),
    True: _chain_personal(_ap.c.slot.collate("C")),
}


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        # SQLite keeps naive UTC text (see ``schema.TZDateTime``).
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


def _merge_chain(
    events: Iterator[AnyRow], targets: Iterator[AnyRow], personal: Iterator[AnyRow]
) -> Iterator[ChainRow]:
    loads = json.loads
    no_targets: tuple[tuple[str, str], ...] = ()
    no_personal: tuple[tuple[str, str | None, str | None], ...] = ()
    t = next(targets, None)
    p = next(personal, None)
    for seq, id_, occurred_at, action, category, outcome, a_type, a_id, docs, prev, h in events:
        # Child rows of events this stream does not hold (none, unless rows changed
        # between the streams' snapshots) are skipped, never attached to the wrong one.
        while t is not None and t[0] < seq:
            t = next(targets, None)
        found_t = no_targets
        if t is not None and t[0] == seq:
            pairs = []
            while t is not None and t[0] == seq:
                pairs.append((t[1], t[2]))
                t = next(targets, None)
            found_t = tuple(pairs)
        while p is not None and p[0] < seq:
            p = next(personal, None)
        found_p = no_personal
        if p is not None and p[0] == seq:
            triples = []
            while p is not None and p[0] == seq:
                triples.append((p[1], p[2], p[3]))
                p = next(personal, None)
            found_p = tuple(triples)
        context, metadata, commitments = loads(docs)
        yield (
            seq,
            id_,
            _utc(occurred_at),
            action,
            category,
            outcome,
            a_type,
            a_id,
            found_t,
            context,
            metadata,
            commitments,
            prev,
            h,
            found_p,
        )


class SqlAuditRepository:
    """Audit chains (:class:`~nulabpass.ports.AuditRepository`)."""

    _e = s.audit_events
    _tg = s.audit_targets
    _p = s.audit_personal
    _fc = s.audit_failure_counters

    def __init__(self, db: Db) -> None:
        self._db = db
        # The head each scope had when ``head`` last read it in this transaction; an
        # append that follows it needs no second look at the chain.
        self._heads: dict[str, int] = {}

    def head(self, scope: str) -> tuple[int, str]:
        """Return ``(seq, hash)`` of the last event of ``scope`` or ``(0, GENESIS)``.

        On PostgreSQL, unless this transaction holds the organization's row lock
        (``organizations.lock``), this first takes a transaction-scoped advisory lock on
        the scope, so the head cannot move until the transaction ends even for a scope
        with no organization row to lock (``"host"``): concurrent writers of one chain
        queue up instead of failing with ``audit.chain_conflict``. The lock is taken in
        its own statement so that the head is read after it is granted.
        """
        if self._db.is_postgres and scope not in self._db.locked:
            key = {"key": "nulabpass.audit:" + scope}
            self._db.execute(_ADVISORY_LOCK, "audit event", params=[key])
        rows = self._db.fetch(_HEAD, "audit event", scope=scope)
        seq, hash_ = (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS_HASH)
        self._heads[scope] = seq
        return seq, hash_

    def append(self, event: EventRecord, personal: Sequence[PersonalDatum]) -> None:
        """Insert one event, its targets and its personal data.

        Raises ``Conflict`` (``audit.chain_conflict``) unless ``event.seq`` directly
        follows the stored head of its scope: a duplicate ``(scope, seq)`` or a gap.
        """
        if any(d.event_id != event.id for d in personal):
            raise InvalidInput(
                "Every personal datum appended with an event must name that event.",
                code="audit.datum_event_mismatch",
            )
        # A head read by this transaction, with the chain locked, still stands: only the
        # unique (scope, seq) can then refuse the event. Used once, so an append inside
        # a savepoint that rolled back cannot vouch for the next one.
        known = self._heads.pop(event.scope, None)
        if event.seq < 1 or (
            event.seq > 1
            and known != event.seq - 1
            and not self._db.fetch(
                _PREV_EXISTS, "audit event", scope=event.scope, prev=event.seq - 1
            )
        ):
            raise _chain_conflict(event)
        if self._db.is_postgres:
            inserted = self._append_in_one_statement(event, personal)
        else:
            inserted = self._db.insert_ignore(self._e, _event_values(event), "audit event")
        if not inserted:
            if _exists(self._db, self._e, "audit event", self._e.c.id == event.id) and not (
                _exists(
                    self._db,
                    self._e,
                    "audit event",
                    self._e.c.scope == event.scope,
                    self._e.c.seq == event.seq,
                )
            ):
                raise Conflict(
                    f"Audit event {event.id} already exists.", code="audit.event_exists"
                )
            raise _chain_conflict(event)
        if self._db.is_postgres:
            return
        if event.targets:
            self._db.write(
                _INSERT_TARGETS,
                "audit event",
                [
                    {
                        "event_id": event.id,
                        "scope": event.scope,
                        "position": position,
                        "type": target.type,
                        "target_id": target.id,
                    }
                    for position, target in enumerate(event.targets)
                ],
            )
        if personal:
            self._db.write(
                _INSERT_PERSONAL,
                "audit event",
                [
                    {
                        "event_id": d.event_id,
                        "slot": d.slot,
                        "subject_id": d.subject_id,
                        "salt": d.salt,
                        "value": d.value,
                        "version": 1,
                    }
                    for d in personal
                ],
            )

    def _append_in_one_statement(
        self, event: EventRecord, personal: Sequence[PersonalDatum]
    ) -> bool:
        # PostgreSQL: the event, its targets and its personal data in one round trip
        # (see ``_PG_APPEND``); whether the event row went in, as ``insert_ignore`` says.
        params: dict[str, Any] = {f"e_{k}": v for k, v in _event_values(event).items()}
        params["t_position"] = list(range(len(event.targets)))
        params["t_type"] = [target.type for target in event.targets]
        params["t_target_id"] = [target.id for target in event.targets]
        params["p_slot"] = [d.slot for d in personal]
        params["p_subject_id"] = [d.subject_id for d in personal]
        params["p_salt"] = [d.salt for d in personal]
        params["p_value"] = [d.value for d in personal]
        result = self._db.execute(_PG_APPEND, "audit event", params=[params])
        return bool(result.scalar())

    def chain_rows(
        self, scope: str, *, after_seq: int = 0, batch_size: int = 5000
    ) -> Iterator[ChainRow]:
        """Every event of ``scope`` after ``after_seq`` with its targets and personal
        data, in ``seq`` order, as plain tuples (see :data:`ChainRow`).

        Three ordered streams (events, targets, personal data), merged by ``seq``.
        Consume it inside the transaction that created it.
        """
        params = {"scope": scope, "after": after_seq}
        db = self._db
        events = db.stream(_CHAIN_EVENTS, params, "audit event", batch_size)
        targets = db.stream(_CHAIN_TARGETS, params, "audit event", batch_size)
        personal = db.stream(
            _CHAIN_PERSONAL[db.is_postgres], params, "audit personal datum", batch_size
        )
        try:
            yield from _merge_chain(events, targets, personal)
        finally:
            events.close()
            targets.close()
            personal.close()

    def _with_targets(self, rows: Sequence[AnyRow]) -> list[EventRecord]:
        ids = [str(row._mapping["id"]) for row in rows]
        targets: dict[str, list[Target]] = {}
        for chunk in _chunks(ids):
            stmt = (
                select(self._tg.c.event_id, self._tg.c.type, self._tg.c.target_id)
                .where(self._tg.c.event_id.in_(chunk))
                .order_by(self._tg.c.event_id, self._tg.c.position)
            )
            for t in self._db.all(stmt, "audit event"):
                tm = t._mapping
                targets.setdefault(tm["event_id"], []).append(
                    Target(type=tm["type"], id=tm["target_id"])
                )
        return [
            _event(row, tuple(targets.get(eid, ()))) for row, eid in zip(rows, ids, strict=True)
        ]

    def query(self, query: AuditQuery) -> list[EventRecord]:
        """Events of ``query.scope`` matching the filters, at most ``query.limit``.

        Every filter is compiled into SQL; the target filter is an ``EXISTS`` on
        ``audit_targets`` (indexed by scope and target id); paging is keyset on ``seq``.
        A query by actor (and time) alone first picks the page's sequence numbers from
        the covering index ``(scope, actor_id, occurred_at, seq)``, then reads only
        those events.
        """
        if query.limit <= 0:
            return []
        e = self._e
        order = e.c.seq.desc() if query.newest_first else e.c.seq.asc()
        covered = query.actor_id is not None and not (
            query.actions
            or query.outcome is not None
            or query.target_id is not None
            or query.ip is not None
        )
        if covered:
            m = e.alias("m")
            page = (
                select(m.c.seq)
                .where(*self._conditions(m, query))
                .order_by(m.c.seq.desc() if query.newest_first else m.c.seq.asc())
                .limit(query.limit)
            )
            stmt = select(e).where(e.c.scope == query.scope, e.c.seq.in_(page)).order_by(order)
        else:
            stmt = select(e).where(*self._conditions(e, query)).order_by(order)
            stmt = stmt.limit(query.limit)
        return self._with_targets(self._db.all(stmt, "audit event"))

    def _conditions(self, e: FromClause, query: AuditQuery) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = [e.c.scope == query.scope]
        if query.since is not None:
            conditions.append(e.c.occurred_at >= query.since)
        if query.until is not None:
            conditions.append(e.c.occurred_at < query.until)
        if query.actions:
            conditions.append(e.c.action.in_(list(query.actions)))
        if query.actor_id is not None:
            conditions.append(e.c.actor_id == query.actor_id)
        if query.outcome is not None:
            conditions.append(e.c.outcome == query.outcome.value)
        if query.target_id is not None:
            conditions.append(
                exists().where(
                    self._tg.c.event_id == e.c.id,
                    self._tg.c.scope == query.scope,
                    self._tg.c.target_id == query.target_id,
                )
            )
        if query.ip is not None:
            # The address is personal data, kept beside the event under its commitment;
            # the primary key (event_id, slot) makes this a point lookup per event.
            conditions.append(
                exists().where(
                    self._p.c.event_id == e.c.id,
                    self._p.c.slot == "context.ip",
                    self._p.c.value == query.ip,
                )
            )
        if query.after_seq is not None:
            conditions.append(
                e.c.seq < query.after_seq if query.newest_first else e.c.seq > query.after_seq
            )
        return conditions

    def iter_chain(self, scope: str, *, batch_size: int = 1000) -> Iterator[EventRecord]:
        """Every event of ``scope`` in ``seq`` order, read in keyset batches.

        Consume the iterator inside the transaction that created it.
        """
        if batch_size < 1:
            raise InvalidInput("batch_size must be at least 1.", code="audit.batch_size")
        last = 0
        while True:
            stmt = (
                select(self._e)
                .where(self._e.c.scope == scope, self._e.c.seq > last)
                .order_by(self._e.c.seq)
                .limit(batch_size)
            )
            batch = self._with_targets(self._db.all(stmt, "audit event"))
            yield from batch
            if len(batch) < batch_size:
                return
            last = batch[-1].seq

    def personal_for(self, event_ids: Sequence[str]) -> Mapping[str, tuple[PersonalDatum, ...]]:
        """Personal data of the given events, keyed by event id, each ordered by slot.

        Events without personal data are absent from the mapping.
        """
        found: dict[str, list[PersonalDatum]] = {}
        for chunk in _chunks(list(dict.fromkeys(event_ids))):
            stmt = (
                select(self._p)
                .where(self._p.c.event_id.in_(chunk))
                .order_by(self._p.c.event_id, self._db.ordered(self._p.c.slot))
            )
            for row in self._db.all(stmt, "audit personal datum"):
                datum = _datum(row)
                found.setdefault(datum.event_id, []).append(datum)
        return {event_id: tuple(data) for event_id, data in found.items()}

    def erase_subject(self, subject_id: str) -> int:
        """Blank value and salt of every datum about ``subject_id``; return the count.

        Data already erased is not counted again, so a repeated erasure returns 0.
        """
        p = self._p
        stmt = (
            update(p)
            .where(
                p.c.subject_id == subject_id,
                or_(p.c.value.is_not(None), p.c.salt.is_not(None)),
            )
            .values(value=None, salt=None, version=p.c.version + 1)
        )
        return self._db.execute(stmt, "audit personal datum").rowcount

    def scopes(self) -> list[str]:
        """Every scope that has at least one event, in code point order."""
        scope = self._e.c.scope
        stmt = select(scope).group_by(scope).order_by(self._db.ordered(scope))
        return [str(row._mapping["scope"]) for row in self._db.all(stmt, "audit event")]

    def get_failure_counter(self, scope: str, key: str) -> FailureCounter | None:
        """The aggregation counter of one repeated failure."""
        stmt = select(self._fc).where(self._fc.c.scope == scope, self._fc.c.key == key)
        row = self._db.first(stmt, "failure counter")
        if row is None:
            return None
        m = row._mapping
        return FailureCounter(
            scope=m["scope"],
            key=m["key"],
            window_started_at=m["window_started_at"],
            count=m["count"],
        )

    def put_failure_counter(self, counter: FailureCounter) -> None:
        """Insert or replace an aggregation counter."""
        self._db.upsert(self._fc, attrs.asdict(counter), ("scope", "key"), "failure counter")


# ---------------------------------------------------------------------------------------
# Outbox


def _outbox_values(message: OutboxMessage) -> dict[str, Any]:
    values = _row_values(message)
    values["payload"] = dict(message.payload)
    values["version"] = 1
    return values


def _message(row: AnyRow) -> OutboxMessage:
    m = row._mapping
    return OutboxMessage(
        id=m["id"],
        kind=OutboxKind(m["kind"]),
        topic=m["topic"],
        scope=m["scope"],
        payload=dict(m["payload"]),
        idempotency_key=m["idempotency_key"],
        created_at=m["created_at"],
        next_attempt_at=m["next_attempt_at"],
        attempts=m["attempts"],
        dispatched_at=m["dispatched_at"],
        last_error=m["last_error"],
    )


class SqlOutboxRepository:
    """Durable messages (:class:`~nulabpass.ports.OutboxRepository`)."""

    _t = s.outbox

    def __init__(self, db: Db) -> None:
        self._db = db

    def add(self, message: OutboxMessage) -> None:
        """Insert; a duplicate idempotency key is ignored (the first one wins).

        Raises ``Conflict`` (``outbox.exists``) for a duplicate id with a new key.
        """
        if self._db.insert_ignore(self._t, _outbox_values(message), "outbox message"):
            return
        if not _exists(
            self._db,
            self._t,
            "outbox message",
            self._t.c.idempotency_key == message.idempotency_key,
        ):
            raise Conflict(f"Outbox message {message.id} already exists.", code="outbox.exists")

    def get(self, message_id: str) -> OutboxMessage | None:
        """Return one message."""
        row = self._db.first(select(self._t).where(self._t.c.id == message_id), "outbox message")
        return _message(row) if row is not None else None

    def claim_due(self, now: datetime, limit: int) -> list[OutboxMessage]:
        """Undispatched messages whose ``next_attempt_at <= now``, ordered by
        ``next_attempt_at``, then ``created_at``, then id.

        On PostgreSQL the rows stay locked (``FOR UPDATE SKIP LOCKED``) until the
        transaction ends, so concurrent dispatchers do not take the same message.
        """
        if limit <= 0:
            return []
        t = self._t
        stmt = (
            select(t)
            .where(t.c.dispatched_at.is_(None), t.c.next_attempt_at <= now)
            .order_by(t.c.next_attempt_at, t.c.created_at, self._db.ordered(t.c.id))
            .limit(limit)
        )
        if self._db.is_postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        return [_message(row) for row in self._db.all(stmt, "outbox message")]

    def _set(self, message_id: str, values: Mapping[str, Any]) -> None:
        stmt = (
            update(self._t)
            .where(self._t.c.id == message_id)
            .values({**values, "version": self._t.c.version + 1})
        )
        if self._db.execute(stmt, "outbox message").rowcount != 1:
            raise NotFound(f"Outbox message {message_id} does not exist.", code="outbox.not_found")

    def mark_dispatched(self, message_id: str, when: datetime) -> None:
        """Record a successful delivery; raises ``NotFound`` for an unknown id."""
        self._set(message_id, {"dispatched_at": when})

    def mark_failed(
        self, message_id: str, *, attempts: int, next_attempt_at: datetime, error: str
    ) -> None:
        """Record a failed attempt and when to try again."""
        self._set(
            message_id,
            {"attempts": attempts, "next_attempt_at": next_attempt_at, "last_error": error},
        )

    def pending_count(self) -> int:
        """How many messages wait for dispatch."""
        stmt = select(func.count()).select_from(self._t).where(self._t.c.dispatched_at.is_(None))
        return self._db.scalar_int(stmt, "outbox message")


# ---------------------------------------------------------------------------------------
# Plans

_PLAN_FIELDS = tuple(f.name for f in attrs.fields(PlanRecord))


def _plan_values(plan: StoredPlan) -> dict[str, Any]:
    values = attrs.asdict(plan.record, recurse=False)
    values.update(org_id=plan.org_id, next_due_at=plan.next_due_at, version=plan.version)
    return values


def _plan(row: AnyRow) -> StoredPlan:
    return _plan_from(row._mapping)


def _plan_from(m: Mapping[Any, Any]) -> StoredPlan:
    return StoredPlan(
        org_id=m["org_id"],
        record=PlanRecord(**{name: m[name] for name in _PLAN_FIELDS}),
        next_due_at=m["next_due_at"],
        version=m["version"],
    )


class SqlPlanRepository:
    """Plans and their bookkeeping (:class:`~nulabpass.ports.PlanRepository`)."""

    _t = s.plans
    _n = s.plan_notices
    _b = s.billing_events
    _w = s.withdrawn_privileges
    _by_org = select(_t).where(_t.c.org_id == bindparam("org_id"))

    def __init__(self, db: Db) -> None:
        self._db = db

    def get(self, org_id: str) -> StoredPlan | None:
        """The organization's plan, or ``None`` when it never had one."""
        row = self._db.row(self._by_org, "plan", org_id=org_id)
        return _plan(row) if row is not None else None

    def add(self, plan: StoredPlan) -> None:
        """Insert; raises ``Conflict`` (``plan.exists``) when one exists."""
        if not self._db.insert_ignore(self._t, _plan_values(plan), "plan"):
            raise Conflict(f"Organization {plan.org_id} already has a plan.", code="plan.exists")

    def update(self, plan: StoredPlan) -> StoredPlan:
        """Write with a version check; return it with the next version."""
        self._db.update_versioned(
            self._t, {"org_id": plan.org_id}, plan.version, _plan_values(plan), "plan"
        )
        return attrs.evolve(plan, version=plan.version + 1)

    def due(self, now: datetime, limit: int) -> list[str]:
        """Organization ids whose ``next_due_at <= now``, earliest first (then by id)."""
        if limit <= 0:
            return []
        t = self._t
        stmt = (
            select(t.c.org_id)
            .where(t.c.next_due_at.is_not(None), t.c.next_due_at <= now)
            .order_by(t.c.next_due_at, self._db.ordered(t.c.org_id))
            .limit(limit)
        )
        return [str(row._mapping["org_id"]) for row in self._db.all(stmt, "plan")]

    def notices(self, org_id: str) -> frozenset[str]:
        """Idempotency keys of the time-driven effects already acted on."""
        stmt = select(self._n.c.key).where(self._n.c.org_id == org_id)
        return frozenset(str(row._mapping["key"]) for row in self._db.all(stmt, "plan notice"))

    def add_notice(self, org_id: str, key: str, at: datetime) -> None:
        """Remember that the effect ``key`` was acted on (a duplicate is ignored)."""
        self._db.insert_ignore(
            self._n, {"org_id": org_id, "key": key, "noticed_at": at}, "plan notice"
        )

    def billing_event_seen(self, event_id: str) -> bool:
        """Whether a billing event with this id was already recorded."""
        return _exists(self._db, self._b, "billing event", self._b.c.event_id == event_id)

    def record_billing_event(
        self,
        *,
        event_id: str,
        org_id: str,
        kind: str,
        occurred_at: datetime,
        outcome: str,
        recorded_at: datetime,
    ) -> None:
        """Remember a billing event; raises ``Conflict`` (``billing.duplicate``) if seen."""
        values = {
            "event_id": event_id,
            "org_id": org_id,
            "kind": kind,
            "occurred_at": occurred_at,
            "outcome": outcome,
            "recorded_at": recorded_at,
        }
        if not self._db.insert_ignore(self._b, values, "billing event"):
            raise Conflict(
                f"Billing event {event_id} was already recorded.", code="billing.duplicate"
            )

    def last_billing_event_at(self, org_id: str) -> datetime | None:
        """Occurrence time of the latest *applied* billing event of the organization."""
        b = self._b
        stmt = select(func.max(b.c.occurred_at)).where(
            b.c.org_id == org_id, b.c.outcome == "applied"
        )
        latest: datetime | None = self._db.execute(stmt, "billing event").scalar()
        return latest

    def withdrawn_privileges(self, org_id: str) -> list[tuple[str, datetime]]:
        """``(account_id, withdrawn_at)`` of withdrawn audit log admin privileges,
        ordered by account id."""
        w = self._w
        stmt = (
            select(w.c.account_id, w.c.withdrawn_at)
            .where(w.c.org_id == org_id)
            .order_by(self._db.ordered(w.c.account_id))
        )
        return [
            (str(row._mapping["account_id"]), row._mapping["withdrawn_at"])
            for row in self._db.all(stmt, "withdrawn privilege")
        ]

    def add_withdrawn_privilege(self, org_id: str, account_id: str, at: datetime) -> None:
        """Remember one withdrawn privilege (replacing an older record)."""
        self._db.upsert(
            self._w,
            {"org_id": org_id, "account_id": account_id, "withdrawn_at": at},
            ("org_id", "account_id"),
            "withdrawn privilege",
        )

    def clear_withdrawn_privileges(self, org_id: str) -> None:
        """Forget every withdrawn privilege of the organization."""
        self._db.execute(delete(self._w).where(self._w.c.org_id == org_id), "withdrawn privilege")
