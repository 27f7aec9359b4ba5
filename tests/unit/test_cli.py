"""The ``nulabpass`` command: help, demo, migrations, audit verification, plan status
and its exit codes (0 success, 1 a verification found a problem, 2 usage, 3 an error
reported by nulabpass)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from nulabpass import cli
from nulabpass.stores.sql import SqlStore

DEMO_STEPS = [
    "An IT admin signs up with a regular (non-managed) account",
    "She creates the organization",
    "She starts the 30-day free trial",
    "She verifies the company's email domain",
    "She configures SAML single sign-on with the IdP's metadata",
    "She creates a team",
    "She creates a managed account in the team: an invitation is emailed",
    "Carol opens the link and accepts",
    "Carol signs in through SAML (SP-initiated)",
    "The IdP provisions Dan through SCIM 2.0",
    "The break-glass rule protects the organization",
    "Aiko upgrades to a paid plan with 10 seats during the trial",
    "Carol leaves the company: her account is deactivated",
    "Aiko reads the audit log",
    "A signed checkpoint lets an auditor check an event offline",
    "The chain is verified",
]

STEP_LINE = re.compile(r"^== Step (\d+)\. (.+)$", re.MULTILINE)


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _usage_exit(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[object, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    return exit_info.value.code, capsys.readouterr().err


def _json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _org_scope(path: Path) -> str:
    engine = sa.create_engine(_url(path))
    try:
        with engine.connect() as conn:
            scopes = conn.execute(
                sa.text("SELECT DISTINCT scope FROM nulabpass_audit_events WHERE scope <> 'host'")
            ).scalars()
            (scope,) = list(scopes)
    finally:
        engine.dispose()
    return str(scope)


def _tamper_action(path: Path, scope: str, seq: int) -> None:
    engine = sa.create_engine(_url(path))
    try:
        with engine.begin() as conn:
            changed = conn.execute(
                sa.text(
                    "UPDATE nulabpass_audit_events SET action = 'organization.renamed' "
                    "WHERE scope = :scope AND seq = :seq"
                ),
                {"scope": scope, "seq": seq},
            ).rowcount
    finally:
        engine.dispose()
    assert changed == 1


@pytest.fixture(autouse=True)
def _no_database_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NULABPASS_DATABASE_URL", raising=False)


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A database the demo walked through once, and what the demo printed."""
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    out = _capture_demo(path)
    return path, out


def _capture_demo(path: Path) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cli.main(["demo", "--db", _url(path)]) == 0
    return buffer.getvalue()


@pytest.fixture
def demo_db(demo_template: tuple[Path, str], tmp_path: Path) -> Path:
    """A private copy of the demo's database."""
    source, _out = demo_template
    path = tmp_path / "demo.sqlite3"
    shutil.copy(source, path)
    return path


# -- help and usage errors ----------------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The commands a parser declares, by name (the ground truth help must show)."""
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    return set(_subparsers(parser))


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nulabpass")
    listed = set(re.findall(r"^    (\w+)\s", out, re.MULTILINE))
    assert {"demo", "db", "audit", "plans"} <= listed
    assert listed == _subcommands(cli.build_parser())


@pytest.mark.parametrize(
    ("command", "actions"),
    [(["db"], {"upgrade", "current"}), (["audit"], {"verify"}), (["plans"], {"status"})],
)
def test_help_of_each_group_lists_its_actions(
    command: list[str], actions: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    listed = set(re.findall(r"^    (\w+)\s", out, re.MULTILINE))
    assert actions <= listed
    assert listed == _subcommands(_subparsers(cli.build_parser())[command[0]])


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["db"],
        ["db", "upgrade"],
        ["db", "downgrade", "--db", "sqlite://"],
        ["audit", "verify"],
        ["plans", "status", "--db", "sqlite://"],
        ["demo", "--language", "fr"],
        ["demo", "--unknown-flag"],
    ],
    ids=lambda argv: " ".join(argv) or "no-arguments",
)
def test_usage_errors_exit_2_with_a_usage_message(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _usage_exit(argv, capsys)
    assert code == 2
    assert "usage: nulabpass" in err


# -- demo -----------------------------------------------------------------------------------


def test_demo_prints_every_step_in_order_and_a_verified_chain(
    demo_template: tuple[Path, str],
) -> None:
    path, out = demo_template
    steps = STEP_LINE.findall(out)
    assert [int(n) for n, _ in steps] == list(range(1, len(DEMO_STEPS) + 1))
    assert [title for _, title in steps] == DEMO_STEPS
    assert "ok=True" in out
    assert "refused [member.break_glass]" in out
    assert out.rstrip().endswith(f"The demo database is {_url(path)}")


def test_demo_without_db_creates_a_new_sqlite_file_and_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "default" / "demo.sqlite3"
    path.parent.mkdir()
    monkeypatch.setattr(cli, "default_demo_path", lambda: path)
    code, out, _err = _run(["demo", "--language", "ja"], capsys)
    assert code == 0
    assert path.exists()
    assert out.rstrip().endswith(f"The demo database is {_url(path)}")
    assert "ok=True" in out


# -- migrations ----------------------------------------------------------------------------


def test_db_upgrade_then_current_print_the_head_revision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tmp_path / "fresh.sqlite3")
    head = SqlStore.head_revision()
    assert _run(["db", "current", "--db", url], capsys)[:2] == (0, "(no migrations applied)\n")
    assert _run(["db", "upgrade", "--db", url], capsys)[:2] == (0, f"{head}\n")
    assert _run(["db", "current", "--db", url], capsys)[:2] == (0, f"{head}\n")
    # Upgrading an up-to-date database changes nothing.
    assert _run(["db", "upgrade", "--db", url], capsys)[:2] == (0, f"{head}\n")


def test_the_database_url_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tmp_path / "env.sqlite3")
    monkeypatch.setenv("NULABPASS_DATABASE_URL", url)
    assert _run(["db", "upgrade"], capsys)[:2] == (0, f"{SqlStore.head_revision()}\n")
    assert (tmp_path / "env.sqlite3").exists()


# -- audit verify --------------------------------------------------------------------------


def test_audit_verify_of_the_demo_database_prints_one_sound_chain_per_line(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = _org_scope(demo_db)
    code, out, err = _run(["audit", "verify", "--db", _url(demo_db)], capsys)
    assert (code, err) == (0, "")
    lines = _json_lines(out)
    assert sorted(str(line["organization"]) for line in lines) == sorted(["host", org])
    for line in lines:
        assert line["ok"] is True
        assert line["first_broken_seq"] is None
        assert line["problem"] is None
        assert line["events_checked"] == line["head_seq"]
    (org_line,) = (line for line in lines if line["organization"] == org)
    assert isinstance(org_line["events_checked"], int)
    # The walk-through records at least one event per step after the sign-up.
    assert org_line["events_checked"] >= len(DEMO_STEPS) - 1


def test_audit_verify_names_the_first_tampered_event_and_exits_1(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = _org_scope(demo_db)
    _tamper_action(demo_db, org, 3)
    code, out, _err = _run(["audit", "verify", "--db", _url(demo_db)], capsys)
    assert code == 1
    by_scope = {line["organization"]: line for line in _json_lines(out)}
    assert by_scope["host"]["ok"] is True
    broken = by_scope[org]
    assert broken["ok"] is False
    assert broken["first_broken_seq"] == 3
    assert broken["problem"] == "audit.hash_mismatch"
    assert broken["events_checked"] == 2
    assert isinstance(broken["first_broken_event"], str)
    assert str(broken["first_broken_event"]).startswith("evt")


def test_audit_verify_of_named_chains_prints_only_those(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = _org_scope(demo_db)
    code, out, _err = _run(["audit", "verify", "--db", _url(demo_db), org], capsys)
    assert code == 0
    assert [line["organization"] for line in _json_lines(out)] == [org]
    _tamper_action(demo_db, org, 3)
    code, out, _err = _run(["audit", "verify", "--db", _url(demo_db), "host"], capsys)
    assert code == 0
    assert [line["organization"] for line in _json_lines(out)] == ["host"]


# -- errors reported by nulabpass ---------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["audit", "verify"], ["audit", "verify", "org_x"], ["plans", "status", "org_x"]],
    ids=["verify-all", "verify-one", "plans-status"],
)
def test_an_unmigrated_database_exits_3_naming_the_error_code(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run([*argv, "--db", _url(tmp_path / "empty.sqlite3")], capsys)
    assert code == 3
    assert out == ""
    assert err.startswith("error [store.not_migrated]: ")
    assert err.count("\n") == 1


# -- plans status ----------------------------------------------------------------------------


def test_plans_status_prints_the_demo_organizations_plan(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = _org_scope(demo_db)
    code, out, _err = _run(["plans", "status", "--db", _url(demo_db), org], capsys)
    assert code == 0
    (status,) = _json_lines(out)
    assert status["organization"] == org
    assert status["state"] == "active"
    assert status["plan_name"] == "business"
    assert status["seats"] == 10
    assert status["managed_accounts"] == 2
    assert "manage_accounts" in status["capabilities"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["org_missing"], "organization.not_found"),
        (["ORG", "--now", "yesterday"], "cli.invalid_time"),
        (["ORG", "--now", "2026-12-04T09:00:00"], "cli.invalid_time"),
    ],
    ids=["unknown-org", "not-a-time", "naive-time"],
)
def test_plans_status_errors_exit_3_naming_the_code(
    args: list[str], code: str, demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = _org_scope(demo_db)
    argv = ["plans", "status", "--db", _url(demo_db), *(org if a == "ORG" else a for a in args)]
    exit_code, out, err = _run(argv, capsys)
    assert exit_code == 3
    assert out == ""
    assert err.startswith(f"error [{code}]: ")


# -- as a separate process -------------------------------------------------------------------


def _process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the interpreter running the tests
        [sys.executable, "-m", "nulabpass.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "NULABPASS_DATABASE_URL"},
    )


def test_the_command_runs_as_a_process_with_the_documented_exit_codes(demo_db: Path) -> None:
    helped = _process("--help")
    assert helped.returncode == 0
    assert "demo" in helped.stdout
    assert "audit" in helped.stdout

    verified = _process("audit", "verify", "--db", _url(demo_db))
    assert verified.returncode == 0, verified.stderr
    assert all(line["ok"] is True for line in _json_lines(verified.stdout))

    org = _org_scope(demo_db)
    _tamper_action(demo_db, org, 3)
    tampered = _process("audit", "verify", "--db", _url(demo_db), org)
    assert tampered.returncode == 1
    (line,) = _json_lines(tampered.stdout)
    assert (line["first_broken_seq"], line["problem"]) == (3, "audit.hash_mismatch")

    usage = _process("audit")
    assert usage.returncode == 2
    assert "usage: nulabpass" in usage.stderr

    missing = _process("audit", "verify", "--db", _url(demo_db.parent / "none.sqlite3"))
    assert missing.returncode == 3
    assert missing.stderr.startswith("error [store.not_migrated]: ")
