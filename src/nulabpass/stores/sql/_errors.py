"""Translation of driver exceptions into nulabpass errors, at the adapter boundary.

Messages never include SQL text or bound values: those may hold emails, token hashes
or personal data, and the message is meant for an IT admin. The original exception
stays attached as ``__cause__`` for the host's logs (engines built by
:meth:`SqlStore.from_url` hide bound parameters there too).
"""

from __future__ import annotations

import enum

from sqlalchemy import exc as sa_exc

from nulabpass.errors import (
    ConfigurationError,
    Conflict,
    NulabPassError,
    TransientError,
)

__all__ = ["ConstraintKind", "constraint_kind", "translate"]


class ConstraintKind(enum.Enum):
    """Which kind of integrity constraint a write violated."""

    UNIQUE = "unique"
    FOREIGN_KEY = "foreign_key"
    NOT_NULL = "not_null"
    OTHER = "other"


# PostgreSQL SQLSTATE codes (Appendix A of the PostgreSQL manual).
_PG_UNIQUE = "23505"
_PG_FOREIGN_KEY = "23503"
_PG_NOT_NULL = "23502"
_PG_UNDEFINED_TABLE = "42P01"
_PG_UNDEFINED_COLUMN = "42703"
# Class 40 (transaction rollback: serialization failure, deadlock), 08 (connection
# exception), 53 (insufficient resources), 55P03 (lock not available), 57P01-57P03
# (server shutting down or unavailable): retrying later may succeed.
_PG_TRANSIENT_CLASSES = ("40", "08", "53")
_PG_TRANSIENT_CODES = ("55P03", "57P01", "57P02", "57P03")

# SQLite primary result codes behind "try again" conditions.
_SQLITE_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL")


def _sqlstate(exc: sa_exc.DBAPIError) -> str | None:
    state = getattr(exc.orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def _sqlite_error_name(exc: sa_exc.DBAPIError) -> str:
    name = getattr(exc.orig, "sqlite_errorname", None)
    return name if isinstance(name, str) else ""


def _driver_message(exc: sa_exc.DBAPIError) -> str:
    return str(exc.orig).lower()


def constraint_kind(exc: sa_exc.IntegrityError) -> ConstraintKind:
    """Classify an integrity violation from its SQLSTATE or SQLite result code."""
    state = _sqlstate(exc)
    if state is not None:
        return {
            _PG_UNIQUE: ConstraintKind.UNIQUE,
            _PG_FOREIGN_KEY: ConstraintKind.FOREIGN_KEY,
            _PG_NOT_NULL: ConstraintKind.NOT_NULL,
        }.get(state, ConstraintKind.OTHER)
    name = _sqlite_error_name(exc)
    message = _driver_message(exc)
    if name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY") or (
        "unique constraint failed" in message
    ):
        return ConstraintKind.UNIQUE
    if name == "SQLITE_CONSTRAINT_FOREIGNKEY" or "foreign key constraint failed" in message:
        return ConstraintKind.FOREIGN_KEY
    if name == "SQLITE_CONSTRAINT_NOTNULL" or "not null constraint failed" in message:
        return ConstraintKind.NOT_NULL
    return ConstraintKind.OTHER


def _is_missing_schema(exc: sa_exc.DBAPIError) -> bool:
    if _sqlstate(exc) in (_PG_UNDEFINED_TABLE, _PG_UNDEFINED_COLUMN):
        return True
    message = _driver_message(exc)
    return "no such table" in message or "no such column" in message


def _is_transient(exc: sa_exc.DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    state = _sqlstate(exc)
    if state is not None:
        return state[:2] in _PG_TRANSIENT_CLASSES or state in _PG_TRANSIENT_CODES
    name = _sqlite_error_name(exc)
    if name:
        return name.startswith(_SQLITE_TRANSIENT)
    message = _driver_message(exc)
    if "database is locked" in message or "database table is locked" in message:
        return True
    # sqlite3 also reports programming mistakes as OperationalError; elsewhere (psycopg
    # without a SQLSTATE) an OperationalError is a lost or refused connection.
    is_sqlite = type(exc.orig).__module__.startswith("sqlite3")
    return not is_sqlite and isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)


def translate(exc: sa_exc.SQLAlchemyError, resource: str = "record") -> NulabPassError:
    """Return the nulabpass error that stands for a SQLAlchemy or driver exception.

    ``resource`` names what was being written ("account", "team") for the message.
    """
    if isinstance(exc, sa_exc.StatementError) and isinstance(exc.orig, NulabPassError):
        # Raised by a type's bind processor (a naive datetime): SQLAlchemy wrapped it.
        return exc.orig
    if isinstance(exc, sa_exc.DBAPIError):
        if _is_missing_schema(exc):
            return ConfigurationError(
                "The nulabpass tables are missing or out of date in this database; "
                "run SqlStore.upgrade() (or the nulabpass migrations) before use.",
                code="store.not_migrated",
            )
        if isinstance(exc, sa_exc.IntegrityError):
            kind = constraint_kind(exc)
            return Conflict(
                f"Writing the {resource} violated a {kind.value.replace('_', ' ')} "
                "constraint of the nulabpass schema.",
                code="store.constraint",
                details={"resource": resource, "constraint": kind.value},
            )
        if _is_transient(exc):
            return TransientError(
                "The database is unavailable or busy; retry the operation later.",
                code="store.unavailable",
                details={"resource": resource},
            )
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return TransientError(
            "No database connection is available right now; retry the operation later.",
            code="store.unavailable",
            details={"resource": resource},
        )
    return NulabPassError(
        f"The database rejected an operation on the {resource}.",
        code="store.error",
        details={"resource": resource},
    )
