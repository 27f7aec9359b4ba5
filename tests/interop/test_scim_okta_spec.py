"""The steps of Okta's "SCIM 2.0 SPEC Test" (the Runscope/BlazeMeter test Okta asks
integrators to pass before listing an app), replayed against our WSGI adapter.

Each step is sent with the headers that suite sends (``User-Agent: OKTA SCIM
Integration``, ``Accept: application/scim+json``, ``Content-Type:
application/scim+json; charset=utf-8``, and ``application/json`` on its POSTs) and
checked with the suite's assertions; where the suite only checks a status, we also
check what our service promises (for example that the upper-cased userName finds the
user, since userName is compared without case). The suite expects one user to exist
before it starts, as in an application already in use, so one is provisioned first.
The steps, in order:

1. ``GET /Users?count=1&startIndex=1``: a ListResponse whose first user has an id,
   given and family names, a userName, ``active`` and an email;
2. ``GET /Users/<that id>``: the same user;
3. ``GET /Users?filter=userName eq "<an email nobody has>"``: an empty ListResponse;
4. ``GET /Users/<an id nobody has>``: 404 with a SCIM error body;
5. ``GET /Users?filter=userName eq "<the random email>"``: no user yet;
6. ``POST /Users`` (realistic values): 201 with the values sent;
7. ``GET /Users/<new id>``: the values sent;
8. ``POST /Users`` again with the same userName: 409;
9. ``GET /Users?filter=userName eq "<the userName upper-cased>"``: 200;
10. ``GET /Groups``: 200, and ``Resources`` is a list when there are groups;
11. the step-9 request with ``Authorization: non-token``: 401 with a SCIM error body;
12. ``GET /Users/00919288221112222``: 404 with a SCIM error body.
"""

from __future__ import annotations

import io
import json
import secrets
from typing import Any
from urllib.parse import quote
from wsgiref.util import setup_testing_defaults

import attrs

from nulabpass import NulabPass
from nulabpass.testing import scim_ready_org
from nulabpass.web import scim_wsgi_app

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PREFIX = "/scim/v2"


@attrs.frozen
class Answer:
    status: int
    json: Any


@attrs.frozen
class OktaSpecClient:
    """Sends requests the way the spec test does: its headers, its raw Authorization."""

    np: NulabPass
    authorization: str

    def send(
        self,
        method: str,
        target: str,
        body: dict[str, Any] | None = None,
        *,
        authorization: str | None = None,
    ) -> Answer:
        path, _, query = target.partition("?")
        data = b"" if body is None else json.dumps(body).encode()
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": PREFIX + path,
            "QUERY_STRING": query,
            "CONTENT_LENGTH": str(len(data)),
            # The suite's POSTs say application/json; its other requests the SCIM type.
            "CONTENT_TYPE": "application/json"
            if method == "POST"
            else "application/scim+json; charset=utf-8",
            "HTTP_ACCEPT": "application/scim+json"
            if method != "POST"
            else "application/scim+json; charset=utf-8",
            "HTTP_ACCEPT_CHARSET": "utf-8",
            "HTTP_USER_AGENT": "OKTA SCIM Integration",
            "HTTP_AUTHORIZATION": authorization or self.authorization,
            "wsgi.input": io.BytesIO(data),
        }
        setup_testing_defaults(environ)
        seen: dict[str, int] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            seen["status"] = int(status.split(maxsplit=1)[0])

        app = scim_wsgi_app(self.np, PREFIX)
        raw = b"".join(app(environ, start_response))
        return Answer(seen["status"], json.loads(raw) if raw else None)


def _filter(expression: str) -> str:
    return "/Users?filter=" + quote(expression)


def _not_empty(value: object) -> bool:
    return value is not None and value not in ("", [], {})


def _assert_error(answer: Answer, status: int) -> None:
    assert answer.status == status
    assert _not_empty(answer.json["detail"])
    assert ERROR in answer.json["schemas"]
    assert str(answer.json["status"]) == str(status)


def test_okta_scim_2_spec_test_steps_pass(np: NulabPass) -> None:
    _org, token = scim_ready_org(np)
    okta = OktaSpecClient(np, f"Bearer {token}")
    tag = secrets.token_hex(4)
    given, family = f"Given{tag}", f"Family{tag}"
    user_name = f"okta.spec.{tag}@example.com"
    random_email = f"okta.mail.{tag}@example.com"
    existing = okta.send(
        "POST",
        "/Users",
        {
            "schemas": [USER],
            "userName": "existing.user@example.com",
            "name": {"givenName": "Existing", "familyName": "User"},
            "emails": [{"primary": True, "value": "existing.user@example.com", "type": "work"}],
            "active": True,
        },
    )
    assert existing.status == 201

    # 1. The Users endpoint pages, with the attributes Okta reads.
    page = okta.send("GET", "/Users?count=1&startIndex=1")
    assert page.status == 200
    assert LIST in page.json["schemas"]
    for number in ("itemsPerPage", "startIndex", "totalResults"):
        assert isinstance(page.json[number], int)
    assert _not_empty(page.json["Resources"])
    first = page.json["Resources"][0]
    for value in (
        first["id"],
        first["name"]["familyName"],
        first["name"]["givenName"],
        first["userName"],
        first["active"],
        first["emails"][0]["value"],
    ):
        assert _not_empty(value)
    user_id = first["id"]

    # 2. The same user by id.
    one = okta.send("GET", f"/Users/{user_id}")
    assert one.status == 200
    assert one.json["id"] == user_id
    for value in (
        one.json["name"]["familyName"],
        one.json["name"]["givenName"],
        one.json["userName"],
        one.json["active"],
        one.json["emails"][0]["value"],
    ):
        assert _not_empty(value)

    # 3. An email nobody has is an empty list, not an error.
    nobody = okta.send("GET", _filter('userName eq "abcdefgh@example.com"'))
    assert nobody.status == 200
    assert LIST in nobody.json["schemas"]
    assert nobody.json["totalResults"] == 0

    # 4. An id nobody has is a 404 with a SCIM error.
    _assert_error(okta.send("GET", "/Users/010101001010101010"), 404)

    # 5. The user about to be created does not exist yet.
    before = okta.send("GET", _filter(f'userName eq "{random_email}"'))
    assert before.status == 200
    assert LIST in before.json["schemas"]
    assert before.json["totalResults"] == 0

    # 6. Create a user with realistic values.
    body = {
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": random_email, "type": "work"}],
        "displayName": f"{given} {family}",
        "active": True,
    }
    created = okta.send("POST", "/Users", body)
    assert created.status == 201
    assert created.json["active"] is True
    assert _not_empty(created.json["id"])
    assert created.json["name"]["familyName"] == family
    assert created.json["name"]["givenName"] == given
    assert USER in created.json["schemas"]
    assert created.json["userName"] == user_name
    assert created.json["emails"][0]["value"] == random_email
    new_id = created.json["id"]

    # 7. It reads back as sent.
    read = okta.send("GET", f"/Users/{new_id}")
    assert read.status == 200
    assert read.json["userName"] == user_name
    assert read.json["name"]["familyName"] == family
    assert read.json["name"]["givenName"] == given

    # 8. Creating it again conflicts.
    again = okta.send(
        "POST",
        "/Users",
        {**body, "emails": [{"primary": True, "value": user_name, "type": "work"}]},
    )
    assert again.status == 409
    assert again.json["scimType"] == "uniqueness"

    # 9. userName is compared without case: the upper-cased name finds the user.
    caps = okta.send("GET", _filter(f'userName eq "{user_name.upper()}"'))
    assert caps.status == 200
    assert [r["id"] for r in caps.json["Resources"]] == [new_id]

    # 10. The Groups endpoint answers; with groups, Resources is a list.
    empty = okta.send("GET", "/Groups")
    assert empty.status == 200
    assert empty.json["totalResults"] == 0
    team = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": tag}
    assert okta.send("POST", "/Groups", team).status == 201
    groups = okta.send("GET", "/Groups")
    assert groups.status == 200
    assert groups.json["totalResults"] == 1
    assert isinstance(groups.json["Resources"], list)

    # 11. A request without a bearer token is a 401 with a SCIM error.
    _assert_error(
        okta.send("GET", _filter(f'userName eq "{user_name.upper()}"'), authorization="non-token"),
        401,
    )

    # 12. The suite's fixed unknown id is a 404 with a SCIM error.
    _assert_error(okta.send("GET", "/Users/00919288221112222"), 404)
