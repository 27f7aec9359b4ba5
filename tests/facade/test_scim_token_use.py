"""SCIM tokens record when they were last used, to within a minute, on every store:
the listing shows it, and a burst of requests writes it once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nulabpass.scim._model import ScimToken
from nulabpass.web import ScimTestClient as ScimHttp

from .conftest import World


@pytest.fixture
def issued(world: World) -> tuple[ScimToken, ScimHttp]:
    token, secret = world.np.scim.tokens.create(world.admin, world.org.id, "Okta")
    return token, ScimHttp(world.np, secret)


def _listed(world: World, token_id: str) -> ScimToken:
    return next(
        t for t in world.np.scim.tokens.list(world.admin, world.org.id) if t.id == token_id
    )


def test_a_new_token_was_never_used(world: World, issued: tuple[ScimToken, ScimHttp]) -> None:
    token, _client = issued
    assert token.last_used_at is None
    assert _listed(world, token.id).last_used_at is None


def test_reads_and_writes_record_the_time_of_use(
    world: World, issued: tuple[ScimToken, ScimHttp]
) -> None:
    token, client = issued
    used_at = world.np.clock.now()
    assert client.get("/Users").status == 200
    assert _listed(world, token.id).last_used_at == used_at
    world.np.clock.advance(minutes=5)
    assert client.create_user("ines").status == 201
    assert _listed(world, token.id).last_used_at == world.np.clock.now()


def test_requests_within_a_minute_write_the_time_once(
    world: World, issued: tuple[ScimToken, ScimHttp]
) -> None:
    token, client = issued
    first = world.np.clock.now()
    client.get("/Users")
    world.np.clock.advance(seconds=59)
    client.get("/Users")
    client.create_user("ines")
    assert _listed(world, token.id).last_used_at == first
    world.np.clock.advance(seconds=1)
    client.get("/Groups")
    assert _listed(world, token.id).last_used_at == first + timedelta(minutes=1)


def test_recording_a_use_changes_neither_the_version_nor_the_audit_log(
    world: World, issued: tuple[ScimToken, ScimHttp]
) -> None:
    token, client = issued
    before = world.events()
    client.get("/Users")
    listed = _listed(world, token.id)
    assert listed.version == token.version
    assert world.events() == before
    # A revocation prepared from a copy read before the use keeps the recorded time.
    revoked = world.np.scim.tokens.revoke(world.admin, world.org.id, token.id)
    assert revoked.revoked_at is not None
    assert _listed(world, token.id).last_used_at == listed.last_used_at


def test_failed_authentication_records_no_use(
    world: World, issued: tuple[ScimToken, ScimHttp]
) -> None:
    token, client = issued
    assert client.get("/Users", token=f"{token.id}.wrong-secret").status == 401
    world.np.scim.tokens.revoke(world.admin, world.org.id, token.id)
    assert client.get("/Users").status == 401
    assert _listed(world, token.id).last_used_at is None
