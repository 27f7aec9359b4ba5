"""Fixtures shared by the interoperability tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nulabpass import NulabPass
from nulabpass.stores.memory import MemoryStore
from nulabpass.testing import make_nulabpass


@pytest.fixture(params=["memory", "sqlite"])
def np(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NulabPass]:
    """A nulabpass on the memory store, then on a SQLite file."""
    if request.param == "memory":
        yield make_nulabpass(MemoryStore())
        return
    from nulabpass.stores.sql import SqlStore

    sql = SqlStore.from_url(f"sqlite:///{tmp_path / 'interop.sqlite3'}")
    sql.upgrade()
    yield make_nulabpass(sql)
    sql.dispose()
