"""Stores for the contract suite and the SQL-specific tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from nulabpass.stores.sql import SqlStore

SqlStoreFactory = Callable[[str], SqlStore]


@pytest.fixture
def sqlite_store(sql_store_factory: SqlStoreFactory) -> SqlStore:
    """A fresh, migrated SQLite store in a temporary file."""
    return sql_store_factory("sqlite")


@pytest.fixture
def postgres_store(sql_store_factory: SqlStoreFactory) -> SqlStore:
    """A fresh, migrated, empty PostgreSQL store (skips without PostgreSQL)."""
    return sql_store_factory("postgresql")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest, sql_store_factory: SqlStoreFactory) -> SqlStore:
    """A fresh SQL store of each dialect."""
    dialect: str = request.param
    return sql_store_factory(dialect)
