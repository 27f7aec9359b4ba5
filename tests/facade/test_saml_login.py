"""SAML sign-in through the facade, on every store: configuration, SP- and IdP-initiated
sign-in, state binding, replay, the managed-account and plan rules, audit events."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nulabpass import Actor, NulabPass, PermissionDenied, RequestContext
from nulabpass._saml_model import PendingLogin, SamlConfiguration
from nulabpass.audit._catalogue import ACTIONS
from nulabpass.audit._model import AuditQuery, Outcome
from nulabpass.errors import InvalidInput, PlanRequired
from nulabpass.ports import Store
from nulabpass.saml import BINDING_POST, SamlValidationError
from nulabpass.saml.testing import TestIdentityProvider
from nulabpass.testing import FrozenClock

from .conftest import World

CTX = RequestContext(ip="198.51.100.7")


@pytest.fixture(scope="module")
def idp() -> TestIdentityProvider:
    return TestIdentityProvider()


def _configure(
    np: NulabPass, world: World, idp: TestIdentityProvider, **options: bool
) -> SamlConfiguration:
    return np.saml.configure(world.admin, world.org.id, metadata_xml=idp.metadata(), **options)


def _response(
    np: NulabPass,
    world: World,
    idp: TestIdentityProvider,
    name_id: str,
    *,
    in_response_to: str | None = None,
) -> str:
    xml = idp.response(
        sp_entity_id=np.saml.sp_entity_id(world.org.id),
        acs_url=np.saml.acs_url(world.org.id),
        name_id=name_id,
        now=np.clock.now(),
        in_response_to=in_response_to,
    )
    return TestIdentityProvider.post_value(xml)


def _events(np: NulabPass, org_id: str, action: str) -> list[object]:
    with np.store.transaction() as uow:
        return list(uow.audit.query(AuditQuery(scope=org_id, actions=(action,), limit=100)))


# -- configuration ---------------------------------------------------------------------------


def test_an_admin_configures_the_idp_from_metadata_and_it_is_audited(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    config = _configure(np, world, idp)
    assert config.idp_entity_id == idp.entity_id
    assert config.signing_certificates == (idp.keys.cert_der,)
    assert config.allow_idp_initiated is False
    assert np.saml.get_configuration(world.org.id) == config
    org = np.orgs.get(world.org.id)
    assert org is not None
    assert org.saml_configured_at is not None
    events = _events(np, world.org.id, "saml.configured")
    # One from the World's mark_saml_configured shortcut, one from configure.
    assert len(events) == 2


def test_configuration_from_fields_names_the_field_that_is_wrong(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    config = np.saml.configure(
        world.admin,
        world.org.id,
        entity_id=idp.entity_id,
        signing_certificates=[idp.keys.cert_pem],
        sso_post_url=idp.sso_url,
    )
    assert config.sso_post_url == idp.sso_url
    assert config.sso_redirect_url is None
    with pytest.raises(InvalidInput) as err:
        np.saml.configure(
            world.admin,
            world.org.id,
            entity_id=idp.entity_id,
            signing_certificates=[idp.keys.cert_pem],
            sso_post_url="http://idp.example.test/sso",
        )
    assert "SingleSignOnService" in err.value.message
    with pytest.raises(InvalidInput) as err:
        np.saml.configure(world.admin, world.org.id, metadata_xml=b"<not-metadata/>")
    assert err.value.code == "saml.metadata_invalid"


def test_a_new_organization_becomes_saml_configured_only_by_configure(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    org = np.orgs.create(world.admin, "Beta")
    np.plans.start_trial(world.admin, org.id)
    assert np.saml.get_configuration(org.id) is None
    np.saml.configure(world.admin, org.id, metadata_xml=idp.metadata())
    got = np.orgs.get(org.id)
    assert got is not None
    assert got.saml_configured_at == np.clock.now()


def test_configure_is_refused_to_non_admins(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    dave = np.accounts.register("dave@partner.test", "Dave")
    np.members.add(world.admin, world.org.id, dave.id)
    with pytest.raises(PermissionDenied) as err:
        np.saml.configure(Actor.account(dave.id), world.org.id, metadata_xml=idp.metadata())
    assert err.value.code == "permission.configure_sso"
    assert np.saml.get_configuration(world.org.id) is None


def test_configure_is_refused_without_a_plan(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    org = np.orgs.create(world.admin, "No plan")
    with pytest.raises(PlanRequired):
        np.saml.configure(world.admin, org.id, metadata_xml=idp.metadata())
    assert np.saml.get_configuration(org.id) is None


def test_sp_metadata_names_the_organizations_entity_id_and_acs(
    np: NulabPass, world: World
) -> None:
    xml = np.saml.sp_metadata(world.org.id)
    assert np.saml.sp_entity_id(world.org.id).encode() in xml
    assert np.saml.acs_url(world.org.id).encode() in xml


# -- SP-initiated sign-in -----------------------------------------------------------------


def test_an_sp_initiated_sign_in_returns_the_managed_account(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    _configure(np, world, idp)
    carol = world.managed("carol")
    redirect = np.saml.begin_login(world.org.id, relay_state="/projects/42", ctx=CTX)
    assert redirect.url.startswith(idp.sso_url + "?SAMLRequest=")
    assert "RelayState=%2Fprojects%2F42" in redirect.url
    response = _response(np, world, idp, "Carol@Example.com", in_response_to=redirect.request_id)
    result = np.saml.complete_login(world.org.id, response, state=redirect.state, ctx=CTX)
    assert result.account_id == carol
    assert result.name_id == "Carol@Example.com"
    assert result.session_index == "_session1"
    assert result.authn_instant == np.clock.now() - timedelta(seconds=5)
    assert result.session_not_on_or_after == np.clock.now() + timedelta(hours=8)
    assert result.relay_state == "/projects/42"
    assert len(_events(np, world.org.id, "saml.login_started")) == 1
    succeeded = _events(np, world.org.id, "saml.login_succeeded")
    assert len(succeeded) == 1


def test_the_post_binding_returns_a_form(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    _configure(np, world, idp)
    redirect = np.saml.begin_login(world.org.id, binding=BINDING_POST)
    assert redirect.binding == BINDING_POST
    assert redirect.url == idp.sso_url
    assert "SAMLRequest" in redirect.form


def test_a_response_with_another_browsers_state_is_refused(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    _configure(np, world, idp)
    world.managed("carol")
    victim = np.saml.begin_login(world.org.id)
    attacker = np.saml.begin_login(world.org.id)
    response = _response(np, world, idp, "carol@example.com", in_response_to=attacker.request_id)
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, response, state=victim.state)
    assert err.value.code == "saml.in_response_to_mismatch"
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, response, state="forged-state")
    assert err.value.code == "saml.state_mismatch"


def test_a_request_id_is_consumed_once_even_by_a_failed_attempt(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    _configure(np, world, idp)
    world.managed("carol")
    redirect = np.saml.begin_login(world.org.id)
    wrong = _response(np, world, idp, "nobody@example.com", in_response_to=redirect.request_id)
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, wrong, state=redirect.state)
    assert err.value.code == "saml.unknown_account"
    right = _response(np, world, idp, "carol@example.com", in_response_to=redirect.request_id)
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, right, state=redirect.state)
    assert err.value.code == "saml.state_mismatch"


def test_a_replayed_response_is_refused(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    _configure(np, world, idp, allow_idp_initiated=True)
    world.managed("carol")
    response = _response(np, world, idp, "carol@example.com")
    np.saml.complete_login(world.org.id, response)
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, response)
    assert err.value.code == "saml.replay"


def test_a_response_to_a_used_request_is_refused_with_its_state(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    _configure(np, world, idp)
    world.managed("carol")
    redirect = np.saml.begin_login(world.org.id)
    response = _response(np, world, idp, "carol@example.com", in_response_to=redirect.request_id)
    np.saml.complete_login(world.org.id, response, state=redirect.state)
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, response, state=redirect.state)
    assert err.value.code == "saml.state_mismatch"
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, response)
    assert err.value.code == "saml.unexpected_in_response_to"


def test_an_expired_pending_request_cannot_be_completed(
    np: NulabPass, world: World, idp: TestIdentityProvider, clock: FrozenClock
) -> None:
    _configure(np, world, idp)
    world.managed("carol")
    redirect = np.saml.begin_login(world.org.id)
    clock.advance(minutes=11)
    response = _response(np, world, idp, "carol@example.com", in_response_to=redirect.request_id)
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, response, state=redirect.state)
    assert err.value.code == "saml.state_mismatch"


def test_a_state_issued_for_another_organization_is_refused(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    _configure(np, world, idp)
    world.managed("carol")
    other = np.orgs.create(world.admin, "Other")
    np.plans.start_trial(world.admin, other.id)
    np.saml.configure(world.admin, other.id, metadata_xml=idp.metadata())
    redirect = np.saml.begin_login(other.id)
    response = _response(np, world, idp, "carol@example.com", in_response_to=redirect.request_id)
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, response, state=redirect.state)
    assert err.value.code == "saml.state_mismatch"


# -- IdP-initiated sign-in ----------------------------------------------------------------


def test_unsolicited_responses_are_refused_by_default(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    _configure(np, world, idp)
    world.managed("carol")
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, _response(np, world, idp, "carol@example.com"))
    assert err.value.code == "saml.unsolicited"


def test_unsolicited_responses_are_accepted_when_the_organization_allows_them(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    _configure(np, world, idp, allow_idp_initiated=True)
    carol = world.managed("carol")
    result = np.saml.complete_login(world.org.id, _response(np, world, idp, "carol@example.com"))
    assert result.account_id == carol
    assert result.relay_state is None


# -- who may sign in ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name_id", "code"),
    [
        ("nobody@example.com", "saml.unknown_account"),
        ("founder@partner.test", "saml.unknown_account"),
        ("not an email", "saml.name_id_not_email"),
    ],
)
def test_only_a_managed_account_of_the_organization_can_sign_in(
    np: NulabPass, world: World, idp: TestIdentityProvider, name_id: str, code: str
) -> None:
    _configure(np, world, idp, allow_idp_initiated=True)
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, _response(np, world, idp, name_id))
    assert err.value.code == code


def test_a_deactivated_managed_account_cannot_sign_in(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    _configure(np, world, idp, allow_idp_initiated=True)
    carol = world.managed("carol")
    np.members.deactivate(world.admin, world.org.id, carol)
    with pytest.raises(SamlValidationError) as err:
        np.saml.complete_login(world.org.id, _response(np, world, idp, "carol@example.com"))
    assert err.value.code == "saml.account_inactive"


def test_sign_in_needs_the_plan_once_the_trial_has_expired(
    np: NulabPass, world: World, idp: TestIdentityProvider, clock: FrozenClock
) -> None:
    _configure(np, world, idp, allow_idp_initiated=True)
    world.managed("carol")
    clock.advance(days=400)
    with pytest.raises(PlanRequired):
        np.saml.complete_login(world.org.id, _response(np, world, idp, "carol@example.com"))
    with pytest.raises(PlanRequired):
        np.saml.begin_login(world.org.id)


def test_relay_state_must_be_a_relative_path(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    _configure(np, world, idp)
    for bad in ("https://evil.example/", "//evil.example", "/\\evil.example", "evil"):
        with pytest.raises(InvalidInput) as err:
            np.saml.begin_login(world.org.id, relay_state=bad)
        assert err.value.code == "saml.relay_state_invalid"


def test_sign_in_to_an_unconfigured_organization_is_refused(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    with pytest.raises(InvalidInput) as err:
        np.saml.begin_login(world.org.id)
    assert err.value.code == "saml.not_configured"


# -- audit and troubleshooting -----------------------------------------------------------


def test_identical_failures_are_recorded_once_and_admins_can_list_them(
    np: NulabPass, world: World, idp: TestIdentityProvider, clock: FrozenClock
) -> None:
    _configure(np, world, idp)
    world.managed("carol")
    for _ in range(3):
        with pytest.raises(SamlValidationError):
            np.saml.complete_login(
                world.org.id, _response(np, world, idp, "carol@example.com"), ctx=CTX
            )
    failed = _events(np, world.org.id, "saml.login_failed")
    assert len(failed) == 1
    assert failed[0].outcome is Outcome.FAILURE  # type: ignore[attr-defined]
    assert failed[0].metadata == {"error_code": "saml.unsolicited"}  # type: ignore[attr-defined]
    clock.advance(days=1)
    with pytest.raises(SamlValidationError):
        np.saml.complete_login(
            world.org.id, _response(np, world, idp, "carol@example.com"), ctx=CTX
        )
    failures = np.saml.recent_failures(world.admin, world.org.id, limit=10)
    assert [(f.error_code, f.repeats_not_recorded, f.ip) for f in failures] == [
        ("saml.unsolicited", 2, CTX.ip),
        ("saml.unsolicited", 0, CTX.ip),
    ]


def test_recent_failures_are_for_admins_only(np: NulabPass, world: World) -> None:
    dave = np.accounts.register("dave@partner.test", "Dave")
    np.members.add(world.admin, world.org.id, dave.id)
    with pytest.raises(PermissionDenied):
        np.saml.recent_failures(Actor.account(dave.id), world.org.id)


def test_home_realm_points_a_managed_account_to_its_organization(
    np: NulabPass, world: World, idp: TestIdentityProvider
) -> None:
    world.managed("carol")
    assert np.saml.home_realm("carol@example.com") is None  # no IdP configured yet
    _configure(np, world, idp)
    realm = np.saml.home_realm("Carol@example.com")
    assert realm is not None
    assert realm.org_id == world.org.id
    assert realm.login_url == np.saml.login_url(world.org.id)
    assert np.saml.home_realm("founder@partner.test") is None
    assert np.saml.home_realm("nobody@example.com") is None
    assert np.saml.home_realm("not an email") is None


# -- the repository contract ---------------------------------------------------------------

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_the_repository_takes_a_pending_request_once_and_never_after_expiry(
    np: NulabPass, world: World, store: Store
) -> None:
    org = world.org.id
    with store.transaction() as uow:
        uow.saml.add_request(PendingLogin("h1", org, "_r1", "/x", T0 + timedelta(minutes=5)))
        uow.saml.add_request(PendingLogin("h2", org, "_r2", None, T0 + timedelta(minutes=1)))
    with store.transaction() as uow:
        got = uow.saml.take_request("h1", T0)
        assert got == PendingLogin("h1", org, "_r1", "/x", T0 + timedelta(minutes=5))
        assert uow.saml.take_request("h1", T0) is None
        assert uow.saml.take_request("h2", T0 + timedelta(minutes=1)) is None
        assert uow.saml.take_request("missing", T0) is None


def test_the_repository_rolls_back_a_taken_request_with_its_transaction(
    np: NulabPass, world: World, store: Store
) -> None:
    org = world.org.id
    with store.transaction() as uow:
        uow.saml.add_request(PendingLogin("h1", org, "_r1", None, T0 + timedelta(minutes=5)))
    taken: list[PendingLogin | None] = []

    def take_then_fail() -> None:
        with store.transaction() as uow:
            taken.append(uow.saml.take_request("h1", T0))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        take_then_fail()
    assert taken[0] is not None
    with store.transaction() as uow:
        assert uow.saml.take_request("h1", T0) is not None


def test_the_repository_remembers_assertions_until_they_expire(store: Store) -> None:
    with store.transaction() as uow:
        assert uow.saml.remember("k", expires_at=T0 + timedelta(minutes=5), now=T0)
        assert not uow.saml.remember("k", expires_at=T0 + timedelta(minutes=5), now=T0)
    with store.transaction() as uow:
        later = T0 + timedelta(minutes=6)
        assert uow.saml.remember("k", expires_at=later + timedelta(minutes=5), now=later)


def test_the_repository_replaces_a_configuration(
    np: NulabPass, world: World, store: Store, idp: TestIdentityProvider
) -> None:
    config = SamlConfiguration(
        org_id=world.org.id,
        idp_entity_id="https://idp/1",
        signing_certificates=(idp.keys.cert_der, b"\x30\x01"),
        sso_redirect_url="https://idp/sso",
        sso_post_url=None,
        want_authn_requests_signed=True,
        allow_idp_initiated=False,
        configured_at=T0,
        updated_at=T0,
    )
    with store.transaction() as uow:
        assert uow.saml.get_config(world.org.id) is None
        uow.saml.put_config(config)
    with store.transaction() as uow:
        assert uow.saml.get_config(world.org.id) == config
        changed = SamlConfiguration(
            org_id=world.org.id,
            idp_entity_id="https://idp/2",
            signing_certificates=(idp.keys.cert_der,),
            sso_redirect_url=None,
            sso_post_url="https://idp/post",
            want_authn_requests_signed=False,
            allow_idp_initiated=True,
            configured_at=T0,
            updated_at=T0 + timedelta(days=1),
            version=2,
        )
        uow.saml.put_config(changed)
    with store.transaction() as uow:
        assert uow.saml.get_config(world.org.id) == changed


def test_every_error_code_of_the_facade_is_documented() -> None:
    root = Path(__file__).resolve().parents[2]
    source = "".join(
        (root / "src/nulabpass" / name).read_text()
        for name in ("_saml_service.py", "_saml_refresh.py", "_saml_health.py")
    )
    raised = set(re.findall(r'"(saml\.[a-z_]+)"', source)) - set(ACTIONS)
    core = set(
        re.findall(
            r'"(saml\.[a-z_]+)"',
            "".join(p.read_text() for p in (root / "src/nulabpass/saml").glob("*.py")),
        )
    )
    page = (root / "docs/saml-login.md").read_text()
    documented = set(re.findall(r"^\| `(saml\.[a-z_]+)` \|", page, flags=re.MULTILINE))
    assert raised - core == documented
