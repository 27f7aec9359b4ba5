"""Fixtures shared by every test package: SQL stores on SQLite and PostgreSQL.

PostgreSQL tests run when ``NULABPASS_TEST_POSTGRES_URL`` names a database, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; otherwise they are skipped. Each
test session (each pytest-xdist worker) works in its own, uniquely named schema, created
and migrated once and dropped at the end; tables are emptied before each test, so
reruns start clean and concurrent sessions never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa

from nulabpass.stores.sql import SqlStore
from nulabpass.stores.sql.schema import metadata

POSTGRES_URL_ENV = "NULABPASS_TEST_POSTGRES_URL"


@attrs.frozen
class PostgresSchema:
    """A private schema of the test database and an engine whose connections use it."""

    name: str
    engine: sa.Engine


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL from ``NULABPASS_TEST_POSTGRES_URL``; skips the test if unset."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(
            f"{POSTGRES_URL_ENV} is not set; set it to a PostgreSQL URL such as "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test to run PostgreSQL tests"
        )
    return url


@pytest.fixture(scope="session")
def postgres_schema(postgres_url: str) -> Iterator[PostgresSchema]:
    """A fresh schema for this session, migrated once and dropped at the end."""
    name = f"nulabpass_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    engine = sa.create_engine(
        postgres_url, connect_args={"options": f"-csearch_path={name}"}, pool_size=10
    )
    try:
        SqlStore(engine).upgrade()
        yield PostgresSchema(name, engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


def truncate_nulabpass_tables(engine: sa.Engine) -> None:
    """Empty every nulabpass table (the migration version table stays)."""
    names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    with engine.begin() as conn:
        # A lock left behind by a broken test would otherwise hang the whole session.
        conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


SqlStoreFactory = Callable[[str], SqlStore]


@pytest.fixture
def sql_store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStoreFactory]:
    """Build fresh, migrated, empty SQL stores: ``factory("sqlite")`` or
    ``factory("postgresql")`` (which skips unless PostgreSQL is configured).

    Every SQLite store is a new file under the test's ``tmp_path``. PostgreSQL stores
    of one test share the session's schema, emptied once when the test asks for its
    first one.
    """
    created: list[SqlStore] = []
    truncated = False

    def make(dialect: str) -> SqlStore:
        nonlocal truncated
        if dialect == "sqlite":
            path = tmp_path / f"nulabpass-{len(created)}.sqlite3"
            store = SqlStore.from_url(f"sqlite:///{path}")
            store.upgrade()
        elif dialect == "postgresql":
            schema: PostgresSchema = request.getfixturevalue("postgres_schema")
            if not truncated:
                truncate_nulabpass_tables(schema.engine)
                truncated = True
            store = SqlStore(schema.engine)
        else:  # pragma: no cover - a mistake in a test
            raise ValueError(f"unknown dialect {dialect!r}")
        created.append(store)
        return store

    yield make
    for store in created:
        store.dispose()
