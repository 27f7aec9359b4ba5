"""Statements built once, run on SQLite's driver connection.

SQLAlchemy's execution path (cache key, parameter processing, result set-up, events)
costs about three times what SQLite takes to run a one-row look-up or insert, and a
SCIM request or an audited change runs ten to fifteen such statements. For statements
kept in module constants, :func:`plan` compiles once through SQLAlchemy (so the SQL,
the bind processors and the result processors are SQLAlchemy's own) and the unit of
work then runs the SQL on the ``sqlite3`` connection its transaction already holds.

The path is taken only when nothing watches the statements SQLAlchemy runs on the
connection (echo, or listeners of its statement events such as tracing), only for
statements without expanding ``IN`` lists, literal-rendered values, Python-side
column defaults or ``RETURNING``, and only when every required parameter is given;
otherwise the statement goes through SQLAlchemy as usual. Driver errors are wrapped
exactly as SQLAlchemy wraps them, so their translation is the same on both paths.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import Executable

from nulabpass.stores.sql.schema import UtcDateTime

__all__ = ["DriverPlan", "DriverRow", "observed", "plan"]


@attrs.frozen
class DriverPlan:
    """One statement compiled for SQLite's driver.

    ``names`` are its positional parameters in order, ``required`` those without a
    value of their own, ``defaults`` the values of the others, ``binds`` the bind
    processors by name, ``keys`` the result column names and ``results`` their
    processors (``None`` where the driver's value is already the Python one).
    """

    sql: str
    names: tuple[str, ...]
    required: frozenset[str]
    defaults: Mapping[str, Any]
    binds: Mapping[str, Callable[[Any], Any]]
    keys: tuple[str, ...]
    results: tuple[Callable[[Any], Any] | None, ...]

    def values(self, params: Mapping[str, Any]) -> list[Any] | None:
        """The positional values for ``params``, or ``None`` when one is missing."""
        if not self.required.issubset(params):
            return None
        out = []
        binds = self.binds
        for name in self.names:
            value = params[name] if name in params else self.defaults[name]
            bind = binds.get(name)
            out.append(value if bind is None else bind(value))
        return out

    @functools.cached_property
    def _processed(self) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
        return tuple((i, f) for i, f in enumerate(self.results) if f is not None)

    def convert(self, rows: list[Any]) -> list[Any]:
        """The driver's rows with SQLAlchemy's result processors applied."""
        processed = self._processed
        if not processed:
            return rows
        out = []
        for row in rows:
            values = list(row)
            for i, f in processed:
                values[i] = f(values[i])
            out.append(tuple(values))
        return out


class DriverRow(tuple[Any, ...]):
    """A row read on the driver path: values by position, and by column name through
    ``_mapping`` as a SQLAlchemy row offers them."""

    _keys: tuple[str, ...]

    def __new__(cls, keys: tuple[str, ...], values: Sequence[Any]) -> DriverRow:
        row = super().__new__(cls, values)
        row._keys = keys
        return row

    @property
    def _mapping(self) -> Mapping[str, Any]:
        return dict(zip(self._keys, self, strict=True))


#: Plans per (statement identity, parameter style, written columns), each beside its
#: statement (which it keeps alive); ``None`` for a statement the path cannot run.
_PLANS: dict[tuple[int, str, tuple[str, ...] | None], tuple[Executable, DriverPlan | None]] = {}
#: A bound on the plans kept, should a caller pass statements built per call.
_PLANS_MAX = 4096


def plan(stmt: Executable, dialect: Dialect, columns: tuple[str, ...] | None) -> DriverPlan | None:
    """The driver plan of ``stmt``, built on first use, or ``None``.

    ``columns`` are the parameter names of an ``INSERT`` or ``UPDATE`` whose values
    come from its parameters (SQLAlchemy derives the column list from them), ``None``
    for a query.
    """
    key = (id(stmt), dialect.paramstyle, columns)
    found = _PLANS.get(key)
    if found is not None and found[0] is stmt:
        return found[1]
    element: Any = stmt
    compiled: Any = (
        element.compile(dialect=dialect)
        if columns is None
        else element.compile(dialect=dialect, column_keys=list(columns))
    )
    made: DriverPlan | None = None
    names = tuple(compiled.positiontup or ())
    binds = compiled.binds
    if (
        compiled.positional
        and all(name in binds for name in names)
        and not any(b.expanding or b.literal_execute for b in binds.values())
        and not compiled.insert_prefetch
        and not compiled.update_prefetch
        and not (columns is not None and compiled.effective_returning)
    ):
        made = DriverPlan(
            sql=compiled.string,
            names=names,
            required=frozenset(name for name in names if binds[name].required),
            defaults=compiled.construct_params(_check=False),
            binds={
                name: _fused_bind(binds[name].type, f)
                for name, f in compiled._bind_processors.items()
            },
            keys=tuple(entry[0] for entry in compiled._result_columns),
            results=tuple(
                _fused_result(entry[3], entry[3]._cached_result_processor(dialect, None))
                for entry in compiled._result_columns
            ),
        )
    if len(_PLANS) < _PLANS_MAX:
        _PLANS[key] = (stmt, made)
    return made


def _fused_bind(type_: Any, general: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``general`` (SQLAlchemy's processor chain), or for a timestamp column one that
    gives the same text in one step for the values nulabpass binds (aware UTC)."""
    if not isinstance(type_, UtcDateTime):
        return general

    def bind(value: Any) -> Any:
        # SQLite's storage format, YYYY-MM-DD HH:MM:SS.ffffff, is ``isoformat``'s with a
        # space; anything else (None, other zones, naive values, which it refuses)
        # takes the general chain.
        if value.__class__ is datetime and value.tzinfo is UTC:
            return value.isoformat(" ", "microseconds")[:-6]  # without "+00:00"
        return general(value)

    return bind


def _fused_result(type_: Any, general: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """``general``, or for a timestamp column one that reads the stored text straight
    into an aware UTC datetime."""
    if general is None or not isinstance(type_, UtcDateTime):
        return general

    def result(value: Any) -> Any:
        if value.__class__ is str:
            # Parsing with the offset is several times faster than setting the zone
            # afterwards; text that has one already fails here and takes the chain.
            try:
                parsed = datetime.fromisoformat(value + "+00:00")
            except ValueError:
                return general(value)
            if parsed.tzinfo is UTC:  # a date alone drops the offset
                return parsed
        return general(value)

    return result


def observed(conn: Connection) -> bool:
    """Whether something watches the statements SQLAlchemy runs on ``conn``: its echo
    log, or listeners of its statement events (tracing, statement counters)."""
    dispatch: Any = conn.dispatch
    return bool(
        getattr(conn, "_echo", True)
        or dispatch.before_execute
        or dispatch.after_execute
        or dispatch.before_cursor_execute
        or dispatch.after_cursor_execute
    )
