"""``nulabpass.testing.scim_ready_org`` verifies the domain through the DNS flow an admin
follows (challenge, TXT record published in the static resolver, check), on every store."""

from __future__ import annotations

import pytest

from nulabpass import NulabPass
from nulabpass.domains import StaticTxtResolver
from nulabpass.errors import ConfigurationError
from nulabpass.org._model import DomainStatus
from nulabpass.ports import Store, TxtResolver
from nulabpass.testing import make_nulabpass, scim_ready_org
from nulabpass.web import ScimTestClient

from .conftest import chain_actions


def _domains(np: NulabPass, org_id: str) -> list[tuple[str, DomainStatus]]:
    with np.store.transaction() as uow:
        return [(d.name, d.status) for d in uow.domains.list_for_org(org_id)]


def test_the_domain_is_verified_through_its_published_txt_record(np: NulabPass) -> None:
    org, token = scim_ready_org(np, domain="Acme.Example")
    resolver = np.domains.resolvers[0]
    assert isinstance(resolver, StaticTxtResolver)
    assert "_nulabpass-challenge.acme.example" in resolver.queries
    assert _domains(np, org.id) == [("acme.example", DomainStatus.VERIFIED)]
    actions = chain_actions(np, org.id)
    assert "domain.added" in actions
    assert "domain.verified" in actions
    assert org.saml_configured_at is not None
    client = ScimTestClient(np, token)
    assert client.create_user("ines", domain="acme.example").status == 201
    refused = client.create_user("ines", domain="example.com")
    assert refused.status == 400


def test_every_static_vantage_point_gets_the_record(store: Store) -> None:
    first, second = StaticTxtResolver("tokyo"), StaticTxtResolver("frankfurt")
    np = make_nulabpass(store, resolver=[first, second])
    org, _token = scim_ready_org(np)
    assert _domains(np, org.id) == [("example.com", DomainStatus.VERIFIED)]
    assert first.queries
    assert second.queries


class _SystemLikeResolver:
    """Stands for a resolver that asks real name servers: nothing can be published."""

    label = "system"

    def lookup(self, name: str) -> object:
        raise AssertionError("scim_ready_org must refuse before any lookup")


def test_without_a_static_resolver_it_refuses_before_creating_anything(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver: TxtResolver = _SystemLikeResolver()  # type: ignore[assignment]
    np = make_nulabpass(store, resolver=[StaticTxtResolver(), resolver])

    def register(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may be created")

    monkeypatch.setattr(np.accounts, "register", register)
    with pytest.raises(ConfigurationError) as info:
        scim_ready_org(np)
    assert info.value.code == "testing.static_resolver_required"
    assert "StaticTxtResolver" in info.value.message
    assert "_SystemLikeResolver" in info.value.message


class _DeafResolver(StaticTxtResolver):
    """Drops whatever is published: the record never appears."""

    def publish(self, name: str, *values: str | bytes) -> None:
        del name, values


def test_a_domain_that_does_not_verify_is_a_clear_error(store: Store) -> None:
    np = make_nulabpass(store, resolver=_DeafResolver())
    with pytest.raises(ConfigurationError) as info:
        scim_ready_org(np)
    assert info.value.code == "testing.domain_not_verified"
    assert "example.com" in info.value.message
