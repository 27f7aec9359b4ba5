"""The SCIM repository behaves alike on every store: filters, sorting and paging compiled
by the SQL store return exactly what the reference evaluation over documents returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
import sqlalchemy as sa

from nulabpass.errors import Conflict, StaleWrite
from nulabpass.org._model import (
    Account,
    AccountStatus,
    Domain,
    DomainStatus,
    Organization,
    OrgSettings,
    Team,
    TeamMember,
)
from nulabpass.plans import PlanRecord
from nulabpass.ports import Store, StoredPlan
from nulabpass.scim import (
    ENTERPRISE_USER,
    GROUP_RESOURCE,
    USER_RESOURCE,
    ScimAddress,
    ScimEmail,
    ScimError,
    ScimGroupRow,
    ScimProfile,
    ScimToken,
    ScimTombstone,
    ScimUserRow,
    ScimValue,
    check_filter,
    check_sort,
    matches,
    parse_filter,
)
from nulabpass.scim._query import ScimQuery, sort_value, user_document

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ORG = "org_a"
OTHER = "org_b"


def _org(org_id: str) -> Organization:
    return Organization(org_id, org_id, OrgSettings(), T0, T0)


def _account(i: int, org_id: str | None, status: AccountStatus = AccountStatus.ACTIVE) -> Account:
    return Account(
        id=f"acc_{i:03d}",
        email=f"user{i:03d}@example.com",
        display_name=f"User {i:03d}",
        language="en" if i % 2 else "ja",
        timezone="UTC",
        status=status,
        managed_by=org_id,
        created_at=T0,
        updated_at=T0,
    )


def _profile(i: int) -> ScimProfile:
    emails = [ScimEmail(f"User{i:03d}@Example.com", "work", True)]
    if i % 3 == 0:
        emails.append(ScimEmail(f"u{i}@home.test", "home"))
    return ScimProfile(
        user_name=f"User{i:03d}@Example.com",
        external_id=f"ext-{i}" if i % 4 else None,
        given_name=["Ann", "bob", "Carl", None][i % 4],
        family_name=f"Family{i % 5}",
        title="Engineer" if i % 2 else "Manager",
        emails=tuple(emails),
        department=["Sales", "R&D", None][i % 3],
        manager_id="acc_001" if i % 5 == 0 else None,
        profile_url=f"https://Profiles.example.com/u{i}" if i % 3 else None,
        phone_numbers=(ScimValue(f"+81 3 0000 {i:04d}", type="work"),) if i % 2 else (),
    )


@pytest.fixture
def populated(store: Store) -> Store:
    with store.transaction() as uow:
        uow.organizations.add(_org(ORG))
        uow.organizations.add(_org(OTHER))
        for i in range(1, 31):
            status = AccountStatus.DEACTIVATED if i % 7 == 0 else AccountStatus.ACTIVE
            uow.accounts.add(_account(i, ORG if i <= 25 else OTHER, status))
            uow.scim.add_user(
                ScimUserRow(
                    ORG if i <= 25 else OTHER,
                    f"acc_{i:03d}",
                    _profile(i),
                    T0 + timedelta(minutes=i),
                    T0 + timedelta(minutes=i),
                )
            )
        # A non-managed account: the store refuses it SCIM attributes (see below).
        uow.accounts.add(_account(99, None))
        for name in ("Eng", "Sales", "ops"):
            uow.teams.add(Team(f"team_{name.lower()}", ORG, name, T0, T0))
        for i in (1, 2, 3, 99):
            uow.teams.add_member(TeamMember("team_eng", f"acc_{i:03d}", T0))
        uow.scim.put_group(ScimGroupRow(ORG, "team_sales", "grp-ext-1", T0))
    return store


FILTERS = [
    'userName eq "user007@example.com"',
    'userName eq "USER007@EXAMPLE.COM"',
    'userName sw "user00"',
    'userName ew "5@example.com"',
    'userName co "01"',
    'userName gt "user020@example.com"',
    'userName ne "user001@example.com"',
    'externalId eq "ext-5"',
    'externalId eq "EXT-5"',
    "externalId pr",
    "not (externalId pr)",
    'name.givenName eq "BOB"',
    "name.givenName pr",
    'title eq "engineer" and active eq true',
    "active eq false",
    'active eq "False"',
    'emails[type eq "home" and value co "@home.test"]',
    'emails[type eq "work" and value co "@example.com"]',
    'emails[type eq "WORK"]',
    'title ne "ENGINEER"',
    'emails.value ew "home.test"',
    'emails co "u12@"',
    "emails[primary eq true]",
    f'{ENTERPRISE_USER}:department eq "r&d"',
    f'{ENTERPRISE_USER}:department pr or title eq "Manager"',
    f'{ENTERPRISE_USER}:manager.value eq "acc_001"',
    'meta.created gt "2026-03-01T00:10:00Z"',
    'meta.lastModified le "2026-03-01T00:05:00Z"',
    'displayName co "user 01"',
    'preferredLanguage eq "JA"',
    'id eq "acc_003"',
    'id eq "ACC_003"',
    'not (title eq "Engineer" or name.familyName eq "Family1")',
    'userName co "%" or userName co "_0"',
    'profileUrl sw "https://profiles.example.com/u1"',
    'profileUrl pr and not (title eq "Manager")',
]


def _reference(store: Store, query: ScimQuery) -> tuple[int, tuple[str, ...]]:
    with store.transaction() as uow:
        docs = []
        for i in range(1, 26):
            account = uow.accounts.get(f"acc_{i:03d}")
            row = uow.scim.get_user(ORG, f"acc_{i:03d}")
            assert account is not None
            assert row is not None
            docs.append((account.id, user_document(account, row)))
    hits = [d for d in docs if query.filter is None or matches(query.filter, d[1], USER_RESOURCE)]
    hits.sort(key=lambda h: h[0])
    if query.sort_by is not None:
        path = query.sort_by
        present = [h for h in hits if sort_value(h[1], path, USER_RESOURCE) is not None]
        missing = [h for h in hits if sort_value(h[1], path, USER_RESOURCE) is None]
        present.sort(key=lambda h: sort_value(h[1], path, USER_RESOURCE), reverse=query.descending)
        hits = present + missing
    start = query.start_index - 1
    return len(hits), tuple(h[0] for h in hits[start : start + query.count])


@pytest.mark.parametrize("text", FILTERS)
def test_every_filter_returns_what_the_reference_evaluation_returns(
    populated: Store, text: str
) -> None:
    query = ScimQuery(ORG, check_filter(parse_filter(text), USER_RESOURCE), count=100)
    with populated.transaction() as uow:
        page = uow.scim.query_users(query)
    assert (page.total, page.ids) == _reference(populated, query)


def test_the_filters_select_different_non_empty_subsets(populated: Store) -> None:
    results = set()
    for text in FILTERS:
        query = ScimQuery(ORG, check_filter(parse_filter(text), USER_RESOURCE), count=100)
        _total, ids = _reference(populated, query)
        results.add(ids)
    assert len(results) > len(FILTERS) // 2
    assert () in results
    assert any(0 < len(r) < 25 for r in results)


@pytest.mark.parametrize(
    ("sort_by", "descending", "start", "count"),
    [
        ("userName", False, 1, 10),
        ("userName", True, 5, 7),
        ("name.givenName", False, 1, 25),
        ("title", True, 20, 10),
        ("meta.created", True, 1, 3),
        (f"{ENTERPRISE_USER}:department", False, 10, 10),
        ("profileUrl", True, 1, 25),
    ],
)
def test_sorting_and_paging_match_the_reference(
    populated: Store, sort_by: str, descending: bool, start: int, count: int
) -> None:
    query = ScimQuery(
        ORG, None, check_sort(sort_by, USER_RESOURCE), descending, start_index=start, count=count
    )
    with populated.transaction() as uow:
        page = uow.scim.query_users(query)
    total, ids = _reference(populated, query)
    assert page.total == total == 25
    assert page.ids == ids


def test_a_count_of_zero_returns_only_the_total(populated: Store) -> None:
    with populated.transaction() as uow:
        page = uow.scim.query_users(ScimQuery(ORG, None, count=0))
    assert (page.total, page.ids) == (25, ())


def test_users_of_another_organization_and_non_managed_accounts_are_invisible(
    populated: Store,
) -> None:
    """A row for an account the organization does not manage cannot be written, so no
    query of the organization can see one."""
    for org_id, account_id in ((ORG, "acc_099"), (ORG, "acc_026"), (OTHER, "acc_001")):
        with pytest.raises(Conflict) as info, populated.transaction() as uow:
            uow.scim.add_user(ScimUserRow(org_id, account_id, _profile(99), T0, T0))
        assert info.value.code == "scim.account_not_managed"
    query = ScimQuery(
        ORG, check_filter(parse_filter('userName eq "user026@example.com"'), USER_RESOURCE)
    )
    with populated.transaction() as uow:
        assert uow.scim.get_user(ORG, "acc_099") is None
        assert uow.scim.query_users(query).total == 0
        assert uow.scim.query_users(ScimQuery(OTHER)).total == 5
        assert uow.scim.query_users(ScimQuery(ORG)).total == 25
        hidden = ScimQuery(ORG, check_filter(parse_filter('id eq "acc_099"'), USER_RESOURCE))
        assert uow.scim.query_users(hidden).total == 0


def test_an_account_with_scim_attributes_is_neither_released_nor_deleted(
    populated: Store,
) -> None:
    """While its SCIM row exists, the account keeps its manager and its row; once the row
    is deleted, both changes go through."""
    with populated.transaction() as uow:
        account = uow.accounts.get("acc_003")
    assert account is not None
    with pytest.raises(Conflict) as info, populated.transaction() as uow:
        uow.accounts.update(attrs.evolve(account, managed_by=None))
    assert info.value.code == "account.scim_provisioned"
    with pytest.raises(Conflict) as info, populated.transaction() as uow:
        uow.accounts.delete("acc_003")
    assert info.value.code == "account.in_use"
    with populated.transaction() as uow:
        assert uow.accounts.get("acc_003") == account
        assert uow.scim.get_user(ORG, "acc_003") is not None
        uow.scim.delete_user(ORG, "acc_003")
        released = uow.accounts.update(attrs.evolve(account, managed_by=None))
        assert released.managed_by is None
        assert uow.scim.query_users(ScimQuery(ORG)).total == 24


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('displayName eq "eng"', ("team_eng",)),
        ('externalId eq "grp-ext-1"', ("team_sales",)),
        ('members[value eq "acc_002"]', ("team_eng",)),
        ('members.value eq "acc_099"', ()),
        ('displayName sw "o" or displayName sw "S"', ("team_ops", "team_sales")),
        ("not (externalId pr)", ("team_eng", "team_ops")),
    ],
)
def test_group_filters_see_teams_and_only_managed_members(
    populated: Store, text: str, expected: tuple[str, ...]
) -> None:
    query = ScimQuery(ORG, check_filter(parse_filter(text), GROUP_RESOURCE))
    with populated.transaction() as uow:
        assert uow.scim.query_groups(query).ids == expected


def test_groups_sort_by_display_name(populated: Store) -> None:
    query = ScimQuery(ORG, None, check_sort("displayName", GROUP_RESOURCE), True)
    with populated.transaction() as uow:
        assert uow.scim.query_groups(query).ids == ("team_sales", "team_ops", "team_eng")


def test_members_and_groups_of_an_account_list_managed_accounts_only(populated: Store) -> None:
    with populated.transaction() as uow:
        assert [m.id for m in uow.scim.managed_members(ORG, "team_eng")] == [
            "acc_001",
            "acc_002",
            "acc_003",
        ]
        assert [t.id for t in uow.scim.groups_of(ORG, "acc_002")] == ["team_eng"]
        assert uow.scim.managed_ids(ORG, ["acc_001", "acc_026", "acc_099", "nope"]) == {"acc_001"}


def test_user_rows_round_trip_and_updates_check_versions(populated: Store) -> None:
    with populated.transaction() as uow:
        row = uow.scim.get_user(ORG, "acc_003")
        assert row is not None
        assert row.profile == _profile(3)
        changed = uow.scim.update_user(
            attrs.evolve(row, profile=attrs.evolve(row.profile, emails=(), title="CTO"))
        )
        assert changed.version == 2
        with pytest.raises(StaleWrite):
            uow.scim.update_user(row)
        with pytest.raises(Conflict):
            uow.scim.add_user(row)
    with populated.transaction() as uow:
        again = uow.scim.get_user(ORG, "acc_003")
        assert again is not None
        assert again.profile.emails == ()
        assert again.profile.title == "CTO"
        uow.scim.delete_user(ORG, "acc_003")
        uow.scim.add_tombstone(ScimTombstone(ORG, "acc_003", "x@example.com", None, T0))
    with populated.transaction() as uow:
        assert uow.scim.get_user(ORG, "acc_003") is None
        assert uow.scim.get_tombstone(ORG, "acc_003") == ScimTombstone(
            ORG, "acc_003", "x@example.com", None, T0
        )


def test_an_update_of_a_loaded_user_sets_only_what_changed(populated: Store) -> None:
    """A user loaded in the transaction is updated with its changed columns only (the
    userName's index is not rewritten when the userName stays), on every store alike."""
    bind = getattr(populated, "bind", None)
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    if bind is not None:
        sa.event.listen(bind, "before_cursor_execute", record)
    try:
        with populated.transaction() as uow:
            ((_, row),) = uow.scim.load_users(ORG, ["acc_004"])
            uow.scim.update_user(
                attrs.evolve(row, profile=attrs.evolve(row.profile, title="CFO")),
                emails_changed=False,
            )
    finally:
        if bind is not None:
            sa.event.remove(bind, "before_cursor_execute", record)
    with populated.transaction() as uow:
        again = uow.scim.get_user(ORG, "acc_004")
    assert again is not None
    assert again.profile == attrs.evolve(_profile(4), title="CFO")
    if bind is not None:
        (update,) = [s for s in seen if s.lstrip().upper().startswith("UPDATE")]
        assert "title" in update.split(" WHERE ")[0]
        assert "user_name_key" not in update.split(" WHERE ")[0]


def test_a_failed_transaction_leaves_no_scim_rows(populated: Store) -> None:
    def fail() -> None:
        with populated.transaction() as uow:
            uow.scim.delete_user(ORG, "acc_004")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    with populated.transaction() as uow:
        assert uow.scim.get_user(ORG, "acc_004") is not None


def test_tokens_are_stored_listed_and_updated_with_versions(populated: Store) -> None:
    token = ScimToken("sct_1", ORG, "Okta", "ab" * 32, T0, "acc_001")
    with populated.transaction() as uow:
        uow.scim.add_token(token)
        uow.scim.add_token(attrs.evolve(token, id="sct_2", created_at=T0 + timedelta(1)))
        revoked = uow.scim.update_token(attrs.evolve(token, revoked_at=T0))
        assert revoked.version == 2
        assert not revoked.active
        with pytest.raises(StaleWrite):
            uow.scim.update_token(token)
    with populated.transaction() as uow:
        assert [t.id for t in uow.scim.list_tokens(ORG)] == ["sct_1", "sct_2"]
        assert uow.scim.get_token("sct_1") == revoked
        assert uow.scim.list_tokens(OTHER) == []


def test_token_use_is_recorded_only_when_the_stored_time_is_stale(populated: Store) -> None:
    token = ScimToken("sct_1", ORG, "Okta", "ab" * 32, T0, "acc_001")
    later = T0 + timedelta(seconds=30)
    with populated.transaction() as uow:
        uow.scim.add_token(token)
        assert uow.scim.record_token_use("sct_1", T0, stale_before=T0)
        assert not uow.scim.record_token_use("sct_1", later, stale_before=T0 - timedelta(1))
        assert not uow.scim.record_token_use("sct_unknown", later, stale_before=later)
    with populated.transaction() as uow:
        stored = uow.scim.get_token("sct_1")
        assert stored is not None
        assert stored.last_used_at == T0
        assert stored.version == 1
        assert uow.scim.record_token_use("sct_1", later, stale_before=later)
        # Revoking with a copy read before the use keeps the recorded use.
        revoked = uow.scim.update_token(attrs.evolve(stored, revoked_at=later))
        assert revoked.version == 2
    with populated.transaction() as uow:
        final = uow.scim.get_token("sct_1")
        assert final is not None
        assert final.last_used_at == later
        assert final.revoked_at == later


def test_the_multi_valued_attributes_round_trip(populated: Store) -> None:
    full = attrs.evolve(
        _profile(7),
        profile_url="https://profiles.example.com/u7",
        phone_numbers=(
            ScimValue("+81 3 1234 5678", type="work", primary=True),
            ScimValue("+81 90 0000 0000", type="mobile"),
        ),
        ims=(ScimValue("u7@xmpp.example", type="xmpp"),),
        photos=(ScimValue("https://photos.example.com/u7.jpg", type="photo"),),
        addresses=(
            ScimAddress(
                street_address="1-2-3 Shibuya",
                locality="Shibuya-ku",
                region="Tokyo",
                postal_code="150-0002",
                country="JP",
                type="work",
                primary=True,
            ),
        ),
        entitlements=(ScimValue("beta-features", display="Beta"),),
        roles=(ScimValue("admin", primary=True), ScimValue("auditor")),
        x509_certificates=(ScimValue("MIIB", display="laptop"),),
    )
    with populated.transaction() as uow:
        row = uow.scim.get_user(ORG, "acc_007")
        assert row is not None
        uow.scim.update_user(attrs.evolve(row, profile=full))
    with populated.transaction() as uow:
        again = uow.scim.get_user(ORG, "acc_007")
        assert again is not None
        assert again.profile == full
        [(_account_row, loaded)] = uow.scim.load_users(ORG, ["acc_007"])
        assert loaded.profile == full
        cleared = uow.scim.update_user(attrs.evolve(again, profile=_profile(7)))
    with populated.transaction() as uow:
        assert uow.scim.get_user(ORG, "acc_007") == cleared


def test_a_store_refuses_to_filter_an_attribute_it_has_no_column_for(populated: Store) -> None:
    from nulabpass.scim import AttrPath, Compare

    query = ScimQuery(ORG, Compare(AttrPath("nickName", "x"), "eq", "y"))
    with populated.transaction() as uow:
        if type(uow.scim).__name__.startswith("Memory"):
            # The memory store evaluates documents: an unknown path simply never matches.
            assert uow.scim.query_users(query).total == 0
            return
        with pytest.raises(ScimError) as info:
            uow.scim.query_users(query)
    assert info.value.scim_type == "invalidFilter"


def test_a_token_is_read_with_its_organizations_provisioning_facts(populated: Store) -> None:
    """token_and_facts answers get_token and provisioning_facts of the token's
    organization (with a plan and domains, and without), and None for no token."""
    with populated.transaction() as uow:
        uow.scim.add_token(ScimToken("sct_1", ORG, "Okta", "ab" * 32, T0, "acc_001"))
        uow.scim.add_token(ScimToken("sct_2", OTHER, "Okta", "cd" * 32, T0, "acc_001"))
        for ident, name, status in (
            ("dom_1", "zeta.test", DomainStatus.VERIFIED),
            ("dom_2", "alpha.test", DomainStatus.PENDING),
        ):
            uow.domains.add(Domain(ident, ORG, name, status, False, T0, T0))
        uow.plans.add(
            StoredPlan(
                ORG,
                PlanRecord(
                    trial_started_at=T0, trial_ends_at=T0 + timedelta(days=30), last_event_at=T0
                ),
                next_due_at=T0,
            )
        )
    with populated.transaction() as uow:
        for token_id in ("sct_1", "sct_2"):
            token = uow.scim.get_token(token_id)
            assert token is not None
            assert uow.scim.token_and_facts(token_id) == (
                token,
                (
                    uow.organizations.get(token.org_id),
                    uow.domains.list_for_org(token.org_id),
                    uow.plans.get(token.org_id),
                ),
            )
        assert uow.scim.token_and_facts("sct_unknown") is None
        org, domains, plan = uow.scim.provisioning_facts(ORG)
        assert org is not None
        assert plan is not None
        assert [d.name for d in domains] == ["alpha.test", "zeta.test"]
