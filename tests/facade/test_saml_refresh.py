"""Refreshing an organization's IdP configuration from its metadata URL, on every store:
settings, unchanged and changed documents, certificate changes that need a trusted
signature or an admin's approval, rejection, failures with backoff, the scheduler."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from lxml import etree

from nulabpass import Actor, NulabPass, PermissionDenied, RequestContext
from nulabpass._saml_refresh import RefreshOutcome
from nulabpass.audit._model import AuditQuery, Outcome
from nulabpass.domains._errors import RateLimited
from nulabpass.errors import Conflict, InvalidInput, NotFound, PlanRequired
from nulabpass.ports import Store
from nulabpass.saml import MetadataFetchError
from nulabpass.saml.testing import TestIdentityProvider, TestKeyPair, make_key_pair, sign_element
from nulabpass.testing import (
    FakeBillingProvider,
    FrozenClock,
    RecordingMailer,
    StaticMetadataFetcher,
    make_nulabpass,
)

from .conftest import World, chain_actions

URL = "https://idp.example.test/app/metadata"
ENTITY = "https://idp.example.test/saml/metadata"
CTX = RequestContext(ip="198.51.100.9")


@pytest.fixture(scope="module")
def old_keys() -> TestKeyPair:
    return make_key_pair("idp old")


@pytest.fixture(scope="module")
def new_keys() -> TestKeyPair:
    return make_key_pair("idp new")


def _metadata(
    keys: TestKeyPair,
    *,
    sso_url: str = "https://idp.example.test/saml/sso",
    extra: tuple[bytes, ...] = (),
    signed_by: bytes | None = None,
) -> bytes:
    xml = TestIdentityProvider(entity_id=ENTITY, sso_url=sso_url, keys=keys).metadata(
        extra_certificates=extra
    )
    if signed_by is None:
        return xml
    root = etree.fromstring(xml)
    root.set("ID", "_metadata1")
    sign_element(root, signed_by)
    signed: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return signed


def _fetcher(np: NulabPass) -> StaticMetadataFetcher:
    fetcher = np.saml.metadata_fetcher
    assert isinstance(fetcher, StaticMetadataFetcher)
    return fetcher


@pytest.fixture
def ready(np: NulabPass, world: World, old_keys: TestKeyPair) -> World:
    """SAML configured from the old key's metadata, the URL set and serving it."""
    np.saml.configure(world.admin, world.org.id, metadata_xml=_metadata(old_keys))
    _fetcher(np).publish(URL, _metadata(old_keys))
    np.saml.set_metadata_url(world.admin, world.org.id, URL, ctx=CTX)
    return world


def _failures(np: NulabPass, org_id: str, action: str) -> list[object]:
    with np.store.transaction() as uow:
        return [
            e
            for e in uow.audit.query(AuditQuery(scope=org_id, actions=(action,), limit=100))
            if e.outcome is Outcome.FAILURE
        ]


def _mail_subjects(np: NulabPass, mailer: RecordingMailer) -> list[str]:
    np.outbox.dispatch_pending()
    return [m.subject for m in mailer.sent_to("founder@partner.test")]


# -- settings ----------------------------------------------------------------------------


def test_an_admin_sets_the_metadata_url_and_the_first_refresh_is_due_at_once(
    np: NulabPass, ready: World
) -> None:
    status = np.saml.metadata_status(ready.org.id)
    assert status is not None
    assert status.url == URL
    assert status.refresh_interval == timedelta(hours=24)
    assert status.next_refresh_at == np.clock.now()
    assert status.pending is None
    assert chain_actions(np, ready.org.id, "saml.metadata_url_set") == ["saml.metadata_url_set"]


@pytest.mark.parametrize(
    "url",
    ["http://idp.example.test/metadata", "ftp://idp.example.test/x", "https://", "not a url"],
)
def test_a_metadata_url_must_be_https_with_a_host(
    np: NulabPass, world: World, old_keys: TestKeyPair, url: str
) -> None:
    np.saml.configure(world.admin, world.org.id, metadata_xml=_metadata(old_keys))
    with pytest.raises(InvalidInput) as err:
        np.saml.set_metadata_url(world.admin, world.org.id, url)
    assert err.value.code == "saml.metadata_url_invalid"
    assert np.saml.metadata_status(world.org.id) is None


def test_the_refresh_interval_is_bounded(np: NulabPass, ready: World) -> None:
    with pytest.raises(InvalidInput) as err:
        np.saml.set_metadata_url(
            ready.admin, ready.org.id, URL, refresh_interval=timedelta(minutes=5)
        )
    assert err.value.code == "saml.refresh_interval_invalid"


def test_a_metadata_url_needs_a_configured_idp(np: NulabPass, world: World) -> None:
    with pytest.raises(InvalidInput) as err:
        np.saml.set_metadata_url(world.admin, world.org.id, URL)
    assert err.value.code == "saml.not_configured"
    assert np.saml.metadata_status(world.org.id) is None


def test_only_admins_set_the_metadata_url(np: NulabPass, world: World) -> None:
    member = np.accounts.register("member@partner.test", "Member")
    np.members.add(world.admin, world.org.id, member.id)
    with pytest.raises(PermissionDenied):
        np.saml.set_metadata_url(Actor.account(member.id), world.org.id, URL)
    with pytest.raises(PermissionDenied):
        np.saml.refresh_metadata(world.org.id, actor=Actor.account(member.id))


def test_changing_the_url_starts_afresh_and_clearing_it_stops_refreshes(
    np: NulabPass, ready: World, new_keys: TestKeyPair
) -> None:
    _fetcher(np).publish(URL, _metadata(new_keys))
    assert np.saml.refresh_metadata(ready.org.id).outcome is RefreshOutcome.PENDING
    other = "https://idp.example.test/other/metadata"
    status = np.saml.set_metadata_url(ready.admin, ready.org.id, other)
    assert status.url == other
    assert status.pending is None
    np.saml.clear_metadata_url(ready.admin, ready.org.id, ctx=CTX)
    assert np.saml.metadata_status(ready.org.id) is None
    assert chain_actions(np, ready.org.id, "saml.metadata_url_cleared") == [
        "saml.metadata_url_cleared"
    ]
    with pytest.raises(NotFound) as err:
        np.saml.refresh_metadata(ready.org.id)
    assert err.value.code == "saml.metadata_url_not_set"
    with pytest.raises(NotFound):
        np.saml.clear_metadata_url(ready.admin, ready.org.id)


# -- refresh outcomes --------------------------------------------------------------------


def test_an_unchanged_document_only_moves_the_schedule(np: NulabPass, ready: World) -> None:
    before = chain_actions(np, ready.org.id)
    config = np.saml.get_configuration(ready.org.id)
    result = np.saml.refresh_metadata(ready.org.id)
    assert result.outcome is RefreshOutcome.UNCHANGED
    assert chain_actions(np, ready.org.id) == before
    assert np.saml.get_configuration(ready.org.id) == config
    status = np.saml.metadata_status(ready.org.id)
    assert status is not None
    assert status.last_success_at == np.clock.now()
    assert status.next_refresh_at == np.clock.now() + timedelta(hours=24)


def test_a_new_endpoint_with_the_same_certificates_is_applied(
    np: NulabPass, ready: World, old_keys: TestKeyPair, mailer: RecordingMailer
) -> None:
    moved = "https://idp.example.test/saml/sso2"
    _fetcher(np).publish(URL, _metadata(old_keys, sso_url=moved))
    result = np.saml.refresh_metadata(ready.org.id)
    assert result.outcome is RefreshOutcome.UPDATED
    assert result.certificates_changed is False
    config = np.saml.get_configuration(ready.org.id)
    assert config is not None
    assert config.sso_redirect_url == moved
    assert config.signing_certificates == (old_keys.cert_der,)
    assert chain_actions(np, ready.org.id)[-1] == "saml.metadata_updated"
    assert any("were updated" in s for s in _mail_subjects(np, mailer))


def test_new_certificates_signed_by_a_trusted_key_are_applied(
    np: NulabPass, ready: World, old_keys: TestKeyPair, new_keys: TestKeyPair
) -> None:
    _fetcher(np).publish(
        URL, _metadata(new_keys, extra=(old_keys.cert_der,), signed_by=old_keys.key_pem)
    )
    result = np.saml.refresh_metadata(ready.org.id)
    assert result.outcome is RefreshOutcome.UPDATED
    assert result.certificates_changed is True
    assert result.signed is True
    config = np.saml.get_configuration(ready.org.id)
    assert config is not None
    assert config.signing_certificates == (new_keys.cert_der, old_keys.cert_der)


def test_new_certificates_without_a_trusted_signature_wait_for_approval(
    np: NulabPass,
    ready: World,
    old_keys: TestKeyPair,
    new_keys: TestKeyPair,
    mailer: RecordingMailer,
) -> None:
    _fetcher(np).publish(URL, _metadata(new_keys))
    before = np.saml.get_configuration(ready.org.id)
    result = np.saml.refresh_metadata(ready.org.id)
    assert result.outcome is RefreshOutcome.PENDING
    assert np.saml.get_configuration(ready.org.id) == before
    status = np.saml.metadata_status(ready.org.id)
    assert status is not None
    assert status.pending is not None
    assert status.pending.sha256 == result.sha256
    assert status.pending.reason == "saml.metadata_unsigned"
    assert status.pending.added_certificates == (new_keys.cert_der,)
    assert status.pending.removed_certificates == (old_keys.cert_der,)
    assert chain_actions(np, ready.org.id)[-1] == "saml.metadata_pending"
    assert any(s.startswith("Action required") for s in _mail_subjects(np, mailer))
    # Fetching the same document again records nothing new.
    events = chain_actions(np, ready.org.id)
    assert np.saml.refresh_metadata(ready.org.id).outcome is RefreshOutcome.UNCHANGED
    assert chain_actions(np, ready.org.id) == events


def test_a_document_signed_only_by_its_new_key_is_not_trusted(
    np: NulabPass, ready: World, new_keys: TestKeyPair
) -> None:
    _fetcher(np).publish(URL, _metadata(new_keys, signed_by=new_keys.key_pem))
    result = np.saml.refresh_metadata(ready.org.id)
    assert result.outcome is RefreshOutcome.PENDING
    status = np.saml.metadata_status(ready.org.id)
    assert status is not None
    assert status.pending is not None
    assert status.pending.reason == "saml.signature_invalid"


def test_an_admin_approves_the_pending_document_it_reviewed(
    np: NulabPass, ready: World, new_keys: TestKeyPair
) -> None:
    _fetcher(np).publish(URL, _metadata(new_keys))
    pending = np.saml.refresh_metadata(ready.org.id)
    assert pending.sha256 is not None
    with pytest.raises(Conflict) as err:
        np.saml.approve_pending_metadata(ready.admin, ready.org.id, sha256="0" * 64)
    assert err.value.code == "saml.metadata_pending_changed"
    config = np.saml.approve_pending_metadata(
        ready.admin, ready.org.id, sha256=pending.sha256, ctx=CTX
    )
    assert config.signing_certificates == (new_keys.cert_der,)
    assert np.saml.get_configuration(ready.org.id) == config
    status = np.saml.metadata_status(ready.org.id)
    assert status is not None
    assert status.pending is None
    assert chain_actions(np, ready.org.id)[-1] == "saml.metadata_approved"
    # The approved document is now the one in force: refreshing it changes nothing.
    assert np.saml.refresh_metadata(ready.org.id).outcome is RefreshOutcome.UNCHANGED
    with pytest.raises(NotFound) as missing:
        np.saml.approve_pending_metadata(ready.admin, ready.org.id, sha256=pending.sha256)
    assert missing.value.code == "saml.metadata_not_pending"


def test_sign_in_follows_an_approved_certificate_change(
    np: NulabPass, ready: World, new_keys: TestKeyPair
) -> None:
    np.saml.configure(
        ready.admin,
        ready.org.id,
        metadata_xml=np.saml.metadata_fetcher.fetch(URL),
        allow_idp_initiated=True,
    )
    ready.managed("carol")
    new_idp = TestIdentityProvider(entity_id=ENTITY, keys=new_keys)

    def sign_in() -> str:
        xml = new_idp.response(
            sp_entity_id=np.saml.sp_entity_id(ready.org.id),
            acs_url=np.saml.acs_url(ready.org.id),
            name_id="carol@example.com",
            now=np.clock.now(),
        )
        return np.saml.complete_login(ready.org.id, TestIdentityProvider.post_value(xml)).name_id

    from nulabpass.saml import SamlValidationError

    with pytest.raises(SamlValidationError):
        sign_in()
    _fetcher(np).publish(URL, _metadata(new_keys))
    pending = np.saml.refresh_metadata(ready.org.id)
    assert pending.sha256 is not None
    np.saml.approve_pending_metadata(ready.admin, ready.org.id, sha256=pending.sha256)
    assert sign_in() == "carol@example.com"


def test_a_rejected_document_is_not_proposed_again(
    np: NulabPass,
    ready: World,
    old_keys: TestKeyPair,
    new_keys: TestKeyPair,
    mailer: RecordingMailer,
) -> None:
    _fetcher(np).publish(URL, _metadata(new_keys))
    pending = np.saml.refresh_metadata(ready.org.id)
    assert pending.sha256 is not None
    np.saml.reject_pending_metadata(ready.admin, ready.org.id, sha256=pending.sha256, ctx=CTX)
    config = np.saml.get_configuration(ready.org.id)
    assert config is not None
    assert config.signing_certificates == (old_keys.cert_der,)
    assert chain_actions(np, ready.org.id)[-1] == "saml.metadata_rejected"
    assert any("was rejected" in s for s in _mail_subjects(np, mailer))
    events = chain_actions(np, ready.org.id)
    assert np.saml.refresh_metadata(ready.org.id).outcome is RefreshOutcome.UNCHANGED
    assert chain_actions(np, ready.org.id) == events
    status = np.saml.metadata_status(ready.org.id)
    assert status is not None
    assert status.pending is None


# -- failures ----------------------------------------------------------------------------


def test_a_failed_fetch_keeps_the_configuration_backs_off_and_emails_once(
    np: NulabPass, ready: World, mailer: RecordingMailer, clock: FrozenClock
) -> None:
    config = np.saml.get_configuration(ready.org.id)
    _fetcher(np).fail(URL, "saml.fetch_timeout")
    with pytest.raises(MetadataFetchError) as err:
        np.saml.refresh_metadata(ready.org.id)
    assert err.value.code == "saml.fetch_timeout"
    assert np.saml.get_configuration(ready.org.id) == config
    status = np.saml.metadata_status(ready.org.id)
    assert status is not None
    assert status.consecutive_failures == 1
    assert status.last_error_code == "saml.fetch_timeout"
    assert status.next_refresh_at == np.clock.now() + timedelta(minutes=15)
    failures = _failures(np, ready.org.id, "saml.metadata_refresh_failed")
    assert len(failures) == 1
    assert failures[0].metadata["error_code"] == "saml.fetch_timeout"  # type: ignore[attr-defined]
    clock.advance(minutes=16)
    report = np.saml.refresh_due()
    assert (report.checked, report.failed) == (1, 1)
    status = np.saml.metadata_status(ready.org.id)
    assert status is not None
    assert status.consecutive_failures == 2
    assert status.next_refresh_at == np.clock.now() + timedelta(minutes=30)
    subjects = _mail_subjects(np, mailer)
    assert sum("could not be refreshed" in s for s in subjects) == 1


def test_an_invalid_document_is_a_recorded_failure(np: NulabPass, ready: World) -> None:
    config = np.saml.get_configuration(ready.org.id)
    _fetcher(np).publish(URL, b"<html>maintenance</html>")
    with pytest.raises(InvalidInput) as err:
        np.saml.refresh_metadata(ready.org.id)
    assert err.value.code == "saml.metadata_invalid"
    assert np.saml.get_configuration(ready.org.id) == config
    assert len(_failures(np, ready.org.id, "saml.metadata_refresh_failed")) == 1


def test_without_the_plan_entitlement_a_refresh_fails_once_and_changes_nothing(
    np: NulabPass, ready: World, old_keys: TestKeyPair, clock: FrozenClock
) -> None:
    config = np.saml.get_configuration(ready.org.id)
    _fetcher(np).publish(URL, _metadata(old_keys, sso_url="https://idp.example.test/v9"))
    clock.advance(days=60)
    with pytest.raises(PlanRequired):
        np.saml.refresh_metadata(ready.org.id)
    assert np.saml.get_configuration(ready.org.id) == config
    failures = _failures(np, ready.org.id, "saml.metadata_refresh_failed")
    assert len(failures) == 1
    assert failures[0].metadata["error_code"].startswith("plan.")  # type: ignore[attr-defined]
    assert _failures(np, ready.org.id, "saml.metadata_updated") == []


def test_after_failures_a_good_document_resets_the_streak(
    np: NulabPass, ready: World, old_keys: TestKeyPair
) -> None:
    _fetcher(np).fail(URL)
    with pytest.raises(MetadataFetchError):
        np.saml.refresh_metadata(ready.org.id)
    _fetcher(np).publish(URL, _metadata(old_keys))
    assert np.saml.refresh_metadata(ready.org.id).outcome is RefreshOutcome.UNCHANGED
    status = np.saml.metadata_status(ready.org.id)
    assert status is not None
    assert (status.consecutive_failures, status.last_error_code) == (0, None)


# -- the scheduler -----------------------------------------------------------------------


def test_refresh_due_visits_due_organizations_once_each(
    np: NulabPass, ready: World, old_keys: TestKeyPair, clock: FrozenClock
) -> None:
    first = np.saml.refresh_due()
    assert (first.checked, first.unchanged) == (1, 1)
    assert np.saml.refresh_due().checked == 0
    clock.advance(hours=23)
    assert np.saml.refresh_due().checked == 0
    clock.advance(hours=1)
    _fetcher(np).publish(URL, _metadata(old_keys, sso_url="https://idp.example.test/sso3"))
    report = np.saml.refresh_due()
    assert (report.checked, report.updated) == (1, 1)
    assert np.saml.refresh_due(limit=0).checked == 0


class _Overlapping:
    """Serves documents only once ``parties`` downloads are in flight together."""

    def __init__(self, inner: StaticMetadataFetcher, parties: int) -> None:
        self.inner = inner
        self.barrier = threading.Barrier(parties, timeout=10)

    def fetch(self, url: str) -> bytes:
        self.barrier.wait()
        return self.inner.fetch(url)


def test_refresh_due_downloads_several_documents_at_once(
    store: Store,
    clock: FrozenClock,
    mailer: RecordingMailer,
    billing: FakeBillingProvider,
    old_keys: TestKeyPair,
) -> None:
    static = StaticMetadataFetcher()
    np = make_nulabpass(
        store,
        clock=clock,
        mailer=mailer,
        billing=billing,
        metadata_fetcher=_Overlapping(static, 3),
    )
    world = World(np, mailer)
    for n in range(3):
        org_id = world.org.id if n == 0 else np.orgs.create(world.admin, f"Org {n}").id
        if n:
            np.plans.start_trial(world.admin, org_id)
        url = f"https://idp{n}.example.test/metadata"
        np.saml.configure(world.admin, org_id, metadata_xml=_metadata(old_keys))
        static.publish(url, _metadata(old_keys, sso_url=f"https://idp{n}.example.test/sso"))
        np.saml.set_metadata_url(world.admin, org_id, url, ctx=CTX)
    # Sequential downloads would each wait for the others in vain and fail.
    report = np.saml.refresh_due(concurrency=3)
    assert (report.checked, report.updated, report.failed) == (3, 3, 0)
    with pytest.raises(InvalidInput) as err:
        np.saml.refresh_due(concurrency=0)
    assert err.value.code == "saml.refresh_concurrency_invalid"


def test_manual_refreshes_are_rate_limited_per_organization(
    np: NulabPass, ready: World, clock: FrozenClock
) -> None:
    for _ in range(10):
        np.saml.refresh_metadata(ready.org.id, actor=ready.admin)
    with pytest.raises(RateLimited) as err:
        np.saml.refresh_metadata(ready.org.id, actor=ready.admin, ctx=CTX)
    assert err.value.code == "rate_limit.exceeded"
    assert "retry_at" in err.value.details
    assert len(_failures(np, ready.org.id, "saml.metadata_refresh_failed")) == 1
    # The scheduler is not limited, and the window passes.
    clock.advance(hours=24)
    assert np.saml.refresh_due().checked == 1
    clock.advance(hours=1)
    assert np.saml.refresh_metadata(ready.org.id, actor=ready.admin).outcome is (
        RefreshOutcome.UNCHANGED
    )
