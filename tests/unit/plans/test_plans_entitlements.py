"""The entitlement table, cell by cell, and the seat limits."""

from __future__ import annotations

import itertools

import pytest

from nulabpass.errors import InvalidInput, PlanRequired, SeatLimitExceeded
from nulabpass.plans import (
    ENTITLEMENTS,
    SEAT_LIMITED,
    Capability,
    PlanState,
    entitled,
    granted,
    require,
    require_seat,
)

C, S = Capability, PlanState

# The issue's table, typed in again so that a change to the package's table fails here.
STATES = (S.NONE, S.TRIALING, S.TRIAL_EXPIRED, S.ACTIVE, S.SUSPENDED, S.CANCELING, S.ENDED)
ISSUE_TABLE: dict[Capability, str] = {
    #                    none trialing expired active suspended canceling ended
    C.SIGN_IN: "no yes no yes yes yes no",
    C.MANAGE_ACCOUNTS: "no yes no yes no yes no",
    C.CONFIGURE_SSO: "no yes no yes no yes no",
    C.READ_AUDIT: "no yes no yes no yes no",
    C.RECORD_AUDIT: "yes yes yes yes yes yes yes",
}
EXPECTED: dict[tuple[Capability, PlanState], bool] = {
    (capability, state): word == "yes"
    for capability, row in ISSUE_TABLE.items()
    for state, word in zip(STATES, row.split(), strict=True)
}
CELLS = sorted(EXPECTED)


@pytest.mark.parametrize(("capability", "state"), CELLS, ids=[f"{c}-{s}" for c, s in CELLS])
def test_every_cell_of_the_entitlement_table_matches_the_issue(
    capability: Capability, state: PlanState
) -> None:
    """With seats to spare, entitled() answers exactly the issue's table."""
    expected = EXPECTED[capability, state]
    assert ENTITLEMENTS[capability][state] is expected
    assert entitled(state, capability, managed_count=3, seats=None) is expected
    assert entitled(state, capability, managed_count=3, seats=3) is expected
    assert (capability in granted(state, managed_count=3, seats=None)) is expected


@pytest.mark.parametrize(("capability", "state"), CELLS, ids=[f"{c}-{s}" for c, s in CELLS])
def test_require_raises_plan_required_exactly_where_the_table_says_no(
    capability: Capability, state: PlanState
) -> None:
    """Denied cells raise PlanRequired with a per-capability code; allowed cells pass."""
    if EXPECTED[capability, state]:
        require(state, capability, managed_count=0, seats=None)
        return
    with pytest.raises(PlanRequired) as err:
        require(state, capability, managed_count=0, seats=None)
    assert type(err.value) is PlanRequired
    assert err.value.code == f"plan.required.{capability}"
    assert err.value.details == {"state": str(state), "capability": str(capability)}


@pytest.mark.parametrize(
    ("capability", "state"),
    [c for c in CELLS if EXPECTED[c]],
    ids=[f"{c}-{s}" for c, s in CELLS if EXPECTED[c, s]],
)
def test_over_seats_the_management_rows_are_withdrawn_and_sign_in_stays(
    capability: Capability, state: PlanState
) -> None:
    """More managed accounts than seats: management stops as when suspended."""
    withdrawn = capability in {C.MANAGE_ACCOUNTS, C.CONFIGURE_SSO, C.READ_AUDIT}
    assert entitled(state, capability, managed_count=4, seats=3) is not withdrawn
    if withdrawn:
        with pytest.raises(SeatLimitExceeded) as err:
            require(state, capability, managed_count=4, seats=3)
        assert err.value.code == "plan.over_seat_limit"
        assert "4 managed accounts" in err.value.message
        assert "3 seats" in err.value.message
        assert "release 1 managed account" in err.value.message
    else:
        require(state, capability, managed_count=4, seats=3)


def test_the_seat_limited_capabilities_are_the_management_rows() -> None:
    """Sign-in and recording audit events never depend on a seat count."""
    assert {C.MANAGE_ACCOUNTS, C.CONFIGURE_SSO, C.READ_AUDIT} == SEAT_LIMITED


def test_the_denial_message_tells_the_admin_what_to_do() -> None:
    """An expired trial's message says to upgrade, and to what end."""
    with pytest.raises(PlanRequired) as err:
        require(S.TRIAL_EXPIRED, C.MANAGE_ACCOUNTS, managed_count=0, seats=None)
    assert err.value.message == (
        "the organization's trial has expired; upgrade to a paid plan to manage managed "
        "accounts, conversions and teams"
    )


@pytest.mark.parametrize(
    ("state", "phrase"),
    [
        (S.NONE, "start the free trial or upgrade"),
        (S.TRIAL_EXPIRED, "trial has expired; upgrade"),
        (S.SUSPENDED, "a payment failed; update the payment details"),
        (S.ENDED, "plan has ended; upgrade"),
    ],
)
def test_each_denying_state_explains_itself(state: PlanState, phrase: str) -> None:
    """The reason and the remedy depend on the state."""
    with pytest.raises(PlanRequired) as err:
        require(state, C.READ_AUDIT, managed_count=0, seats=None)
    assert phrase in err.value.message
    assert "read and export audit logs" in err.value.message


def test_a_denial_comes_before_a_seat_problem() -> None:
    """An ended plan is reported as ended even when it is also over its seats."""
    with pytest.raises(PlanRequired) as err:
        require(S.ENDED, C.MANAGE_ACCOUNTS, managed_count=9, seats=1)
    assert type(err.value) is PlanRequired


@pytest.mark.parametrize(
    ("managed_count", "seats", "adding", "fits"),
    [
        (9, 10, 1, True),
        (10, 10, 1, False),
        (10, 10, 0, True),
        (7, 10, 3, True),
        (7, 10, 4, False),
        (12, 10, 1, False),
        (10_000, None, 500, True),
    ],
)
def test_require_seat_refuses_exactly_when_the_new_accounts_would_not_fit(
    managed_count: int, seats: int | None, adding: int, fits: bool
) -> None:
    """managed_count + adding may equal the seats, never exceed them."""
    if fits:
        require_seat(managed_count, seats, adding)
        return
    with pytest.raises(SeatLimitExceeded) as err:
        require_seat(managed_count, seats, adding)
    assert err.value.code == "plan.seat_limit"
    assert err.value.details["seats"] == str(seats)
    assert "add seats" in err.value.message


@pytest.mark.parametrize(("managed_count", "adding"), [(-1, 1), (0, -1), (True, 1)])
def test_require_seat_refuses_impossible_counts(managed_count: int, adding: int) -> None:
    """Negative or boolean counts are a caller bug, not a seat question."""
    with pytest.raises(InvalidInput):
        require_seat(managed_count, 5, adding)


def test_entitled_refuses_a_negative_managed_count() -> None:
    """A negative count would make every seat check pass; it is refused instead."""
    with pytest.raises(InvalidInput):
        entitled(S.ACTIVE, C.MANAGE_ACCOUNTS, managed_count=-1, seats=5)


def test_the_table_has_a_value_for_every_capability_and_state() -> None:
    """No cell is missing, so no check can fall through."""
    assert set(ENTITLEMENTS) == set(Capability)
    for capability, state in itertools.product(Capability, PlanState):
        assert isinstance(ENTITLEMENTS[capability][state], bool)
