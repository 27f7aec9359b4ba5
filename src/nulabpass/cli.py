"""The ``nulabpass`` command.

Commands:

- ``nulabpass demo``: walk through the product guide on the embedded SQLite store;
- ``nulabpass db upgrade`` / ``nulabpass db current``: apply or show schema migrations;
- ``nulabpass audit verify``: verify audit chains and checkpoints, name what is broken;
- ``nulabpass audit export`` / ``nulabpass audit checkpoint``: signed exports and
  checkpoints;
- ``nulabpass plans status ORG``: an organization's plan state and entitlements.
- ``nulabpass domains check DOMAIN --token TOKEN [--nameserver HOST[:PORT] ...]``: look up
  a domain's verification record (exit 0 verified, 1 absent or wrong value,
  3 indeterminate).
- ``nulabpass saml verify RESPONSE_FILE ...``: validate a SAML response as sign-in would
  (exit 0 accepted, 1 rejected, 2 usage error); ``nulabpass saml sp-metadata``.

Exit codes: 0 success, 1 a verification found a problem, 2 usage errors, 3 an error
reported by nulabpass (its code is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pydantic import SecretStr

from nulabpass.errors import InvalidInput, NulabPassError

__all__ = ["main"]

_DB_ENV = "NULABPASS_DATABASE_URL"


def _add_db(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        default=os.environ.get(_DB_ENV),
        required=required and not os.environ.get(_DB_ENV),
        help=(
            "SQLAlchemy database URL, e.g. sqlite:///nulabpass.sqlite3 or "
            f"postgresql+psycopg://user@host/db (default: ${_DB_ENV})"
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nulabpass`` command."""
    parser = argparse.ArgumentParser(
        prog="nulabpass",
        description=(
            "nulabpass: SAML SSO, verified domains, managed accounts, SCIM provisioning, "
            "audit logs and plans for B2B SaaS products."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="walk through the product guide on the embedded SQLite store",
        description=(
            "Create an organization, a team and a managed account, accept its invitation, "
            "read the audit log and verify its chain, printing each step as an IT admin "
            "would see it. Uses a new SQLite file unless --db is given."
        ),
    )
    demo.add_argument("--db", metavar="URL", help="database URL (default: a new SQLite file)")
    demo.add_argument(
        "--language",
        choices=("en", "ja"),
        default="en",
        help="language of the invited person's email (default: en)",
    )

    db = sub.add_parser("db", help="database schema migrations")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply every pending migration")
    _add_db(upgrade, required=True)
    current = db_sub.add_parser("current", help="print the applied migration revision")
    _add_db(current, required=True)

    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = audit_sub.add_parser(
        "verify",
        help="verify audit chains",
        description=(
            "Recompute every event's hash and link and every personal-data commitment. "
            "Prints one JSON object per chain; exits 0 when all verify, 1 otherwise."
        ),
    )
    _add_db(verify, required=True)
    verify.add_argument(
        "org", nargs="*", metavar="ORG", help="organization ids (default: every chain)"
    )
    verify.add_argument(
        "--public-key",
        action="append",
        metavar="[KEY_ID=]HEX",
        help=(
            "an Ed25519 public key that signs checkpoints (repeat for rotated keys); "
            "without one, checkpoint roots are compared but signatures are not checked"
        ),
    )
    from nulabpass.audit._cli import add_parsers as add_audit_parsers

    add_audit_parsers(audit_sub, _add_db)

    plans = sub.add_parser("plans", help="trial and plan tools")
    plans_sub = plans.add_subparsers(dest="plans_command", metavar="ACTION", required=True)
    status = plans_sub.add_parser(
        "status",
        help="print an organization's plan state and entitlements",
        description=(
            "Prints one JSON object: the state derived at --now (default: the current "
            "time), the plan's dates, seats, managed accounts, the capabilities the "
            "plan grants now and when time alone next changes something."
        ),
    )
    _add_db(status, required=True)
    status.add_argument("org", metavar="ORG", help="organization id")
    from nulabpass.domains._cli import add_parsers as add_domains_parsers

    add_domains_parsers(sub)
    status.add_argument(
        "--now", metavar="ISO8601", help="evaluate at this time instead of the current time"
    )
    from nulabpass.saml._cli import add_saml_parser

    add_saml_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from nulabpass._demo import run_demo

            return run_demo(args.db, language=args.language, out=sys.stdout)
        if args.command == "db":
            return _db(args)
        if args.command == "audit" and args.audit_command != "verify":
            from nulabpass.audit._cli import run as run_audit

            return run_audit(args)
        if args.command == "audit":
            return _audit_verify(args)
        if args.command == "saml":
            from nulabpass.saml._cli import run_saml

            return run_saml(args)
        if args.command == "plans":
            return _plans_status(args)
        if args.command == "domains":
            from nulabpass.domains._cli import run as run_domains

            return run_domains(args)
    except NulabPassError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 3
    return 2  # pragma: no cover - argparse enforces a command


def _db(args: argparse.Namespace) -> int:
    from nulabpass.stores.sql import SqlStore

    store = SqlStore.from_url(args.db)
    try:
        if args.db_command == "upgrade":
            store.upgrade()
        print(store.current_revision() or "(no migrations applied)")
    finally:
        store.dispose()
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from nulabpass.audit._cli import public_keys_from
    from nulabpass.audit._service import verify_chain
    from nulabpass.stores.sql import SqlStore

    store = SqlStore.from_url(args.db)
    try:
        scopes = list(args.org)
        if not scopes:
            with store.transaction() as uow:
                scopes = uow.audit.scopes()
        ok = True
        for scope in scopes:
            result = verify_chain(store, scope, public_key=public_keys_from(args.public_key))
            ok = ok and result.ok
            print(
                json.dumps(
                    {
                        "organization": scope,
                        "ok": result.ok,
                        "events_checked": result.events_checked,
                        "head_seq": result.head_seq,
                        "first_broken_seq": result.first_broken_seq,
                        "first_broken_event": result.first_broken_id,
                        "problem": result.problem,
                        "message": result.message,
                        "start_seq": result.start_seq,
                        "checkpoints_checked": result.checkpoints_checked,
                        "checkpoint_size": result.checkpoint_size,
                        "signatures_checked": result.signatures_checked,
                    }
                )
            )
    finally:
        store.dispose()
    return 0 if ok else 1


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--now {value!r} is not an ISO 8601 time such as 2026-12-04T09:00:00Z.",
            code="cli.invalid_time",
        ) from None
    if parsed.tzinfo is None:
        raise InvalidInput(
            "--now needs a time zone, e.g. 2026-12-04T09:00:00Z.", code="cli.invalid_time"
        )
    return parsed


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _plans_status(args: argparse.Namespace) -> int:
    import secrets

    from nulabpass._facade import NulabPass
    from nulabpass.config import NulabPassConfig
    from nulabpass.stores.sql import SqlStore

    now = _parse_now(args.now)
    store = SqlStore.from_url(args.db)
    try:
        # Reading a status needs no secret: a throwaway key satisfies the configuration.
        np = NulabPass(
            store,
            config=NulabPassConfig(
                secret_key=SecretStr(secrets.token_urlsafe(32)), base_url="https://localhost"
            ),
        )
        status = np.plans.status(args.org, now)
    finally:
        store.dispose()
    record = status.record
    print(
        json.dumps(
            {
                "organization": status.org_id,
                "state": status.state.value,
                "plan_name": record.plan_name,
                "trial_started_at": _iso(record.trial_started_at),
                "trial_ends_at": _iso(record.trial_ends_at),
                "paid_starts_at": _iso(record.paid_starts_at),
                "period_ends_at": _iso(record.period_ends_at),
                "cancel_effective_at": _iso(record.cancel_effective_at),
                "seats": status.seats,
                "managed_accounts": status.managed_accounts,
                "capabilities": sorted(c.value for c in status.capabilities),
                "next_change_at": _iso(status.next_change_at),
            }
        )
    )
    return 0


def default_demo_path() -> Path:
    """Where the demo keeps its SQLite file when no --db is given."""
    return Path(tempfile.mkdtemp(prefix="nulabpass-demo-")) / "demo.sqlite3"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
