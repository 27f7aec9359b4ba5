"""A token that authenticated once is checked again by every later change, inside the
change's own transaction, on every store: revoked or wrong, it gets the same answers,
rate limiting and audit records as a token never seen, and a change that fails still
records the token's use."""

from __future__ import annotations

from typing import Any

import pytest

from nulabpass.scim._model import ScimToken
from nulabpass.web import ScimTestClient as ScimHttp

from .conftest import World

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@pytest.fixture
def used(world: World) -> tuple[ScimToken, ScimHttp, str]:
    """A token that has created a user (so the service has seen it), and that user's id."""
    token, secret = world.np.scim.tokens.create(world.admin, world.org.id, "Okta")
    client = ScimHttp(world.np, secret)
    created = client.create_user("ines")
    assert created.status == 201
    return token, client, created.json["id"]


def _changes(user_id: str) -> list[tuple[str, str, Any]]:
    replace = {"schemas": [USER], "userName": "ines@example.com", "active": False}
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    return [
        ("POST", "/Users", {"schemas": [USER], "userName": "jo@example.com"}),
        ("PUT", f"/Users/{user_id}", replace),
        ("PATCH", f"/Users/{user_id}", patch),
        ("DELETE", f"/Users/{user_id}", None),
        ("POST", "/Groups", {"schemas": [GROUP], "displayName": "Sales"}),
        ("POST", "/Users/.search", {"schemas": [SEARCH]}),
        ("POST", "/.search", {"schemas": [SEARCH]}),
        ("POST", "/Users", b"{not json"),
        ("PATCH", "/ServiceProviderConfig", None),
    ]


def _send(client: ScimHttp, method: str, path: str, body: Any, **kw: Any) -> Any:
    if isinstance(body, bytes):
        return client.request(method, path, raw=body, **kw)
    return client.request(method, path, body, **kw)


def test_a_token_revoked_after_use_is_refused_for_every_change(
    world: World, used: tuple[ScimToken, ScimHttp, str]
) -> None:
    token, client, user_id = used
    world.np.scim.tokens.revoke(world.admin, world.org.id, token.id)
    before = world.events()
    user = client.get(f"/Users/{user_id}", token=None)
    assert user.status == 401
    for method, path, body in _changes(user_id):
        reply = _send(client, method, path, body)
        assert reply.status == 401, (method, path, reply.json)
        assert reply.headers["www-authenticate"].startswith("Bearer")
    # Nothing changed, and a refused token records no failure in the organization.
    assert world.events() == before
    _other, secret = world.np.scim.tokens.create(world.admin, world.org.id, "Entra")
    fresh = ScimHttp(world.np, secret)
    assert fresh.get(f"/Users/{user_id}").json["active"] is True
    sales = fresh.get("/Groups?filter=displayName%20eq%20%22Sales%22")
    assert sales.json["totalResults"] == 0


def test_a_known_token_id_with_a_wrong_secret_is_refused_and_rate_limited(
    used: tuple[ScimToken, ScimHttp, str],
) -> None:
    token, client, user_id = used
    wrong = f"{token.id}.not-the-secret"
    statuses = [
        client.patch(
            f"/Users/{user_id}", {"op": "replace", "path": "active", "value": False}, token=wrong
        ).status
        for _ in range(21)
    ]
    assert statuses[:20] == [401] * 20
    assert statuses[20] == 429
    assert client.get(f"/Users/{user_id}").json["active"] is True


def test_a_known_token_gets_the_same_answers_to_refused_requests(
    world: World, used: tuple[ScimToken, ScimHttp, str]
) -> None:
    _token, client, user_id = used
    assert client.request("POST", "/Users", raw=b"{not json").status == 400
    assert client.request("PATCH", "/ServiceProviderConfig").status == 405
    assert client.request("POST", "/Bulk", {}).status == 501
    too_big = b" " * (world.np.scim.max_body_bytes + 1)
    assert client.request("PUT", f"/Users/{user_id}", raw=too_big).status == 413
    assert client.delete("/Users/acc_missing").status == 404
    assert "scim.user_deleted" in world.events()  # the 404 is recorded as a failure
    search = client.post("/Users/.search", {"schemas": [SEARCH]})
    assert search.status == 200
    assert search.json["totalResults"] == 1


def test_a_failing_change_still_records_the_use_of_the_token(
    world: World, used: tuple[ScimToken, ScimHttp, str]
) -> None:
    token, client, _user_id = used
    world.np.clock.advance(minutes=5)
    assert client.delete("/Users/acc_missing").status == 404
    listed = next(
        t for t in world.np.scim.tokens.list(world.admin, world.org.id) if t.id == token.id
    )
    assert listed.last_used_at == world.np.clock.now()


def test_changes_within_a_minute_of_the_last_use_succeed_on_the_known_token(
    world: World, used: tuple[ScimToken, ScimHttp, str]
) -> None:
    _token, client, user_id = used
    first = client.patch(f"/Users/{user_id}", {"op": "replace", "path": "active", "value": False})
    assert first.status == 200
    assert first.json["active"] is False
    again = client.put(
        f"/Users/{user_id}", {"schemas": [USER], "userName": "ines@example.com", "active": True}
    )
    assert again.status == 200
    assert world.events()[-2:] == ["scim.user_deactivated", "scim.user_reactivated"]
