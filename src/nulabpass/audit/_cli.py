"""The ``nulabpass audit`` subcommands beyond ``verify``: ``export`` and ``checkpoint``."""

from __future__ import annotations

import argparse
import binascii
import json
import secrets
import sys
from collections.abc import Callable

from pydantic import SecretStr

from nulabpass.errors import InvalidInput

__all__ = ["add_parsers", "public_keys_from", "run"]


def public_keys_from(values: list[str] | None) -> Callable[[str], bytes | None] | None:
    """Parse ``--public-key [KEY_ID=]HEX`` options into a key lookup (``None``: none)."""
    from nulabpass.audit.keys import key_id_of

    if not values:
        return None
    keys: dict[str, bytes] = {}
    for value in values:
        key_id, _, hex_key = value.rpartition("=")
        try:
            raw = binascii.unhexlify(hex_key.strip())
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise InvalidInput(
                f"--public-key {value!r} is not [KEY_ID=]HEX with 64 hexadecimal digits.",
                code="cli.invalid_public_key",
            )
        keys[key_id or key_id_of(raw)] = raw
    return keys.get


def add_parsers(
    audit_sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add_db: Callable[..., None],
) -> None:
    """Add ``export`` and ``checkpoint`` to the ``audit`` command."""
    export = audit_sub.add_parser(
        "export",
        help="export an organization's audit log with a signed manifest",
        description=(
            "Write the log (or one month of it) as CSV, JSON Lines or OCSF to --out and a "
            "signed manifest to <out>.manifest.json, which lets a recipient verify the "
            "file offline. Recorded in the log as audit.exported by the host."
        ),
    )
    add_db(export, required=True)
    export.add_argument("org", metavar="ORG", help="organization id")
    export.add_argument("--format", choices=("csv", "jsonl", "ocsf"), default="csv")
    export.add_argument("--month", metavar="YYYY-MM", help="export one month (UTC)")
    export.add_argument("--out", metavar="FILE", required=True, help="file to write")
    _add_signing_key(export)
    checkpoint = audit_sub.add_parser(
        "checkpoint",
        help="sign a checkpoint of an organization's audit log",
        description="Sign and store a checkpoint; prints it as JSON.",
    )
    add_db(checkpoint, required=True)
    checkpoint.add_argument("org", metavar="ORG", help="organization id")
    _add_signing_key(checkpoint)


def _add_signing_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signing-key",
        metavar="FILE",
        required=True,
        help="file holding the Ed25519 private key as 64 hexadecimal digits",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``audit export`` or ``audit checkpoint``."""
    from nulabpass._context import Actor
    from nulabpass._facade import NulabPass
    from nulabpass.audit.keys import StaticKeyProvider, read_key_file
    from nulabpass.config import NulabPassConfig
    from nulabpass.stores.sql import SqlStore

    keys = StaticKeyProvider(read_key_file(args.signing_key))
    store = SqlStore.from_url(args.db)
    try:
        # Audit tools need no token secret: a throwaway key satisfies the configuration.
        np = NulabPass(
            store,
            config=NulabPassConfig(
                secret_key=SecretStr(secrets.token_urlsafe(32)), base_url="https://localhost"
            ),
            keys=keys,
        )
        if args.audit_command == "checkpoint":
            cp = np.audit.checkpoint(Actor.system(), args.org)
            print(json.dumps(cp.to_json()))
            return 0
        export = np.audit.export(Actor.system(), args.org, fmt=args.format, month=args.month)
        manifest_path = export.write(args.out)
        manifest = export.manifest()
        print(
            json.dumps(
                {
                    "organization": args.org,
                    "file": args.out,
                    "manifest": str(manifest_path),
                    "events": manifest["count"],
                    "first_seq": manifest["first_seq"],
                    "last_seq": manifest["last_seq"],
                    "tree_size": manifest["checkpoint"]["tree_size"],
                }
            ),
            file=sys.stdout,
        )
        return 0
    finally:
        store.dispose()
