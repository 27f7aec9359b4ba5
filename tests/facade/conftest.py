"""Facade tests run unchanged against every store: memory, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from nulabpass import Actor, NulabPass, Organization
from nulabpass.ports import Store
from nulabpass.stores.memory import MemoryStore
from nulabpass.testing import (
    FakeBillingProvider,
    FrozenClock,
    MemoryKeyProvider,
    RecordingMailer,
    make_nulabpass,
    mark_domain_verified,
    mark_saml_configured,
)

STORES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test (migrating per test is slow)."""
    from nulabpass.stores.sql import SqlStore

    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    store = SqlStore.from_url(f"sqlite:///{path}")
    store.upgrade()
    store.dispose()
    return path


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for this test session, migrated once."""
    url = os.environ.get("NULABPASS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("NULABPASS_TEST_POSTGRES_URL is not set; PostgreSQL tests skipped")
    from nulabpass.stores.sql import SqlStore

    schema = f"np_facade_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    store = SqlStore(engine)
    store.upgrade()
    engine.dispose()
    yield f"{url}#{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _pg_store(schema_url: str) -> Store:
    from nulabpass.stores.sql import SqlStore
    from nulabpass.stores.sql.schema import metadata

    url, _, schema = schema_url.partition("#")
    engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        conn.execute(sa.text(f"TRUNCATE {names} CASCADE"))
    return SqlStore(engine)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each kind."""
    kind = request.param
    if kind == "memory":
        yield MemoryStore()
        return
    from nulabpass.stores.sql import SqlStore

    if kind == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "np.sqlite3"
        shutil.copy(template, path)
        sql_store = SqlStore.from_url(f"sqlite:///{path}")
    else:
        sql_store = _pg_store(request.getfixturevalue("pg_schema_url"))
    yield sql_store
    sql_store.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def mailer() -> RecordingMailer:
    return RecordingMailer()


@pytest.fixture
def billing() -> FakeBillingProvider:
    return FakeBillingProvider()


@pytest.fixture
def keys() -> MemoryKeyProvider:
    """The key provider of ``np`` (empty: audit and SAML keys are added by the tests)."""
    return MemoryKeyProvider()


@pytest.fixture
def np(
    store: Store,
    clock: FrozenClock,
    mailer: RecordingMailer,
    billing: FakeBillingProvider,
    keys: MemoryKeyProvider,
) -> NulabPass:
    return make_nulabpass(store, clock=clock, mailer=mailer, billing=billing, keys=keys)


class World:
    """An organization with a non-managed founder (admin + plan admin), SAML configured
    and example.com verified, plus a team; the usual starting point."""

    def __init__(self, np: NulabPass, mailer: RecordingMailer) -> None:
        self.np = np
        self.mailer = mailer
        self.founder = np.accounts.register("founder@partner.test", "Founder")
        self.admin = Actor.account(self.founder.id)
        self.org: Organization = np.orgs.create(self.admin, "Acme")
        np.plans.start_trial(self.admin, self.org.id)
        mark_saml_configured(np, self.org.id)
        mark_domain_verified(np, self.org.id, "example.com")
        self.team = np.teams.create(self.admin, self.org.id, "Engineering")

    def managed(self, local: str, *, accept: bool = True) -> str:
        """Create a managed account local@example.com; accept its invitation."""
        account = self.np.members.create_managed(
            self.admin,
            self.org.id,
            team_id=self.team.id,
            email=f"{local}@example.com",
            display_name=local.title(),
        )
        if accept:
            self.np.outbox.dispatch_pending()
            token = self.mailer.tokens_for(f"{local}@example.com")[-1]
            self.np.invitations.accept(token)
        return account.id

    def events(self, action: str | None = None) -> list[str]:
        """Actions recorded in the organization's chain, oldest first (read directly
        from the store, so reading records nothing)."""
        return chain_actions(self.np, self.org.id, action)


def chain_actions(np: NulabPass, scope: str, action: str | None = None) -> list[str]:
    """Actions of one chain, oldest first, read directly from the store."""
    with np.store.transaction() as uow:
        names = [e.action for e in uow.audit.iter_chain(scope)]
    return [n for n in names if action is None or n == action]


@pytest.fixture
def world(np: NulabPass, mailer: RecordingMailer) -> World:
    return World(np, mailer)
