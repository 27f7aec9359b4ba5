"""The storage contract, run against every store shipped with nulabpass."""

from __future__ import annotations

import importlib

import pytest

from nulabpass.ports import Store
from nulabpass.stores.sql import SqlStore
from nulabpass.testing._store_contract import StoreContract


class TestMemoryStore(StoreContract):
    """The in-memory store."""

    @pytest.fixture
    def store(self) -> Store:
        try:
            memory = importlib.import_module("nulabpass.stores.memory")
        except ImportError:
            pytest.skip("nulabpass.stores.memory is not available yet")
        store: Store = memory.MemoryStore()
        return store


class TestSqliteStore(StoreContract):
    """The SQL store on a SQLite file."""

    @pytest.fixture
    def store(self, sqlite_store: SqlStore) -> Store:
        return sqlite_store


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    """The SQL store on PostgreSQL (needs NULABPASS_TEST_POSTGRES_URL)."""

    @pytest.fixture
    def store(self, postgres_store: SqlStore) -> Store:
        return postgres_store
