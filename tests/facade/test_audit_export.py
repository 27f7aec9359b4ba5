"""Exports: CSV, JSON Lines and OCSF, cut by month, read back and verified offline with
only the public key; exporting is permitted, entitled and itself recorded."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nulabpass import Actor, NulabPass, PermissionDenied, PlanRequired, RequestContext
from nulabpass.audit._formats import CSV_COLUMNS, validate_ocsf
from nulabpass.audit.verifier import AuditVerificationError, verify_export
from nulabpass.testing import (
    FrozenClock,
    MemoryKeyProvider,
)

from .conftest import World

CTX = RequestContext(ip="203.0.113.7", user_agent="Mozilla/5.0 (X11)", product="tracker")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 10, 20, 9, 0, tzinfo=UTC))


def _export(
    np: NulabPass, admin: Actor, org: str, fmt: str, **kw: Any
) -> tuple[str, dict[str, Any]]:
    export = np.audit.export(admin, org, fmt=fmt, **kw)
    text = "".join(export.lines())
    return text, export.manifest()


def _chunks(text: str) -> list[bytes]:
    data = text.encode("utf-8")
    # Odd-sized chunks: lines must be reassembled across chunk boundaries.
    return [data[i : i + 37] for i in range(0, len(data), 37)]


def test_csv_has_the_columns_it_admins_expect_and_verifies_offline(
    world: World, keys: MemoryKeyProvider
) -> None:
    np = world.np
    carol = world.managed("carol")
    np.members.deactivate(world.admin, world.org.id, carol, ctx=CTX)
    text, manifest = _export(np, world.admin, world.org.id, "csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    by_action = {row[4]: dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]}
    row = by_action["managed_account.deactivated"]
    assert row["Operator email"] == "founder@partner.test"
    assert (row["IP address"], row["User agent"], row["Product"]) == (
        "203.0.113.7",
        "Mozilla/5.0 (X11)",
        "tracker",
    )
    assert row["Outcome"] == "success"
    assert carol in row["Target"]
    assert "carol@example.com" in row["Target"]
    assert manifest["count"] == len(rows) - 1
    result = verify_export(_chunks(text), manifest, keys.public_keys())
    assert (result.count, result.file_format, result.events_rechecked) == (
        len(rows) - 1,
        "csv",
        False,
    )
    with pytest.raises(AuditVerificationError) as err:
        verify_export(_chunks(text.replace("success", "failure", 1)), manifest, keys.public_keys())
    assert err.value.code == "audit.export_file_mismatch"


def test_csv_cells_cannot_become_spreadsheet_formulas(world: World) -> None:
    np = world.np
    np.teams.create(
        world.admin, world.org.id, "Ops", ctx=RequestContext(user_agent="=HYPERLINK(1)")
    )
    text, _ = _export(np, world.admin, world.org.id, "csv")
    assert "'=HYPERLINK(1)" in text


def test_json_lines_are_rechecked_event_by_event(world: World, keys: MemoryKeyProvider) -> None:
    np = world.np
    world.managed("carol")
    text, manifest = _export(np, world.admin, world.org.id, "jsonl")
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert verify_export(_chunks(text), manifest, keys.public_keys()).events_rechecked
    lines = text.splitlines(keepends=True)
    dropped = "".join(lines[:2] + lines[3:])
    with pytest.raises(AuditVerificationError):
        verify_export(_chunks(dropped), manifest, keys.public_keys())
    forged_manifest = dict(manifest, count=manifest["count"] + 1)
    with pytest.raises(AuditVerificationError) as err:
        verify_export(_chunks(text), forged_manifest, keys.public_keys())
    assert err.value.code == "audit.manifest_signature_invalid"
    with pytest.raises(AuditVerificationError) as err:
        verify_export(_chunks(text), manifest, MemoryKeyProvider().public_keys())
    assert err.value.code == "audit.manifest_signature_invalid"


def test_ocsf_records_match_their_class_definitions(world: World, keys: MemoryKeyProvider) -> None:
    np = world.np
    carol = world.managed("carol")
    np.members.deactivate(world.admin, world.org.id, carol, ctx=CTX)
    text, manifest = _export(np, world.admin, world.org.id, "ocsf")
    records = [json.loads(line) for line in text.splitlines()]
    for record in records:
        validate_ocsf(record)
    by_action = {r["unmapped"]["action"]: r for r in records}
    change = by_action["managed_account.deactivated"]
    assert (change["class_uid"], change["activity_id"], change["type_uid"]) == (3001, 5, 300105)
    assert change["user"]["uid"] == carol
    assert change["src_endpoint"]["ip"] == "203.0.113.7"
    assert change["actor"]["user"]["email_addr"] == "founder@partner.test"
    team = by_action["team.created"]
    assert (team["class_uid"], team["activity_id"]) == (3004, 1)
    verify_export(_chunks(text), manifest, keys.public_keys())


def test_the_ocsf_check_rejects_a_record_missing_a_required_attribute() -> None:
    record = {
        "activity_id": 5,
        "category_uid": 3,
        "class_uid": 3001,
        "type_uid": 300105,
        "severity_id": 1,
        "status_id": 1,
        "time": 1,
        "metadata": {"version": "1.1.0", "product": {"name": "x"}},
    }
    with pytest.raises(ValueError, match="requires 'user'"):
        validate_ocsf(record)
    with pytest.raises(ValueError, match="type_uid"):
        validate_ocsf({**record, "user": {}, "type_uid": 300106})
    with pytest.raises(ValueError, match="time"):
        validate_ocsf({**record, "user": {}, "time": "yesterday"})


def test_a_month_export_holds_exactly_that_months_events(
    world: World, clock: FrozenClock, keys: MemoryKeyProvider
) -> None:
    np = world.np
    np.plans.upgrade(
        world.admin,
        world.org.id,
        plan_name="pro",
        period_ends_at=datetime(2027, 6, 1, tzinfo=UTC),
        start_now=True,
    )
    clock.set(datetime(2026, 11, 1, 0, 0, tzinfo=UTC))
    np.teams.create(world.admin, world.org.id, "November A")
    clock.advance(days=29, hours=23)
    np.teams.create(world.admin, world.org.id, "November B")
    clock.set(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    np.teams.create(world.admin, world.org.id, "December")
    text, manifest = _export(np, world.admin, world.org.id, "jsonl", month="2026-11")
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["action"] for e in events] == ["team.created", "team.created"]
    assert all(e["occurred_at"].startswith("2026-11") for e in events)
    assert manifest["since"].startswith("2026-11-01")
    assert manifest["until"].startswith("2026-12-01")
    verify_export(_chunks(text), manifest, keys.public_keys())
    empty, empty_manifest = _export(np, world.admin, world.org.id, "csv", month="2025-01")
    assert empty.splitlines()[1:] == []
    assert empty_manifest["count"] == 0
    verify_export(_chunks(empty), empty_manifest, keys.public_keys())


def test_exporting_is_recorded_and_needs_permission_and_the_plan(
    world: World, clock: FrozenClock
) -> None:
    np = world.np
    bob = np.accounts.register("bob@partner.test", "Bob")
    np.members.add(world.admin, world.org.id, bob.id)
    with pytest.raises(PermissionDenied):
        np.audit.export(Actor.account(bob.id), world.org.id)
    np.members.set_privileges(world.admin, world.org.id, bob.id, audit_log_admin=True)
    np.audit.export(Actor.account(bob.id), world.org.id, fmt="ocsf")
    assert world.events()[-1] == "audit.exported"
    clock.advance(days=45)
    with pytest.raises(PlanRequired):
        np.audit.export(world.admin, world.org.id)


def test_an_export_written_to_disk_verifies_from_its_sidecar_manifest(
    world: World, keys: MemoryKeyProvider, tmp_path: Path
) -> None:
    export = world.np.audit.export(world.admin, world.org.id, fmt="csv")
    manifest_path = export.write(tmp_path / "audit.csv")
    manifest = json.loads(manifest_path.read_text())
    with (tmp_path / "audit.csv").open("rb") as f:
        result = verify_export(iter(lambda: f.read(4096), b""), manifest, keys.public_keys())
    assert result.count == manifest["count"] > 0
    assert result.checkpoint.tree_size >= result.count


def test_events_appended_while_exporting_do_not_enter_the_file(
    world: World, keys: MemoryKeyProvider
) -> None:
    np = world.np
    export = np.audit.export(world.admin, world.org.id, fmt="jsonl")
    lines = export.lines()
    first = next(lines)
    np.teams.create(world.admin, world.org.id, "During")
    text = first + "".join(lines)
    assert "During" not in text
    verify_export(_chunks(text), export.manifest(), keys.public_keys())


def test_a_month_must_be_well_formed(world: World) -> None:
    from nulabpass import InvalidInput

    with pytest.raises(InvalidInput) as err:
        world.np.audit.export(world.admin, world.org.id, month="November")
    assert err.value.code == "audit.invalid_period"
    with pytest.raises(InvalidInput) as err:
        world.np.audit.export(world.admin, world.org.id, fmt="xml")
    assert err.value.code == "audit.invalid_format"


def test_queries_filter_by_category(world: World) -> None:
    from nulabpass import InvalidInput

    np = world.np
    np.teams.create(world.admin, world.org.id, "Ops")
    page = np.audit.query(world.admin, world.org.id, category="team")
    assert {e.action for e in page.entries} == {"team.created"}
    none = np.audit.query(world.admin, world.org.id, category="team", actions=["plan.upgraded"])
    assert none.entries == ()
    with pytest.raises(InvalidInput) as err:
        np.audit.query(world.admin, world.org.id, category="weather")
    assert err.value.code == "audit.invalid_category"
