"""The metadata-source repository (``uow.saml_metadata``) behaves the same on every
store: round trips, optimistic concurrency, the due index, paging of configurations
and rollback."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from nulabpass._saml_metadata_model import SamlMetadataSource
from nulabpass._saml_model import SamlConfiguration
from nulabpass.errors import Conflict, NotFound, StaleWrite
from nulabpass.ports import Store
from nulabpass.stores.memory import MemoryStore
from nulabpass.stores.sql import SqlStore
from nulabpass.testing._store_contract import T0, at, make_org


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    fixture = "sqlite_store" if request.param == "sqlite" else "postgres_store"
    sql: SqlStore = request.getfixturevalue(fixture)
    return sql


def _orgs(store: Store, *ids: str) -> None:
    with store.transaction() as uow:
        for org_id in ids:
            uow.organizations.add(make_org(org_id))


def _source(org_id: str = "org-a", **changes: object) -> SamlMetadataSource:
    source = SamlMetadataSource(
        org_id=org_id,
        url="https://idp.example.test/metadata",
        refresh_interval=timedelta(hours=24),
        next_refresh_at=T0,
        created_at=T0,
        updated_at=T0,
    )
    return attrs.evolve(source, **changes)


def _config(org_id: str) -> SamlConfiguration:
    return SamlConfiguration(
        org_id=org_id,
        idp_entity_id=f"https://idp/{org_id}",
        signing_certificates=(b"\x30\x01",),
        sso_redirect_url="https://idp/sso",
        sso_post_url=None,
        want_authn_requests_signed=False,
        allow_idp_initiated=False,
        configured_at=T0,
        updated_at=T0,
    )


def test_a_source_round_trips_with_every_field(store: Store) -> None:
    _orgs(store, "org-a")
    full = _source(
        last_checked_at=at(1),
        last_success_at=at(1),
        last_error_code="saml.fetch_timeout",
        consecutive_failures=3,
        document_sha256="a" * 64,
        pending_document=b"<md:EntityDescriptor/>\x00\xff",
        pending_sha256="b" * 64,
        pending_fetched_at=at(2),
        pending_reason="saml.metadata_unsigned",
        rejected_sha256="c" * 64,
    )
    with store.transaction() as uow:
        assert uow.saml_metadata.get("org-a") is None
        uow.saml_metadata.add(full)
    with store.transaction() as uow:
        assert uow.saml_metadata.get("org-a") == full


def test_adding_a_second_source_conflicts(store: Store) -> None:
    _orgs(store, "org-a")
    with store.transaction() as uow:
        uow.saml_metadata.add(_source())
    with pytest.raises(Conflict) as err, store.transaction() as uow:
        uow.saml_metadata.add(_source(url="https://other.test/"))
    assert err.value.code == "saml.metadata_url_exists"


def test_updates_check_the_version(store: Store) -> None:
    _orgs(store, "org-a")
    with store.transaction() as uow:
        uow.saml_metadata.add(_source())
    with store.transaction() as uow:
        stored = uow.saml_metadata.update(_source(consecutive_failures=1))
    assert stored.version == 2
    with pytest.raises(StaleWrite), store.transaction() as uow:
        uow.saml_metadata.update(_source(consecutive_failures=2))
    with store.transaction() as uow:
        assert uow.saml_metadata.get("org-a") == stored
        uow.saml_metadata.delete("org-a")
        uow.saml_metadata.delete("org-a")
    with pytest.raises(NotFound), store.transaction() as uow:
        uow.saml_metadata.update(stored)


def test_due_sources_come_earliest_first_up_to_the_limit(store: Store) -> None:
    _orgs(store, "org-a", "org-b", "org-c")
    with store.transaction() as uow:
        uow.saml_metadata.add(_source("org-a", next_refresh_at=at(30)))
        uow.saml_metadata.add(_source("org-b", next_refresh_at=at(10)))
        uow.saml_metadata.add(_source("org-c", next_refresh_at=at(90)))
    with store.transaction() as uow:
        assert [s.org_id for s in uow.saml_metadata.due(at(60), 10)] == ["org-b", "org-a"]
        assert [s.org_id for s in uow.saml_metadata.due(at(60), 1)] == ["org-b"]
        assert uow.saml_metadata.due(at(5), 10) == []


def test_configurations_page_by_organization_id(store: Store) -> None:
    ids = ["org-b", "org-a", "org-d", "org-c", "org-e"]
    _orgs(store, *ids)
    with store.transaction() as uow:
        for org_id in ids:
            uow.saml.put_config(_config(org_id))
    with store.transaction() as uow:
        first = uow.saml_metadata.configurations(None, 2)
        second = uow.saml_metadata.configurations(first[-1].org_id, 2)
        last = uow.saml_metadata.configurations(second[-1].org_id, 2)
    assert [c.org_id for c in first + second + last] == sorted(ids)
    assert first[0] == _config("org-a")


def test_a_rolled_back_transaction_leaves_no_source(store: Store) -> None:
    _orgs(store, "org-a")

    def add_then_fail() -> None:
        with store.transaction() as uow:
            uow.saml_metadata.add(_source())
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        add_then_fail()
    with store.transaction() as uow:
        assert uow.saml_metadata.get("org-a") is None
