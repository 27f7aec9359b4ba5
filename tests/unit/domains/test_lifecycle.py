"""Re-checks change a verified domain only as the grace-period rules say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nulabpass.domains import Change, DomainChallenge, DomainPolicy, Outcome, reassess
from nulabpass.domains._lifecycle import grace_ends_at

T0 = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
POLICY = DomainPolicy()


def verified() -> DomainChallenge:
    return DomainChallenge(
        domain_id="dom_1",
        org_id="org_1",
        domain="example.com",
        token="t",
        issued_at=T0 - DAY,
        expires_at=T0 + 6 * DAY,
        verified_at=T0 - DAY,
        next_check_at=T0,
    )


def test_a_routine_successful_recheck_changes_nothing_but_the_schedule() -> None:
    after, change = reassess(verified(), Outcome.VERIFIED, T0, POLICY)
    assert change is Change.NONE
    assert after.next_check_at == T0 + POLICY.recheck_interval
    assert after.last_checked_at == T0
    assert after.last_outcome == "verified"


@pytest.mark.parametrize("verdict", [Outcome.ABSENT, Outcome.WRONG_VALUE])
def test_a_missing_record_starts_the_grace_period(verdict: Outcome) -> None:
    after, change = reassess(verified(), verdict, T0, POLICY)
    assert change is Change.RECORD_MISSING
    assert after.missing_since == T0
    assert grace_ends_at(after, POLICY) == T0 + 14 * DAY
    assert after.verified_at is not None
    assert after.next_check_at is not None
    assert T0 < after.next_check_at <= T0 + DAY


def test_a_record_restored_within_grace_is_reported_and_clears_the_grace() -> None:
    missing, _ = reassess(verified(), Outcome.ABSENT, T0, POLICY)
    still, change = reassess(missing, Outcome.ABSENT, T0 + 5 * DAY, POLICY)
    assert change is Change.NONE
    assert still.missing_since == T0
    back, change = reassess(still, Outcome.VERIFIED, T0 + 6 * DAY, POLICY)
    assert change is Change.RESTORED
    assert back.missing_since is None
    assert back.verified_at is not None


def test_a_record_still_missing_after_the_grace_period_lapses_the_domain() -> None:
    missing, _ = reassess(verified(), Outcome.ABSENT, T0, POLICY)
    before_end, change = reassess(
        missing, Outcome.ABSENT, T0 + 14 * DAY - timedelta(seconds=1), POLICY
    )
    assert change is Change.NONE
    lapsed, change = reassess(before_end, Outcome.WRONG_VALUE, T0 + 14 * DAY, POLICY)
    assert change is Change.LAPSED
    assert lapsed.verified_at is None
    assert lapsed.next_check_at is None


def test_indeterminate_answers_inside_the_grace_period_never_change_the_state() -> None:
    challenge = verified()
    for day in range(14):
        challenge, change = reassess(challenge, Outcome.INDETERMINATE, T0 + day * DAY, POLICY)
        assert change is Change.NONE
        assert challenge.missing_since is None
    assert challenge.indeterminate_since == T0


def test_indeterminate_answers_never_lapse_a_missing_record_early() -> None:
    missing, _ = reassess(verified(), Outcome.ABSENT, T0, POLICY)
    flaky, _ = reassess(missing, Outcome.INDETERMINATE, T0 + 10 * DAY, POLICY)
    later, change = reassess(flaky, Outcome.INDETERMINATE, T0 + 20 * DAY, POLICY)
    assert change is Change.NONE
    assert later.verified_at is not None
    _, change = reassess(later, Outcome.INDETERMINATE, T0 + 24 * DAY, POLICY)
    assert change is Change.LAPSED


def test_indeterminate_longer_than_the_grace_period_counts_as_absent() -> None:
    flaky, _ = reassess(verified(), Outcome.INDETERMINATE, T0, POLICY)
    counted, change = reassess(flaky, Outcome.INDETERMINATE, T0 + 14 * DAY, POLICY)
    assert change is Change.RECORD_MISSING
    assert counted.missing_since == T0 + 14 * DAY
    _, change = reassess(counted, Outcome.INDETERMINATE, T0 + 28 * DAY, POLICY)
    assert change is Change.LAPSED


def test_a_definite_answer_ends_an_indeterminate_run() -> None:
    flaky, _ = reassess(verified(), Outcome.INDETERMINATE, T0, POLICY)
    ok, change = reassess(flaky, Outcome.VERIFIED, T0 + DAY, POLICY)
    assert change is Change.NONE
    assert ok.indeterminate_since is None


def test_rechecks_while_missing_never_skip_past_the_end_of_grace() -> None:
    policy = DomainPolicy(grace_period=timedelta(hours=3), missing_recheck_interval=DAY)
    missing, _ = reassess(verified(), Outcome.ABSENT, T0, policy)
    assert missing.next_check_at == T0 + timedelta(hours=3)


def test_policy_values_must_be_positive() -> None:
    with pytest.raises(ValueError, match="grace_period must be positive"):
        DomainPolicy(grace_period=timedelta(0))
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        DomainPolicy(concurrency=0)


@pytest.mark.parametrize("label", ["", "a b", "_x.", "x" * 64, "ü"])
def test_the_record_label_must_be_dns_labels(label: str) -> None:
    with pytest.raises(ValueError, match="record_label"):
        DomainPolicy(record_label=label)


@pytest.mark.parametrize("prefix", ["", "has space=", 'quote"=', "x" * 101])
def test_the_value_prefix_must_be_printable_ascii_without_spaces(prefix: str) -> None:
    with pytest.raises(ValueError, match="value_prefix"):
        DomainPolicy(value_prefix=prefix)


def test_the_record_name_and_value_defaults_follow_the_contract() -> None:
    assert POLICY.record_name("example.com") == "_nulabpass-challenge.example.com"
    assert POLICY.record_value("tok") == "nulabpass-verification=tok"
    custom = DomainPolicy(record_label="_proof", value_prefix="acme=")
    assert custom.record_name("example.com") == "_proof.example.com"
    assert custom.record_value("tok") == "acme=tok"
