"""Arbitrary input never gets past validation as anything but a clean, coded refusal.

Email normalisation is idempotent and canonical or refuses with ``InvalidInput``;
registration refuses with coded ``NulabPassError`` subclasses only and leaves nothing
behind; an audit event's hash depends on every field; audit cursors that this log did
not issue are refused as ``audit.invalid_cursor``.
"""

from __future__ import annotations

import base64
import functools
import importlib.resources
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from nulabpass import (
    Account,
    Actor,
    AuditEntryPage,
    ConfigurationError,
    InvalidInput,
    NulabPass,
    NulabPassError,
    Outcome,
    load_config,
)
from nulabpass.audit._chain import event_hash
from nulabpass.audit._model import EventRecord, Target
from nulabpass.org._email import normalize_email
from nulabpass.ports import Store
from nulabpass.testing import make_nulabpass

T = TypeVar("T")

FAST = settings(max_examples=150, deadline=None)
DOTTED_CODE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)+")
CANONICAL_EMAIL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9-]+(\.[a-z0-9-]+)+")


def _zone_groups() -> frozenset[str]:
    """Directories of the tz database (``America``, ``Etc``...): names, not zones."""

    def walk(node: Traversable, prefix: str) -> Iterator[str]:
        for child in node.iterdir():
            if child.is_dir():
                yield prefix + child.name
                yield from walk(child, f"{prefix}{child.name}/")

    return frozenset(walk(importlib.resources.files("tzdata.zoneinfo"), ""))


ZONE_GROUPS = _zone_groups()

# -- strategies ------------------------------------------------------------------------------

_local_chars = st.sampled_from(list("abcxyzABCXYZ0189.!#$%&'*+/=?^_`{|}~-@\" \t\n\u00e9"))
_label_chars = st.sampled_from(list("abcxyzABCXYZ0189-\u00e4\u00df\u3002\uff21 \n"))
_labels = st.lists(st.text(_label_chars, max_size=12), min_size=1, max_size=4)
emailish = st.builds(
    lambda lead, local, labels, dot, trail: f"{lead}{local}@{'.'.join(labels)}{dot}{trail}",
    st.sampled_from(["", " ", "\t"]),
    st.text(_local_chars, min_size=0, max_size=20),
    _labels,
    st.sampled_from(["", ".", ".."]),
    st.sampled_from(["", " ", "\n"]),
)
any_email = st.one_of(st.text(max_size=80), emailish)


def _attempt(call: Callable[..., T], *args: Any) -> tuple[T | None, NulabPassError | None]:
    """Call; return its result, or the ``NulabPassError`` it raised (anything else
    propagates and fails the test)."""
    try:
        return call(*args), None
    except NulabPassError as exc:
        return None, exc


def _assert_page_or_invalid_cursor(page: object, error: NulabPassError | None) -> None:
    if error is None:
        assert isinstance(page, AuditEntryPage)
        return
    assert isinstance(error, InvalidInput), error
    assert error.code == "audit.invalid_cursor"


# -- normalize_email -------------------------------------------------------------------------


@FAST
@given(raw=any_email)
@example(raw=" Carol.Sato@EXAMPLE.com. ")
@example(raw="a@stra\u00dfe.de")
@example(raw="a@b@example.com")
def test_normalize_email_returns_a_lowercase_fixed_point_with_one_at_or_raises_invalid_input(
    raw: str,
) -> None:
    # A newline inside the address is covered by the test below.
    assume("\n" not in raw.strip())
    out, error = _attempt(normalize_email, raw)
    if error is not None:
        assert isinstance(error, InvalidInput), error
        assert error.code == "email.invalid"
        return
    assert isinstance(out, str)
    assert normalize_email(out) == out
    assert out == out.lower()
    assert out.count("@") == 1
    assert out.isascii()
    assert len(out) <= 254


@FAST
@given(raw=emailish)
@example(raw="ab\n@example.com")
@example(raw="a@example\n.com")
@example(raw="a@example.COM\n.")
def test_a_normalized_email_address_is_plain_ascii_and_a_fixed_point(raw: str) -> None:
    out, error = _attempt(normalize_email, raw)
    if error is not None:
        return
    assert isinstance(out, str)
    assert CANONICAL_EMAIL.fullmatch(out), out
    assert normalize_email(out) == out


# -- accounts.register -------------------------------------------------------------------------


def _host_events(np: NulabPass) -> list[str]:
    with np.store.transaction() as uow:
        return [e.action for e in uow.audit.iter_chain("host")]


_languages = st.one_of(
    st.none(), st.sampled_from(["en", "ja", "ja-jp", "EN-us", "zh-Hant-TW"]), st.text(max_size=12)
)
_timezones = st.one_of(
    st.none(),
    st.sampled_from(["UTC", "Asia/Tokyo", "America/New_York", "Etc/GMT+9"]),
    st.text(max_size=30),
)


@FAST
@given(
    email=any_email,
    name=st.text(max_size=120),
    language=_languages,
    timezone=_timezones,
)
def test_register_on_arbitrary_text_refuses_only_with_coded_errors_and_leaves_no_account(
    email: str, name: str, language: str | None, timezone: str | None
) -> None:
    # Time zone group names are covered by their own test below.
    assume(timezone not in ZONE_GROUPS)
    np = make_nulabpass()
    account, error = _attempt(
        lambda: np.accounts.register(email, name, language=language, timezone=timezone)
    )
    if error is not None:
        assert DOTTED_CODE.fullmatch(error.code), error.code
        assert error.message
        assert error.public_message
        assert _host_events(np) == []
        normalized, invalid = _attempt(normalize_email, email)
        if invalid is None:
            assert isinstance(normalized, str)
            assert np.accounts.find_by_email(normalized) is None
        return
    assert isinstance(account, Account)
    assert np.accounts.get(account.id) == account
    assert account.email == normalize_email(email)
    assert np.accounts.find_by_email(email) == account
    assert _host_events(np) == ["account.registered"]


@pytest.mark.parametrize("timezone", ["America", "Etc", "US", "America/Argentina"])
def test_register_refuses_a_time_zone_group_name_as_invalid_input(timezone: str) -> None:
    np = make_nulabpass()
    with pytest.raises(InvalidInput) as info:
        np.accounts.register("ann@example.com", "Ann", timezone=timezone)
    assert info.value.code == "account.invalid_timezone"


def test_load_config_refuses_a_time_zone_group_name_as_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(
            secret_key="k" * 40, base_url="https://app.example.test", default_timezone="America"
        )
    assert info.value.code == "config.invalid"


@pytest.mark.parametrize("name", ["\ud800", "Ann \udcff"])
def test_register_refuses_a_display_name_with_a_lone_surrogate_as_invalid_input(
    name: str,
) -> None:
    np = make_nulabpass()
    with pytest.raises(InvalidInput) as info:
        np.accounts.register("ann@example.com", name)
    assert info.value.code == "account.invalid_name"
    assert _host_events(np) == []


def test_register_refuses_a_language_tag_with_a_trailing_newline() -> None:
    np = make_nulabpass()
    with pytest.raises(InvalidInput) as info:
        np.accounts.register("ann@example.com", "Ann", language="en\n")
    assert info.value.code == "account.invalid_language"


# -- audit event hashes ------------------------------------------------------------------------

_ident = st.text(min_size=1, max_size=24)
_hex = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.text(max_size=20))
FIELD_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "id": _ident,
    "scope": _ident,
    "seq": st.integers(1, 2**62),
    "occurred_at": st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.just(UTC),
    ),
    "action": _ident,
    "category": _ident,
    "outcome": st.sampled_from(Outcome),
    "actor_type": _ident,
    "actor_id": _ident,
    "targets": st.lists(st.builds(Target, type=_ident, id=_ident), max_size=3).map(tuple),
    "context": st.dictionaries(_ident, st.text(max_size=20), max_size=3),
    "metadata": st.dictionaries(_ident, _scalar, max_size=4),
    "commitments": st.dictionaries(_ident, _hex, max_size=3),
    "prev_hash": _hex,
}
events = st.builds(EventRecord, hash=_hex, **FIELD_STRATEGIES)


@FAST
@given(event=events, field=st.sampled_from(sorted(FIELD_STRATEGIES)), data=st.data())
def test_the_event_hash_changes_when_any_single_field_changes(
    event: EventRecord, field: str, data: st.DataObject
) -> None:
    before = getattr(event, field)
    after = data.draw(FIELD_STRATEGIES[field].filter(lambda value: value != before), label=field)
    changed = attrs.evolve(event, **{field: after})
    assert event_hash(changed) != event_hash(event)


@FAST
@given(event=events, other=_hex)
def test_the_event_hash_ignores_the_stored_hash_itself(event: EventRecord, other: str) -> None:
    assert event_hash(attrs.evolve(event, hash=other)) == event_hash(event)


@pytest.mark.parametrize(
    ("first", "second"),
    [(1, True), (0, False), (None, False), ("1", 1), ("", None), ("true", True)],
)
def test_metadata_values_that_compare_equal_in_python_still_hash_differently(
    first: str | int | None, second: str | int | None
) -> None:
    base = _fixed_event()
    one = attrs.evolve(base, metadata={"k": first})
    two = attrs.evolve(base, metadata={"k": second})
    assert event_hash(one) != event_hash(two)


def _fixed_event() -> EventRecord:
    return EventRecord(
        id="evt_1",
        scope="org_1",
        seq=1,
        occurred_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        action="member.added",
        category="member",
        outcome=Outcome.SUCCESS,
        actor_type="account",
        actor_id="acc_1",
        targets=(Target("account", "acc_2"),),
        context={},
        metadata={},
        commitments={},
        prev_hash="0" * 64,
        hash="",
    )


# -- audit cursors -----------------------------------------------------------------------------


def _audit_world(store: Store | None = None) -> tuple[NulabPass, Actor, str]:
    np = make_nulabpass(store)
    founder = np.accounts.register("founder@partner.test", "Founder")
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, "Acme")
    np.plans.start_trial(admin, org.id)
    return np, admin, org.id


@functools.cache
def _shared_audit_world() -> tuple[NulabPass, Actor, str]:
    return _audit_world()


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=10,
)
_cursor_like = st.one_of(
    _json,
    st.fixed_dictionaries({"s": _json, "n": _json}),
    st.fixed_dictionaries({"s": st.integers(-3, 2**40), "n": st.booleans()}),
).map(lambda value: _encode(json.dumps(value).encode("utf-8")))


@settings(FAST, suppress_health_check=[HealthCheck.too_slow])
@given(cursor=st.text(max_size=120))
@example(cursor="")
@example(cursor="====")
@example(cursor="eyJzIjoxfQ")
def test_an_arbitrary_audit_cursor_is_refused_as_invalid(cursor: str) -> None:
    np, admin, org_id = _shared_audit_world()
    with pytest.raises(InvalidInput) as info:
        np.audit.query(admin, org_id, cursor=cursor)
    assert info.value.code == "audit.invalid_cursor"


@settings(FAST, suppress_health_check=[HealthCheck.too_slow])
@given(cursor=_cursor_like, newest_first=st.booleans())
def test_a_cursor_shaped_like_ours_reads_a_page_or_is_refused_as_invalid(
    cursor: str, newest_first: bool
) -> None:
    np, admin, org_id = _shared_audit_world()
    page, error = _attempt(
        lambda: np.audit.query(admin, org_id, cursor=cursor, newest_first=newest_first)
    )
    _assert_page_or_invalid_cursor(page, error)


def test_a_cursor_of_deeply_nested_json_is_refused_as_invalid() -> None:
    np, admin, org_id = _shared_audit_world()
    with pytest.raises(InvalidInput) as info:
        np.audit.query(admin, org_id, cursor=_encode(b"[" * 100_000))
    assert info.value.code == "audit.invalid_cursor"


@pytest.mark.parametrize(
    "kind",
    [
        "memory",
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ],
)
@pytest.mark.parametrize("seq", [2**63, 10**30])
def test_a_cursor_beyond_any_stored_sequence_reads_a_page_or_is_refused_as_invalid(
    kind: str, seq: int, request: pytest.FixtureRequest
) -> None:
    store = None if kind == "memory" else request.getfixturevalue("sql_store_factory")(kind)
    np, admin, org_id = _audit_world(store)
    cursor = _encode(json.dumps({"s": seq, "n": True}).encode("utf-8"))
    page, error = _attempt(lambda: np.audit.query(admin, org_id, cursor=cursor))
    _assert_page_or_invalid_cursor(page, error)
